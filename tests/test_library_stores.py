"""The library behaviour a server relies on, run against both stores through one
parametrized fixture: the local store (log, files, faiss) and Milvus Lite."""

from __future__ import annotations

import numpy as np
import pytest

from rci.errors import (
    AlreadyExistsError,
    DescriptorMismatchError,
    NotFoundError,
    UnknownLibraryError,
)
from rci.library.store import VideoFingerprints
from rci.preprocess.audio_prints import AUDIO_PRINT, WINDOW_BYTES, AudioPrints
from rci.serving.libraries import Libraries, LibrarySettings

DIM = 512


def _settings(store: str, **extra) -> LibrarySettings:
    if store == "milvus":
        pytest.importorskip("pymilvus", reason="the milvus extra: pip install -e '.[milvus]'")
        return LibrarySettings(store="milvus", uri="milvus.db", **extra)
    return LibrarySettings(**extra)


@pytest.fixture(params=["local", "milvus"])
def store(request) -> str:
    return request.param


@pytest.fixture
def libraries(store, tmp_path) -> Libraries:
    return Libraries(tmp_path, {"main": _settings(store)}, descriptor="sscd_resnet50", dim=DIM)


def video(video_id: str, seed: int, frames: int = 30, windows: int = 0) -> VideoFingerprints:
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((frames, DIM)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    audio = None
    if windows:
        bits = rng.integers(0, 256, (windows, WINDOW_BYTES), dtype=np.uint8)
        audio = AudioPrints(AUDIO_PRINT, np.arange(windows, dtype=np.float32) / 2, bits)
    return VideoFingerprints(video_id, x, np.arange(frames, dtype=np.float32), float(frames), audio)


def _status(libraries: Libraries) -> tuple[int, int, int]:
    (s,) = libraries.status(["main"])
    return s["videos"], s["fingerprints"], s["audio_fingerprints"]


def test_a_copy_is_recalled_by_its_frames_and_its_sound(libraries):
    videos = [video(f"V{n}", n, windows=40) for n in range(4)]
    for v in videos:
        assert libraries.add("main", v) == (30, False)
    assert _status(libraries) == (4, 120, 160)
    rng = np.random.default_rng(7)
    query = videos[2].embeddings[5:20] + 0.03 * rng.standard_normal((15, DIM)).astype(np.float32)
    query /= np.linalg.norm(query, axis=1, keepdims=True)
    found, recurring = libraries.recall(["main"], query)
    assert found[0][0] == "main" and found[0][1].video_id == "V2"
    assert np.allclose(found[0][1].embeddings, videos[2].embeddings, atol=1e-6)
    assert recurring.shape == (15,)
    sound = np.repeat(videos[3].audio.bits[None, 10:30], 20, axis=0)  # 20 views: tempo, phase
    found, _ = libraries.recall(["main"], query, sound)
    assert {"V2", "V3"} <= {v.video_id for _, v in found}
    assert found[[v.video_id for _, v in found].index("V3")][1].audio.bits.shape == (40, 32)


def test_repeated_ids_are_refused_replace_swaps_and_delete_removes(libraries):
    libraries.add("main", video("A", 0))
    with pytest.raises(AlreadyExistsError, match="'A' is already in library 'main'"):
        libraries.add("main", video("A", 1))
    assert libraries.add("main", video("A", 1, frames=12), replace=True) == (12, True)
    assert _status(libraries) == (1, 12, 0)
    found, _ = libraries.recall(["main"], video("A", 1, frames=12).embeddings)
    assert [v.video_id for _, v in found] == ["A"] and len(found[0][1].embeddings) == 12
    assert libraries.delete("main", "A") == 12
    assert _status(libraries) == (0, 0, 0)
    with pytest.raises(NotFoundError, match="'A' is not in library 'main'"):
        libraries.delete("main", "A")
    assert libraries.recall(["main"], video("A", 1).embeddings)[0] == []


def test_the_fingerprint_interval_thins_what_either_store_keeps(store, tmp_path):
    libraries = Libraries(
        tmp_path, {"main": _settings(store, fingerprint_interval=2.0)},
        descriptor="sscd_resnet50", dim=DIM,
    )  # fmt: skip
    assert libraries.add("main", video("A", 0)) == (15, False)  # 30 s at one per 2 s
    assert _status(libraries)[:2] == (1, 15)


def test_unknown_libraries_and_another_descriptor_are_refused(store, libraries, tmp_path):
    with pytest.raises(UnknownLibraryError, match="unknown library 'nope'"):
        libraries.add("nope", video("A", 0))
    with pytest.raises(UnknownLibraryError):
        libraries.recall(["main", "nope"], video("A", 0).embeddings)
    libraries.add("main", video("A", 0))
    other = Libraries(tmp_path, {"main": _settings(store)}, descriptor="sscd_mobilenetv4", dim=DIM)
    with pytest.raises(DescriptorMismatchError, match="sscd_mobilenetv4"):
        other.add("main", video("B", 1))
    (status,) = other.status(["main"])
    assert "sscd_resnet50" in status["error"]
