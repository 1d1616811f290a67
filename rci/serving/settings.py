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


def library_config() -> Path | None:
    """$RCI_LIBRARIES_CONFIG: a TOML file of [libraries.NAME] tables; it overrides
    $RCI_LIBRARIES (see rci.serving.libraries)."""
    path = os.environ.get("RCI_LIBRARIES_CONFIG")
    return Path(path).resolve() if path else None


def descriptor_name() -> str:
    """The descriptor model this server runs: $RCI_DESCRIPTOR, default sscd_resnet50."""
    return os.environ.get("RCI_DESCRIPTOR", "sscd_resnet50")


def open_libraries():
    """The server's configured libraries under data_dir(), for its descriptor's embeddings."""
    from rci.describe.descriptor import EMBEDDING_DIM
    from rci.serving.libraries import Libraries, read_config

    config = library_config()
    libraries = read_config(config) if config else library_names()
    return Libraries(data_dir(), libraries, descriptor=descriptor_name(), dim=EMBEDDING_DIM)
