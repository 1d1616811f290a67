"""Deployment settings read from the environment, shared by every model of one server."""

from __future__ import annotations

import os
from pathlib import Path


def data_dir() -> Path:
    """Where libraries live: $RCI_DATA_DIR, default ./rci-data."""
    return Path(os.environ.get("RCI_DATA_DIR", "rci-data")).resolve()


def library_names() -> list[str]:
    """Configured libraries: comma-separated $RCI_LIBRARIES, default 'main'."""
    return [n.strip() for n in os.environ.get("RCI_LIBRARIES", "main").split(",") if n.strip()]


def descriptor_name() -> str:
    """The descriptor model this server runs: $RCI_DESCRIPTOR, default sscd_resnet50."""
    return os.environ.get("RCI_DESCRIPTOR", "sscd_resnet50")


def open_libraries():
    """The server's configured libraries under data_dir(), for its descriptor's embeddings."""
    from rci.descriptor import EMBEDDING_DIM
    from rci.library import Libraries

    return Libraries(data_dir(), library_names(), descriptor=descriptor_name(), dim=EMBEDDING_DIM)
