"""Libraries configured by file, served end to end: own parameters per library, detect over
several, replace, and an IVF-PQ snapshot built beside the running server."""

from __future__ import annotations

import re

import numpy as np
import pytest

from rci.describe.descriptor import EMBEDDING_DIM
from rci.library.store import LibraryFolder, LibraryWriter, VideoFingerprints
from rci.match.alignment import AlignParams
from rci.match.matchlite import MatchLite
from rci.preprocess.audio_prints import AUDIO_PRINT, WINDOW_BYTES, AudioPrints
from rci.serving.server import TritonServer
from rci_client import RciClient, RciClientError
from rci_client.cli import main as cli
from tests.conftest import server_options
from tests.triton_calls import raw

CONFIG = """
[libraries.main]
index = "ivfpq"
nlist = 64
nprobe = 16
train_at = 10000

[libraries.sparse]
fingerprint_interval = 2.0
k = 5
verdict = "heuristic"
"""


@pytest.fixture(scope="module")
def configured(tmp_path_factory, media):
    """A server over libraries 'main' (IVF-PQ once built) and 'sparse' (one frame in 2 s,
    decided by the hand-set rule)."""
    work = tmp_path_factory.mktemp("configured")
    config = work / "libraries.toml"
    config.write_text(CONFIG)
    data = work / "data"
    options = server_options(work / "server", data, libraries_config=config)
    with TritonServer(options) as server, RciClient(server.http_url) as client:
        counts = {}
        for video_id, path in media["library"].items():
            counts[video_id] = client.ingest(path, video_id).num_fingerprints
        yield {"server": server, "client": client, "data": data, "config": config,
               "counts": counts}  # fmt: skip


def _pad_audio(n: int) -> AudioPrints:
    """64 random audio windows, 0.5 s apart: pad video n's."""
    bits = np.random.default_rng(1000 + n).integers(0, 256, (64, WINDOW_BYTES), dtype=np.uint8)
    return AudioPrints(AUDIO_PRINT, np.arange(64, dtype=np.float32) / 2, bits)


def _pad(data, n_videos: int) -> None:
    """Unrelated videos written by a second writer, to give IVF-PQ enough to train on, each
    with 64 audio windows: 10,880 in all, enough for a binary IVF over the audio."""
    writer = LibraryWriter(
        LibraryFolder(data, "main", descriptor="sscd_resnet50", dim=EMBEDDING_DIM)
    )
    rng = np.random.default_rng(0)
    for n in range(n_videos):
        frames = rng.normal(size=(60, EMBEDDING_DIM)).astype(np.float32)
        frames /= np.linalg.norm(frames, axis=1, keepdims=True)
        video = VideoFingerprints(f"pad{n}", frames, np.arange(60, dtype=np.float32), 60.0)
        video.audio = _pad_audio(n)
        writer.add(video)


def test_each_library_keeps_its_own_fingerprint_interval(configured, media):
    client = configured["client"]
    for video_id, path in list(media["library"].items())[:2]:
        sparse = client.ingest(path, video_id, "sparse").num_fingerprints
        dense = configured["counts"][video_id]
        assert sparse == (dense + 1) // 2  # one frame in 2 s of a 1 fps sampling
    names = [s["name"] for s in client.status()]
    assert names == ["main", "sparse"]
    with pytest.raises(RciClientError, match="unknown library 'second'"):
        client.ingest(media["query"], "q", "second")


def test_ingest_samples_only_the_frames_its_library_keeps(configured, media):
    # rci_ingest hands rci_preprocess its LIBRARY: 'sparse' keeps one fingerprint per 2 s,
    # so only one frame in 2 s is decoded, boxed and described; 'main' keeps every second.
    video = np.frombuffer(media["query"].read_bytes(), np.uint8)
    times = {}
    for library in ("main", "sparse"):
        inputs = [("VIDEO_BYTES", video, "UINT8"),
                  ("LIBRARY", np.array([library.encode()], dtype=object), "BYTES")]  # fmt: skip
        found, error = raw(configured["server"], "http", "rci_preprocess", inputs)
        assert error is None, error
        times[library] = found.as_numpy("TIMESTAMPS")
    assert np.all(np.diff(times["main"]) < 1.3)
    assert np.all(np.diff(times["sparse"]) >= 1.5) and times["sparse"][0] == 0
    assert len(times["sparse"]) == (len(times["main"]) + 1) // 2
    inputs[1] = ("LIBRARY", np.array([b"second"], dtype=object), "BYTES")
    _, error = raw(configured["server"], "http", "rci_preprocess", inputs)
    assert "unknown library 'second'" in error


def test_detect_over_two_libraries_labels_each_match(configured, media):
    client, truth = configured["client"], media["truth"]
    path = media["library"][truth.video_id]
    client.ingest(path, truth.video_id, "sparse", replace=True)
    result = client.detect(media["query"], ["main", "sparse"])
    found = {(m.library, m.video_id) for m in result.reproduced}
    assert ("main", truth.video_id) in found and ("sparse", truth.video_id) in found
    assert {m.library for m in result.matches} <= {"main", "sparse"}
    only_sparse = client.detect(media["query"], "sparse")
    assert {m.library for m in only_sparse.matches} == {"sparse"}
    as_json = result.as_dict()["matches"][0]
    assert as_json["library"] in ("main", "sparse")
    assert as_json["probability"] is not None and as_json["copied_fraction"] is not None


def test_each_library_decides_by_its_own_verdict(configured, media):
    """'sparse' asks the hand-set rule to decide: its candidates are reproduced exactly where
    the heuristic score reaches its threshold; 'main' keeps the default, MatchLite."""
    client = configured["client"]
    scorer = MatchLite()
    for query in (media["query"], media["inside"], media["unrelated"]):
        result = client.detect(query, ["main", "sparse"])
        for m in result.matches:
            if m.library == "sparse":
                assert m.reproduced == (m.score >= AlignParams().threshold)
            else:
                assert m.reproduced == (m.probability >= scorer.cut(bool(m.segments)))
    # The request's VERDICT overrides the library's.
    asked = client.detect(media["query"], "sparse", verdict="matchlite")
    assert all(
        m.reproduced == (m.probability >= scorer.cut(bool(m.segments))) for m in asked.matches
    )


def test_replace_through_the_ensemble(configured, media):
    client = configured["client"]
    video_id = "replaced"
    first, second = list(media["library"].values())[:2]
    assert not client.ingest(first, video_id, "sparse").replaced
    with pytest.raises(RciClientError, match="already in library"):
        client.ingest(second, video_id, "sparse")
    # The answer says which happened: swapped out here, added where the id was new.
    assert client.ingest(second, video_id, "sparse", replace=True).replaced
    assert not client.ingest(first, "replaced-new", "sparse", replace=True).replaced
    client.delete("replaced-new", "sparse")
    # The id now shows the second video: a copy of the first no longer finds it.
    result = client.detect(first, "sparse")
    assert video_id not in {m.video_id for m in result.reproduced}
    assert video_id in {m.video_id for m in client.detect(second, "sparse").reproduced}
    client.delete(video_id, "sparse")


def test_ivfpq_snapshot_built_beside_the_running_server(configured, media):
    client, data, truth = configured["client"], configured["data"], media["truth"]
    _pad(data, 170)  # 10,200 fingerprints and the demo's
    status = {s["name"]: s for s in client.status()}
    assert status["main"]["index"] == "exact (IVF-PQ from 10000 fingerprints)"
    assert status["main"]["build_advised"]
    args = ["build-index", "--data-dir", str(data), "--library", "main"]
    assert cli([*args, "--libraries-config", str(configured["config"])]) == 0
    status = {s["name"]: s for s in client.status()}
    assert status["main"]["index"].startswith("IVF64,PQ32 nprobe 16")
    # The pads' 10,880 windows and the demo videos' own sound.
    audio = re.search(r"; audio BIVF256 nprobe 32 \((\d+) windows\)", status["main"]["index"])
    assert audio and int(audio.group(1)) >= 170 * 64, status["main"]["index"]
    assert not status["main"]["build_advised"]
    # A query that only sounds like pad7 (every window 3 bits off, no frame like it) finds it
    # through the snapshot's audio index.
    views = np.repeat(_pad_audio(7).bits[8:40][None], 20, axis=0)
    views[:, :, 0] ^= 0b111
    query = np.ones((3, EMBEDDING_DIM), np.float32) / np.sqrt(EMBEDDING_DIM)
    inputs = [("EMBEDDINGS", query, "FP32"), ("LIBRARY", np.array([b"main"], object), "BYTES"),
              ("QUERY_AUDIO_PRINTS", views, "UINT8")]  # fmt: skip
    found, error = raw(configured["server"], "http", "rci_recall", inputs)
    assert error is None, error
    assert b"pad7" in found.as_numpy("CANDIDATE_IDS").tolist()
    assert status["sparse"]["index"] == "exact"
    # The copy is still found, with its segment, now through IVF-PQ recall.
    result = client.detect(media["query"])
    best = result.reproduced[0]
    assert best.video_id == truth.video_id and best.library == "main"
    segment = best.segments[0]
    assert abs(segment.query_start - truth.query_start) <= 2
    assert abs(segment.ref_start - truth.ref_start) <= 2
    # Videos ingested and deleted after the build are replayed on top of the snapshot.
    late = list(media["library"].items())[-1]
    client.ingest(late[1], "late")
    assert "late" in {m.video_id for m in client.detect(late[1]).reproduced}
    client.delete("late")
    assert "late" not in {m.video_id for m in client.detect(late[1]).matches}
    assert {s["name"]: s for s in client.status()}["main"]["videos"] == len(media["library"]) + 170
