"""A library kept in Milvus Lite, served end to end beside a local one: the same answers,
detect over both kinds at once, replace, refusal, delete and status through the server."""

from __future__ import annotations

import pytest

pytest.importorskip("pymilvus", reason="the milvus extra: pip install -e '.[milvus]'")

from rci.serving.server import TritonServer  # noqa: E402
from rci_client import RciClient, RciClientError  # noqa: E402
from tests.conftest import server_options  # noqa: E402

CONFIG = """
[libraries.local]

[libraries.lite]
store = "milvus"
uri = "milvus.db"
"""


@pytest.fixture(scope="module")
def served(tmp_path_factory, media):
    work = tmp_path_factory.mktemp("milvus-served")
    config = work / "libraries.toml"
    config.write_text(CONFIG)
    options = server_options(work / "server", work / "data", libraries_config=config)
    with TritonServer(options) as server, RciClient(server.http_url) as client:
        for video_id, path in media["library"].items():
            for library in ("local", "lite"):
                client.ingest(path, video_id, library)
        yield {"server": server, "data": work / "data"}


@pytest.fixture(params=["http", "grpc"])
def client(request, served):
    server = served["server"]
    url = server.http_url if request.param == "http" else server.grpc_url
    with RciClient(url, protocol=request.param) as c:
        yield c


def _answer(result) -> list[tuple]:
    return [
        (m.video_id, round(m.score, 4), m.reproduced,
         [(round(s.query_start, 2), round(s.query_end, 2)) for s in m.segments])
        for m in result.matches
    ]  # fmt: skip


def test_a_milvus_library_answers_as_the_local_store(client, media, served):
    local = client.detect(media["query"], "local")
    lite = client.detect(media["query"], "lite")
    assert _answer(lite) == _answer(local)
    assert media["truth"].video_id in {m.video_id for m in lite.reproduced}
    assert (served["data"] / "milvus.db").exists()  # the Lite file, in the data directory


def test_detect_over_both_kinds_names_each_match_s_library(client, media):
    both = client.detect(media["query"], ["local", "lite"])
    found = {(m.library, m.video_id) for m in both.reproduced}
    truth = media["truth"].video_id
    assert {("local", truth), ("lite", truth)} <= found


def test_replace_refusal_delete_and_status_on_milvus(client, media):
    video_id, path = next(iter(media["library"].items()))
    with pytest.raises(RciClientError, match="already in library 'lite'"):
        client.ingest(path, video_id, "lite")
    before = {s["name"]: s for s in client.status(["local", "lite"])}
    assert before["lite"]["videos"] == before["local"]["videos"] == len(media["library"])
    assert before["lite"]["fingerprints"] == before["local"]["fingerprints"]
    assert before["lite"]["index"] == "Milvus Lite FLAT, Strong"
    result = client.ingest(path, video_id, "lite", replace=True)
    assert result.replaced
    assert client.status(["lite"])[0]["videos"] == len(media["library"])
    assert client.delete(video_id, "lite") == result.num_fingerprints
    assert client.status(["lite"])[0]["videos"] == len(media["library"]) - 1
    with pytest.raises(RciClientError, match="not in library 'lite'"):
        client.delete(video_id, "lite")
    client.ingest(path, video_id, "lite")  # as it was, for the other tests
