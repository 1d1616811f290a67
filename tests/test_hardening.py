"""A hostile client against the real server: admin APIs closed, tokens checked where the
write happens, leaf models called directly get the same checks as through the ensembles."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import tritonclient.grpc as grpcclient
from tritonclient.utils import InferenceServerException

from rci.serving.server import ADMIN_HEADER, SHM_DIR, SHM_PREFIX, TritonServer
from rci_client import RciClient, RciClientError
from tests.conftest import free_port, server_options
from tests.triton_calls import raw

WRITE, READ = "write-token-for-tests", "read-token-for-tests"


def http(server, path: str, body: dict | None = None, headers: dict | None = None):
    """(status, JSON or text) of one request to the server's HTTP port."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(
        f"http://{server.http_url}{path}", data=data, headers=headers or {}
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def text(value: str) -> np.ndarray:
    return np.array([value.encode()], dtype=object)


def unit_rows(n: int, seed: int = 0) -> np.ndarray:
    x = np.random.default_rng(seed).normal(size=(n, 512))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def add_inputs(embeddings, timestamps, duration=10.0, video_id="direct", library="main"):
    return [
        ("VIDEO_ID", text(video_id), "BYTES"),
        ("LIBRARY", text(library), "BYTES"),
        ("EMBEDDINGS", embeddings, "FP32"),
        ("TIMESTAMPS", timestamps, "FP32"),
        ("DURATION", np.array([duration], dtype=np.float32), "FP32"),
    ]


# --- admin APIs ---------------------------------------------------------------------------


ADMIN_CALLS = [
    ("/v2/systemsharedmemory/status", None),
    ("/v2/systemsharedmemory/region/p/register", {"key": "/x", "offset": 0, "byte_size": 64}),
    ("/v2/cudasharedmemory/status", None),
    ("/v2/logging", None),
    ("/v2/logging", {"log_verbose_level": 1}),
    ("/v2/trace/setting", None),
    ("/v2/repository/index", {}),
    ("/v2/repository/models/rci_status/unload", {}),
]


@pytest.mark.parametrize("path,body", ADMIN_CALLS)
def test_admin_apis_are_closed_over_http(server, path, body):
    status, answer = http(server, path, body)
    assert status == 403 and ADMIN_HEADER in answer


def test_admin_apis_are_closed_over_grpc(server):
    client = grpcclient.InferenceServerClient(server.grpc_url)
    calls = [
        client.get_system_shared_memory_status,
        lambda: client.register_system_shared_memory("p", "/x", 64),
        client.get_log_settings,
        lambda: client.update_log_settings({"log_verbose_level": 1}),
        client.get_trace_settings,
        client.get_model_repository_index,
        lambda: client.unload_model("rci_status"),
    ]
    try:
        for call in calls:
            with pytest.raises(InferenceServerException, match="restricted|rci-admin-key"):
                call()
        assert client.is_model_ready("rci_status")
    finally:
        client.close()


def test_the_admin_key_opens_them_and_model_control_stays_off(server):
    key = {ADMIN_HEADER: server.admin_key}
    assert http(server, "/v2/logging", headers=key)[0] == 200
    status, answer = http(server, "/v2/repository/models/rci_status/unload", {}, key)
    assert status >= 400 and "not allowed" in answer, answer
    assert http(server, "/v2/models/rci_status/ready")[0] == 200


def test_the_shared_memory_crash_is_closed(server):
    """The attack: register the Python backend's own region, then ask for an output in it
    (this crashed tritonserver with SIGSEGV). Now the registration is refused."""
    regions = [p.name for p in SHM_DIR.glob(SHM_PREFIX + "*")]
    assert regions, "the server's Python backends keep their regions in /dev/shm"
    body = {"key": "/" + regions[0], "offset": 0, "byte_size": 1 << 20}
    status, answer = http(server, "/v2/systemsharedmemory/region/p/register", body)
    assert status == 403
    status, answer = http(server, "/v2/models/rci_status/infer", STATUS_INTO_REGION_P)
    assert status == 404 and "Unable to find shared memory region: 'p'" in answer
    with RciClient(server.http_url) as client:
        assert client.ready() and client.status()


# Asks rci_status for its output in client-registered region "p".
STATUS_INTO_REGION_P = {
    "inputs": [{"name": "LIBRARIES", "shape": [0], "datatype": "BYTES", "data": []}],
    "outputs": [
        {
            "name": "STATUS",
            "parameters": {"shared_memory_region": "p", "shared_memory_byte_size": 4096},
        }
    ],
}


# --- boundary checks on the leaf models ---------------------------------------------------

POISON = {
    "nan": lambda e, t: (np.where(np.arange(512) == 3, np.nan, e).astype(np.float32), t),
    "zero": lambda e, t: (np.zeros_like(e), t),
    "huge": lambda e, t: (e * np.float32(1e6), t),
    "negative_time": lambda e, t: (e, t - 5),
    "nan_time": lambda e, t: (e, np.full_like(t, np.nan)),
    "length": lambda e, t: (e, t[:-1]),
}


@pytest.mark.parametrize("protocol", ["http", "grpc"])
@pytest.mark.parametrize("kind", sorted(POISON))
def test_library_add_called_directly_refuses_poison(server, protocol, kind):
    before = RciClient(server.http_url).status(["second"])
    embeddings, times = POISON[kind](unit_rows(10), np.arange(10, dtype=np.float32))
    _, error = raw(
        server, protocol, "rci_library_add", add_inputs(embeddings, times, library="second")
    )
    assert error is not None and "internal error" not in error
    assert error.startswith(("400", "StatusCode.INVALID_ARGUMENT"))
    assert RciClient(server.http_url).status(["second"]) == before


@pytest.mark.parametrize("protocol", ["http", "grpc"])
@pytest.mark.parametrize("duration", [float("nan"), -1.0, float("inf")])
def test_library_add_refuses_bad_durations(server, protocol, duration):
    before = RciClient(server.http_url).status(["second"])
    inputs = add_inputs(unit_rows(4), np.arange(4, dtype=np.float32), duration, library="second")
    _, error = raw(server, protocol, "rci_library_add", inputs)
    assert "duration must be finite" in error
    assert RciClient(server.http_url).status(["second"]) == before


AUDIO_POISON = {  # (AUDIO_PRINTS, AUDIO_TIMES) -> the error's words
    "float bits": (np.zeros((4, 32), np.float32), np.arange(4, dtype=np.float32), "UINT8"),
    "times out of order": (np.zeros((4, 32), np.uint8), np.zeros(4, np.float32), "increase"),
    "nan time": (np.zeros((2, 32), np.uint8), np.array([0, np.nan], np.float32), "NaN"),
    "a time short": (np.zeros((4, 32), np.uint8), np.arange(3, dtype=np.float32), "one time"),
    "prints alone": (np.zeros((4, 32), np.uint8), None, "come together"),
}


@pytest.mark.parametrize("protocol", ["http", "grpc"])
@pytest.mark.parametrize("kind", sorted(AUDIO_POISON))
def test_library_add_refuses_bad_audio_fingerprints(server, protocol, kind):
    before = RciClient(server.http_url).status(["second"])
    bits, times, expected = AUDIO_POISON[kind]
    inputs = add_inputs(unit_rows(4), np.arange(4, dtype=np.float32), library="second")
    inputs.append(("AUDIO_PRINTS", bits, "FP32" if bits.dtype == np.float32 else "UINT8"))
    if times is not None:
        inputs.append(("AUDIO_TIMES", times, "FP32"))
    _, error = raw(server, protocol, "rci_library_add", inputs)
    assert error is not None and expected in error and "internal" not in error, error
    assert RciClient(server.http_url).status(["second"]) == before


@pytest.mark.parametrize("protocol", ["http", "grpc"])
def test_recall_called_directly_checks_the_audio_views(server, protocol):
    inputs = [("EMBEDDINGS", unit_rows(3), "FP32"), ("LIBRARY", text("main"), "BYTES")]
    ok, error = raw(server, protocol, "rci_recall", [*inputs, ("QUERY_AUDIO_PRINTS",
                    np.zeros((20, 5, 32), np.uint8), "UINT8")])  # fmt: skip
    assert error is None, error
    # 19 views: the model refuses it; 31 bytes a window: Triton's shape check does.
    for views, expected in ((np.zeros((19, 5, 32), np.uint8), "must be (20, A, 32)"),
                            (np.zeros((20, 5, 31), np.uint8), "unexpected shape")):  # fmt: skip
        _, error = raw(server, protocol, "rci_recall",
                       [*inputs, ("QUERY_AUDIO_PRINTS", views, "UINT8")])  # fmt: skip
        assert error is not None and expected in error and "QUERY_AUDIO_PRINTS" in error, error
        assert error.startswith(("400", "StatusCode.INVALID_ARGUMENT"))


def match_inputs(lengths, embeddings=None, rows=6):
    query = unit_rows(rows, 1)
    cands = np.stack([unit_rows(rows, 2)] * len(lengths)) if embeddings is None else embeddings
    return [
        ("EMBEDDINGS", query, "FP32"),
        ("TIMESTAMPS", np.arange(rows, dtype=np.float32), "FP32"),
        ("CANDIDATE_IDS", np.array([b"c"] * len(lengths), dtype=object), "BYTES"),
        ("CANDIDATE_LIBRARIES", np.array([b"main"] * len(lengths), dtype=object), "BYTES"),
        ("CANDIDATE_EMBEDDINGS", cands, "FP32"),
        (
            "CANDIDATE_TIMESTAMPS",
            np.tile(np.arange(cands.shape[1], dtype=np.float32), (len(lengths), 1)),
            "FP32",
        ),
        ("CANDIDATE_LENGTHS", np.array(lengths, dtype=np.int32), "INT32"),
    ]


@pytest.mark.parametrize("protocol", ["http", "grpc"])
def test_match_called_directly_checks_candidates(server, protocol):
    ok, error = raw(server, protocol, "rci_match", match_inputs([6]))
    assert error is None and ok.as_numpy("VIDEO_IDS").tolist() == [b"c"]
    for lengths, expected in (([-1], "CANDIDATE_LENGTHS"), ([7], "CANDIDATE_LENGTHS"),
                              ([6, 6, 6], None)):  # fmt: skip
        _, error = raw(server, protocol, "rci_match", match_inputs(lengths))
        assert (error is None) if expected is None else (expected in error)
    nan = np.full((1, 6, 512), np.nan, dtype=np.float32)
    _, error = raw(server, protocol, "rci_match", match_inputs([6], nan))
    assert "NaN" in error
    inputs = match_inputs([6])
    inputs[2] = ("CANDIDATE_IDS", np.array([b"a", b"b"], dtype=object), "BYTES")
    _, error = raw(server, protocol, "rci_match", inputs)
    assert "disagree on the number of candidates" in error


@pytest.mark.parametrize("protocol", ["http", "grpc"])
def test_match_called_directly_checks_the_views_and_penalties(server, protocol):
    mirrored = ("MIRRORED_EMBEDDINGS", unit_rows(6, 3), "FP32")
    ok, error = raw(server, protocol, "rci_match", [*match_inputs([6]), mirrored])
    assert error is None and ok.as_numpy("VIDEO_IDS").tolist() == [b"c"]
    penalty = np.zeros((2, 6), np.float32)
    for bad, expected in (
        (("MIRRORED_EMBEDDINGS", unit_rows(5, 3), "FP32"), "MIRRORED_EMBEDDINGS must be [6, 512]"),
        (("MIRRORED_EMBEDDINGS", 2 * unit_rows(6, 3), "FP32"), "unit length"),
        (("QUERY_PENALTY", np.zeros((1, 6), np.float32), "FP32"), "QUERY_PENALTY must be (2, 6)"),
        (("QUERY_PENALTY", penalty - 1, "FP32"), "QUERY_PENALTY must be finite and >= 0"),
        (("QUERY_PENALTY", penalty + np.inf, "FP32"), "QUERY_PENALTY must be finite and >= 0"),
        (("WHOLE_EMBEDDINGS", unit_rows(7, 4), "FP32"), "WHOLE_EMBEDDINGS must be [6, 512]"),
        (("WHOLE_EMBEDDINGS", 3 * unit_rows(6, 4), "FP32"), "unit length"),
        (("QUERY_RECURRENCE", np.ones(5, np.int32), "INT32"), "QUERY_RECURRENCE must be (6,)"),
        (("QUERY_RECURRENCE", -np.ones(6, np.int32), "INT32"), "QUERY_RECURRENCE must be >= 0"),
    ):  # fmt: skip
        inputs = [*match_inputs([6]), mirrored]
        inputs = [x for x in inputs if x[0] != bad[0]] + [bad]
        _, error = raw(server, protocol, "rci_match", inputs)
        assert error is not None and expected in error and "internal" not in error, error


def matchlite_inputs(n=2, h=5, w=4, **replace):
    """rci_matchlite's inputs for n pairs on h x w grids, as rci_match makes them; each
    named input in `replace` is swapped for the (array, datatype) given."""
    maps = np.zeros((n, 3, h, w), np.float32)
    side = np.zeros((n, 12), np.float32)
    side[:, 10] = 1 / 8  # one segment each
    inputs = {
        "PAIR_MAPS": (maps, "FP32"),
        "PAIR_MASK": (np.ones((n, 1, h, w), np.float32), "FP32"),
        "PAIR_SIDE": (side, "FP32"),
        "HEURISTIC_REPRODUCED": (np.arange(n) % 2 == 0, "BOOL"),
        "SAME_AUDIO": (np.ones(n, bool), "BOOL"),
        "VIDEO_LIBRARIES": (np.array([b"main"] * n, dtype=object), "BYTES"),
        **replace,
    }
    return [(name, array, datatype) for name, (array, datatype) in inputs.items()]


@pytest.mark.parametrize("protocol", ["http", "grpc"])
def test_matchlite_called_directly_checks_its_pairs(server, protocol):
    ok, error = raw(server, protocol, "rci_matchlite", matchlite_inputs())
    assert error is None and ok.as_numpy("PROBABILITIES").shape == (2,)
    # Same audio and not reproduced is reuse.
    assert (ok.as_numpy("AUDIO_REUSE") == ~ok.as_numpy("REPRODUCED")).all()
    for n, h, w in ((0, 1, 1), (1, 1, 1), (3, 1, 9)):  # no pair; one-frame videos
        ok, error = raw(server, protocol, "rci_matchlite", matchlite_inputs(n, h, w))
        assert error is None and ok.as_numpy("REPRODUCED").shape == (n,), error
    heuristic = (np.array([b"heuristic"], dtype=object), "BYTES")
    ok, error = raw(server, protocol, "rci_matchlite", matchlite_inputs(VERDICT=heuristic))
    assert ok.as_numpy("REPRODUCED").tolist() == [True, False]  # HEURISTIC_REPRODUCED's
    # Another descriptor's pairs, decided by the rule: answered, the student's scores NaN.
    other = (np.array([b"sscd_mobilenetv4"], dtype=object), "BYTES")
    ok, error = raw(server, protocol, "rci_matchlite",
                    matchlite_inputs(VERDICT=heuristic, DESCRIPTOR=other))  # fmt: skip
    assert error is None and np.isnan(ok.as_numpy("PROBABILITIES")).all()
    nan = np.full((2, 3, 5, 4), np.nan, np.float32)
    student = (np.array([b"matchlite"], dtype=object), "BYTES")
    for replace, expected in (
        ({"PAIR_MAPS": (nan, "FP32")}, "finite"),
        ({"PAIR_MASK": (np.ones((2, 1, 5, 3), np.float32), "FP32")}, "PAIR_MASK must be"),
        ({"PAIR_MASK": (np.full((2, 1, 5, 4), 0.5, np.float32), "FP32")}, "0 and 1"),
        ({"PAIR_SIDE": (np.zeros((3, 12), np.float32), "FP32")}, "PAIR_SIDE must be (2, 12)"),
        ({"PAIR_MAPS": (np.zeros((2, 3, 200, 4), np.float32), "FP32"),
          "PAIR_MASK": (np.ones((2, 1, 200, 4), np.float32), "FP32")}, "grids up to 128"),
        ({"SAME_AUDIO": (np.ones(3, bool), "BOOL")}, "SAME_AUDIO must be (2,)"),
        ({"VIDEO_LIBRARIES": (np.array([b"main"], dtype=object), "BYTES")}, "verdicts"),
        ({"VERDICT": (np.array([b"best"], dtype=object), "BYTES")}, "unknown verdict 'best'"),
        ({"DESCRIPTOR": other, "VERDICT": student}, "sscd_mobilenetv4"),
        ({"PAIR_MAPS": (np.zeros((2, 3, 0, 4), np.float32), "FP32"),
          "PAIR_MASK": (np.ones((2, 1, 0, 4), np.float32), "FP32")}, "a cell on each side"),
    ):  # fmt: skip
        _, error = raw(server, protocol, "rci_matchlite", matchlite_inputs(**replace))
        assert error is not None and expected in error and "internal" not in error, error
        assert error.startswith(("400", "StatusCode.INVALID_ARGUMENT")), error


@pytest.mark.parametrize("protocol", ["http", "grpc"])
def test_matchlite_student_called_directly_checks_its_pairs(server, protocol):
    inputs = matchlite_inputs()[:3]
    renamed = [(name.removeprefix("PAIR_"), array, kind) for name, array, kind in inputs]
    ok, error = raw(server, protocol, "rci_matchlite_student", renamed)
    assert error is None and ok.as_numpy("KINDS").shape == (2, 18)
    renamed[0] = ("MAPS", np.full((2, 3, 5, 4), np.inf, np.float32), "FP32")
    _, error = raw(server, protocol, "rci_matchlite_student", renamed)
    assert error is not None and "finite" in error, error


def audio_inputs(views=20, windows=8, candidate_windows=8, lengths=(8,)):
    """rci_match's audio inputs: the query's views and times, one candidate's windows."""
    rng = np.random.default_rng(0)
    times = (0.5 * np.arange(max(windows, candidate_windows))).astype(np.float32)
    return [
        ("QUERY_AUDIO_PRINTS", rng.integers(0, 256, (views, windows, 32), np.uint8), "UINT8"),
        ("QUERY_AUDIO_TIMES", times[:windows], "FP32"),
        ("CANDIDATE_AUDIO", rng.integers(0, 256, (1, candidate_windows, 32), np.uint8), "UINT8"),
        ("CANDIDATE_AUDIO_TIMES", times[None, :candidate_windows], "FP32"),
        ("CANDIDATE_AUDIO_LENGTHS", np.array(lengths, np.int32), "INT32"),
    ]


@pytest.mark.parametrize("protocol", ["http", "grpc"])
def test_match_called_directly_checks_the_audio(server, protocol):
    ok, error = raw(server, protocol, "rci_match", [*match_inputs([6]), *audio_inputs()])
    assert error is None, error
    assert len(ok.as_numpy("SEGMENT_MODALITIES")) == len(ok.as_numpy("SEGMENTS"))
    assert ok.as_numpy("AUDIO_REUSE").tolist() == [False]
    nan_times = ("QUERY_AUDIO_TIMES", np.full(8, np.nan, np.float32), "FP32")
    backwards = ("CANDIDATE_AUDIO_TIMES", np.arange(8, 0, -1, dtype=np.float32)[None], "FP32")
    for bad, expected in (
        (audio_inputs(views=3), "QUERY_AUDIO_PRINTS must be (20, A, 32)"),
        (audio_inputs(lengths=(9,)), "CANDIDATE_AUDIO_LENGTHS must lie in [0, 8]"),
        (audio_inputs(lengths=(8, 8)), "candidate audio tensors must be"),
        (audio_inputs()[:1], "come together"),
        (audio_inputs()[2:3], "come together"),
        ([nan_times], "QUERY_AUDIO_TIMES"),
        ([backwards], "CANDIDATE_AUDIO_TIMES[0]"),
    ):  # fmt: skip
        names = {name for name, _, _ in bad}
        inputs = [*match_inputs([6]), *[x for x in audio_inputs() if x[0] not in names], *bad]
        if expected == "come together":
            inputs = [*match_inputs([6]), *bad]
        _, error = raw(server, protocol, "rci_match", inputs)
        assert error is not None and expected in error and "internal" not in error, error
        assert error.startswith(("400", "StatusCode.INVALID_ARGUMENT"))


@pytest.mark.parametrize("protocol", ["http", "grpc"])
def test_recall_called_directly_refuses_nan(server, protocol):
    query = unit_rows(3)
    query[1, 0] = np.nan
    inputs = [("EMBEDDINGS", query, "FP32"), ("LIBRARY", text("main"), "BYTES")]
    _, error = raw(server, protocol, "rci_recall", inputs)
    assert "EMBEDDINGS holds NaN" in error
    good = unit_rows(3)
    inputs = [("EMBEDDINGS", good, "FP32"), ("LIBRARY", text("main"), "BYTES")]
    ok, error = raw(server, protocol, "rci_recall", inputs)
    assert error is None and ok.as_numpy("QUERY_PENALTY").shape == (1, 3)
    inputs.append(("MIRRORED_EMBEDDINGS", query, "FP32"))
    _, error = raw(server, protocol, "rci_recall", inputs)
    assert "MIRRORED_EMBEDDINGS holds NaN" in error
    inputs[-1] = ("MIRRORED_EMBEDDINGS", unit_rows(3, 5), "FP32")
    ok, error = raw(server, protocol, "rci_recall", inputs)
    assert error is None and ok.as_numpy("QUERY_PENALTY").shape == (2, 3)
    inputs.append(("WHOLE_EMBEDDINGS", query, "FP32"))
    _, error = raw(server, protocol, "rci_recall", inputs)
    assert "WHOLE_EMBEDDINGS holds NaN" in error
    inputs[-1] = ("WHOLE_EMBEDDINGS", unit_rows(3, 6), "FP32")
    ok, error = raw(server, protocol, "rci_recall", inputs)
    assert error is None and ok.as_numpy("QUERY_PENALTY").shape == (3, 3)
    assert ok.as_numpy("QUERY_RECURRENCE").shape == (3,)


@pytest.mark.parametrize("protocol", ["http", "grpc"])
def test_long_client_values_are_quoted_short(server, protocol, media):
    long_id = "x" * 1_000_000
    with RciClient(server.http_url if protocol == "http" else server.grpc_url,
                   protocol=protocol) as client:  # fmt: skip
        with pytest.raises(RciClientError) as refused:
            client.ingest(media["library"]["bikes"], long_id, library="second")
        assert "video id must be" in str(refused.value) and len(str(refused.value)) < 1000
        with pytest.raises(RciClientError) as refused:
            client.detect(media["unrelated"], library=["y" * 100_000])
        assert "unknown library" in str(refused.value) and len(str(refused.value)) < 1000


# --- tokens -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def guarded(tmp_path_factory, media):
    """A server with a write token and a read token; 'main' holds one video."""
    work = tmp_path_factory.mktemp("guarded")
    options = server_options(work, work / "data", write_token=WRITE, read_token=READ)
    with TritonServer(options) as server:
        with RciClient(server.http_url, token=WRITE) as client:
            client.ingest(media["library"]["bikes"], "bikes")
        yield server


def url_of(server, protocol):
    return server.http_url if protocol == "http" else server.grpc_url


@pytest.mark.parametrize("protocol", ["http", "grpc"])
def test_writes_need_the_write_token(guarded, protocol, media):
    url, video = url_of(guarded, protocol), media["library"]["photos-science"]
    with RciClient(url, protocol=protocol, token=WRITE) as owner:
        before = owner.status()
    for token, refusal in ((None, "unauthenticated"), ("guess", "permission denied"),
                           (READ, "permission denied")):  # fmt: skip
        with RciClient(url, protocol=protocol, token=token) as client:
            with pytest.raises(RciClientError, match=refusal):
                client.ingest(video, f"refused-{protocol}")
            with pytest.raises(RciClientError, match=refusal):
                client.delete("bikes")
            inputs = add_inputs(unit_rows(3), np.arange(3, dtype=np.float32))
            headers = {"rci-token": token} if token else None
            _, error = raw(guarded, protocol, "rci_library_add", inputs, headers)
            assert refusal in error
            delete = [("VIDEO_ID", text("bikes"), "BYTES"), ("LIBRARY", text("main"), "BYTES")]
            _, error = raw(guarded, protocol, "rci_library_delete", delete, headers)
            assert refusal in error
    with RciClient(url, protocol=protocol, token=WRITE) as owner:
        assert owner.status() == before
        owner.ingest(video, f"allowed-{protocol}")
        assert owner.delete(f"allowed-{protocol}") > 0


@pytest.mark.parametrize("protocol", ["http", "grpc"])
def test_reads_need_the_read_or_write_token(guarded, protocol, media):
    url = url_of(guarded, protocol)
    for token, refusal in ((None, "unauthenticated"), ("guess", "permission denied")):
        with RciClient(url, protocol=protocol, token=token) as client:
            with pytest.raises(RciClientError, match=refusal):
                client.detect(media["library"]["bikes"])
            with pytest.raises(RciClientError, match=refusal):
                client.status()
            headers = {"rci-token": token} if token else None
            video = [("VIDEO_BYTES", np.zeros(8, np.uint8), "UINT8")]
            _, error = raw(guarded, protocol, "rci_preprocess", video, headers)
            assert refusal in error
    for token in (READ, WRITE):
        with RciClient(url, protocol=protocol, token=token) as client:
            assert client.detect(media["library"]["bikes"]).reproduced[0].video_id == "bikes"
            assert client.status()[0]["videos"] >= 1


# --- the server's own death ---------------------------------------------------------------


def test_rci_serve_says_when_tritonserver_dies(tmp_path):
    """The shared-memory attack, made with the operator's admin key (the restriction is all
    that stands between a client and this): tritonserver dies of the memory it corrupted
    (SIGSEGV, or SIGABRT when glibc's heap checks catch it first), and `rci serve` says so
    and exits 1."""
    ports = [free_port() for _ in range(3)]
    key = tmp_path / "admin-key"
    key.write_text("operator-key\n")
    serve = subprocess.Popen(
        [sys.executable, "-m", "rci_client.cli", "serve", "--data-dir", str(tmp_path / "d"),
         "--work-dir", str(tmp_path / "w"), "--http-port", str(ports[0]),
         "--grpc-port", str(ports[1]), "--metrics-port", str(ports[2]),
         "--admin-key-file", str(key)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env={**os.environ, "COLUMNS": "200"},
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        line = ""
        while "RCI serving" not in line and time.monotonic() < deadline:
            line = serve.stdout.readline()
            assert line or serve.poll() is None, "rci serve ended before it was ready"
        triton = int(Path(f"/proc/{serve.pid}/task/{serve.pid}/children").read_text().split()[0])
        mine = sorted(p for p in SHM_DIR.glob(SHM_PREFIX + "*") if owned_by_group(p, triton))
        server = type("Server", (), {"http_url": f"127.0.0.1:{ports[0]}"})
        admin = {ADMIN_HEADER: "operator-key"}
        for region in mine:  # some regions are the victim's, others survive the write
            body = {"key": "/" + region.name, "offset": 0, "byte_size": 1 << 20}
            try:
                assert (
                    http(server, "/v2/systemsharedmemory/region/p/register", body, admin)[0] == 200
                )
                http(server, "/v2/models/rci_status/infer", STATUS_INTO_REGION_P)
                http(server, "/v2/systemsharedmemory/region/p/unregister", {}, admin)
                time.sleep(1)
            except (urllib.error.URLError, ConnectionError):
                pass  # the server died under the request
            if serve.poll() is not None or not Path(f"/proc/{triton}").exists():
                break
        out, _ = serve.communicate(timeout=60)
    finally:
        if serve.poll() is None:
            serve.kill()
    assert serve.returncode == 1
    assert re.search(r"tritonserver exited on its own \(signal SIG(SEGV|ABRT)\)", out), out


def owned_by_group(region: Path, pgid: int) -> bool:
    """Whether a process of group `pgid` (a server and its stubs) maps `region`."""
    for maps in Path("/proc").glob("[0-9]*/maps"):
        try:
            if os.getpgid(int(maps.parent.name)) == pgid and region.name in maps.read_text():
                return True
        except (OSError, ValueError):
            continue
    return False


@pytest.mark.parametrize("protocol", ["http", "grpc"])
def test_the_client_refuses_an_oversized_video_before_sending_it(server, protocol, tmp_path):
    big = tmp_path / "big.mp4"
    with open(big, "wb") as f:
        f.truncate(513 << 20)  # sparse: nothing is written or read
    with RciClient(url_of(server, protocol), protocol=protocol) as client:
        assert client.max_bytes() == 512 << 20
        with pytest.raises(RciClientError, match="input is 513.0 MiB; the maximum is 512 MiB"):
            client.detect(big)
        with pytest.raises(RciClientError, match="the maximum is 512 MiB"):
            client.ingest(big, "big")


def test_a_still_image_is_a_one_frame_video(client):
    """Decided: a PNG or JPEG is served as a 1-frame video, so a thumbnail can be checked."""
    import io

    from PIL import Image

    picture = np.random.default_rng(11).integers(0, 256, (24, 32, 3), dtype=np.uint8)
    picture = np.kron(picture, np.ones((10, 10, 1), dtype=np.uint8))  # 240x320, blocks
    encoded = {}
    for kind in ("PNG", "JPEG"):
        buffer = io.BytesIO()
        Image.fromarray(picture).save(buffer, kind)
        encoded[kind] = buffer.getvalue()
    still_id = f"still-{client.protocol}"
    assert client.ingest(encoded["PNG"], still_id, library="second").num_fingerprints == 1
    try:
        found = client.detect(encoded["JPEG"], library="second")
        assert found.duration == pytest.approx(0.04)
        assert [m.video_id for m in found.reproduced] == [still_id]
    finally:
        client.delete(still_id, library="second")


@pytest.mark.parametrize("protocol", ["http", "grpc"])
def test_a_client_without_a_server_is_told_what_to_do(protocol, media):
    with RciClient(f"127.0.0.1:{free_port()}", protocol=protocol, timeout=10) as client:
        with pytest.raises(RciClientError, match="is `rci serve` running, or was it stopping"):
            client.detect(media["unrelated"])
        client._max_bytes = 1 << 30  # as if read before the server went away
        with pytest.raises(RciClientError, match="may or may not have been stored: ingest it"):
            client.ingest(media["unrelated"], "cut-off")


def preprocess_finished(server) -> float:
    """Triton's count of rci_preprocess requests that ended (a cancelled one counts as a
    success there), from the metrics port."""
    url = f"http://127.0.0.1:{server.options.metrics_port}/metrics"
    with urllib.request.urlopen(url, timeout=10) as response:
        lines = response.read().decode().splitlines()
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in lines
        if line.startswith(("nv_inference_request_failure{", "nv_inference_request_success{"))
        and 'model="rci_preprocess"' in line
    )


def test_a_cancelled_decode_stops(server, tmp_path):
    """gRPC deadline on a direct rci_preprocess call: decoding stops within seconds (the
    whole decode of this video, 3,000 frames of 720p, takes about a minute here)."""
    long = tmp_path / "long.mp4"
    subprocess.run(
        ["ffmpeg", "-v", "error", "-f", "lavfi", "-i",
         "testsrc2=size=1280x720:rate=5:duration=600", "-c:v", "libx264", "-preset",
         "ultrafast", "-crf", "40", "-pix_fmt", "yuv420p", str(long)],
        check=True,
    )  # fmt: skip
    data = np.frombuffer(long.read_bytes(), dtype=np.uint8)
    before = preprocess_finished(server)
    client = grpcclient.InferenceServerClient(server.grpc_url)
    tensor = grpcclient.InferInput("VIDEO_BYTES", [data.size], "UINT8")
    tensor.set_data_from_numpy(data)
    try:
        with pytest.raises(InferenceServerException, match="Deadline"):
            client.infer("rci_preprocess", [tensor], client_timeout=2)
    finally:
        client.close()
    deadline = time.monotonic() + 20
    while preprocess_finished(server) == before and time.monotonic() < deadline:
        time.sleep(0.5)
    assert preprocess_finished(server) == before + 1
    assert "rci: stopped a request: request cancelled by the client" in server.log_tail(200)
