"""Libraries persist across restarts, and refuse a server running another descriptor model."""

import pytest

from rci.serving.server import TritonServer
from rci_client import RciClient, RciClientError
from tests.conftest import server_options


def test_restart_keeps_the_library_and_descriptor_is_enforced(tmp_path, media):
    data_dir = tmp_path / "data"
    library = media["library"]
    with TritonServer(server_options(tmp_path / "w1", data_dir)) as server:
        with RciClient(server.http_url) as client:
            client.ingest(library["photos-people-food"], "photos-people-food")
            client.ingest(library["bikes"], "bikes")
            before = client.status()
            first = client.detect(media["query"])

    with TritonServer(server_options(tmp_path / "w2", data_dir)) as server:
        with RciClient(server.grpc_url, protocol="grpc") as client:
            assert client.status() == before
            assert client.detect(media["query"]).matches == first.matches
            with pytest.raises(RciClientError, match="already in library"):
                client.ingest(library["bikes"], "bikes")

    other = server_options(tmp_path / "w3", data_dir, descriptor="sscd_mobilenetv4")
    with TritonServer(other) as server, RciClient(server.http_url) as client:
        with pytest.raises(RciClientError, match="built with descriptor 'sscd_resnet50'"):
            client.detect(media["query"])
        with pytest.raises(RciClientError, match="built with descriptor 'sscd_resnet50'"):
            client.ingest(library["photos-science"], "photos-science")
        assert "sscd_mobilenetv4" in client.status()[0]["error"]
    assert before[0]["videos"] == 2
