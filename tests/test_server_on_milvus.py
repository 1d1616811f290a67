"""The served end-to-end tests of tests/test_server.py that touch a library, run again with
every library kept in Milvus Lite: the same ingest, detect (pictures, picture-in-picture,
sound, MatchLite and the rule), refusal, delete and replace, status and empty library,
over HTTP (and gRPC once). The tests are tests/test_server.py's own; only the server differs."""

from __future__ import annotations

import pytest

pytest.importorskip("pymilvus", reason="the milvus extra: pip install -e '.[milvus]'")

from rci.serving.server import TritonServer  # noqa: E402
from rci_client import RciClient  # noqa: E402
from tests.conftest import server_options  # noqa: E402

# Collected here too, against this module's `server`: a library in Milvus Lite.
from tests.test_server import (  # noqa: E402, F401
    test_delete_then_replace_a_video,
    test_detect_finds_a_copy_by_its_sound_where_every_frame_defeats_the_pictures,
    test_detect_finds_the_edited_copy_with_its_segment,
    test_detect_recalls_a_video_by_its_audio,
    test_detect_reports_a_picture_and_the_video_it_sits_on,
    test_empty_library_gives_no_candidates,
    test_http_and_grpc_give_the_same_result,
    test_ingest_reports_fingerprints_and_duration,
    test_matchlite_decides_by_default_and_a_request_can_ask_either,
    test_matchlite_decides_with_the_heuristic_score_beside_it,
    test_repeated_id_is_refused_and_changes_nothing,
    test_status_lists_libraries,
    test_unrelated_video_reproduces_nothing,
)

LIBRARIES = ("main", "second", "empty", "bench")


@pytest.fixture(scope="module")
def server(tmp_path_factory, media):
    """A running server whose libraries all live in one Milvus Lite file, 'main' holding
    the demo library videos (as tests/conftest.py's server does locally)."""
    work = tmp_path_factory.mktemp("milvus-server")
    config = work / "libraries.toml"
    config.write_text(
        "".join(f'[libraries.{n}]\nstore = "milvus"\nuri = "milvus.db"\n\n' for n in LIBRARIES)
    )
    options = server_options(work / "server", work / "data", libraries_config=config)
    with TritonServer(options) as srv:
        with RciClient(srv.http_url) as client:
            for video_id, path in media["library"].items():
                client.ingest(path, video_id)
            (main,) = client.status(["main"])
            assert main["index"].startswith("Milvus Lite")
        yield srv


@pytest.fixture
def client(server):
    """HTTP alone: the protocols are compared by test_http_and_grpc_give_the_same_result, and
    the store behind them is what this module tests."""
    with RciClient(server.http_url) as c:
        yield c
