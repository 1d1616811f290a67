"""Python client and command-line tool for a running RCI server (HTTP or gRPC); installed as
`rci_client` (`from rci_client import RciClient`)."""

from .rci_client import DetectResult, IngestResult, RciClient, RciClientError

__all__ = ["DetectResult", "IngestResult", "RciClient", "RciClientError"]
