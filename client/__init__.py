"""Python client and command-line tool for a running RCI server (HTTP or gRPC)."""

from client.rci_client import DetectResult, IngestResult, RciClient, RciClientError

__all__ = ["DetectResult", "IngestResult", "RciClient", "RciClientError"]
