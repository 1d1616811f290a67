"""Shared fixtures: sample media built once, a real tritonserver per session."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from rci.bench import samples
from rci.serving.server import ServerOptions, TritonServer
from rci_client import RciClient


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def server_options(work: Path, data_dir: Path, **overrides) -> ServerOptions:
    """Options for a server on free loopback ports."""
    return ServerOptions(
        data_dir=data_dir,
        work_dir=work,
        http_port=free_port(),
        grpc_port=free_port(),
        metrics_port=free_port(),
        **overrides,
    )


@pytest.fixture(scope="session")
def media(tmp_path_factory) -> dict:
    """The demo's library videos, its edited-copy query (with ground truth) and an unrelated one."""
    folder = tmp_path_factory.mktemp("media")
    library = samples.build_library(folder)
    query, truth = samples.build_query(folder, library)
    inside, inside_truth = samples.build_inside(folder, library)
    return {
        "library": library,
        "query": query,
        "truth": truth,
        "inside": inside,  # library video A picture-in-picture over library video B
        "inside_truth": inside_truth,
        "unrelated": samples.build_unrelated(folder),
        "folder": folder,
    }


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("rci-data")


@pytest.fixture(scope="session")
def server(tmp_path_factory, data_dir, media):
    """A running server whose 'main' library holds the demo library videos."""
    work = tmp_path_factory.mktemp("work")
    with TritonServer(
        server_options(work, data_dir, libraries=["main", "second", "empty", "bench"])
    ) as srv:
        with RciClient(srv.http_url) as client:
            for video_id, path in media["library"].items():
                client.ingest(path, video_id)
        yield srv


@pytest.fixture(params=["http", "grpc"])
def client(request, server):
    url = server.http_url if request.param == "http" else server.grpc_url
    with RciClient(url, protocol=request.param) as c:
        yield c
