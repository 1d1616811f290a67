"""Audio fingerprints in the durable library: stored beside the frames, read back, deleted
and replaced with them, reclaimed after a crash, counted by status."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from rci.errors import RciError
from rci.library.index import fingerprint_ids, video_keys
from rci.library.store import VideoFingerprints
from rci.match.recall import RecallParams
from rci.preprocess.audio_prints import AUDIO_PRINT, WINDOW_BYTES, AudioPrints
from rci.serving.libraries import Libraries, LibrarySettings
from tests.test_library import DIM, libraries, snapshot, unit, video

KIND = "test-bits"


def prints(n: int, seed: int, width: int = 4) -> AudioPrints:
    rng = np.random.default_rng(seed)
    times = (np.arange(n) * 0.5).astype(np.float32)
    return AudioPrints(KIND, times, rng.integers(0, 256, size=(n, width), dtype=np.uint8))


def with_audio(video_id: str, n: int, seed: int, windows: int) -> VideoFingerprints:
    v = video(video_id, n, seed)
    v.audio = prints(windows, seed)
    return v


def test_audio_reads_back_beside_the_frames(tmp_path) -> None:
    libs = libraries(tmp_path)
    libs.writer("lib").add(with_audio("a", 5, 0, windows=9))
    libs.writer("lib").add(with_audio("silent", 3, 1, windows=0))
    index = libraries(tmp_path).index("lib")
    got = index.video("a").audio
    assert got.kind == KIND
    np.testing.assert_array_equal(got.bits, prints(9, 0).bits)
    np.testing.assert_array_equal(got.times, prints(9, 0).times)
    # A video without sound stores no audio file, and reads back as no windows.
    silent = index.video("silent").audio
    assert silent.bits.shape == (0, 4) and silent.times.shape == (0,)
    files = sorted(p.name for p in (tmp_path / "lib" / "videos").iterdir())
    assert files == ["000000000.audio.npy", "000000000.npy", "000000001.npy"]


def test_status_counts_audio_and_the_videos_stored_without_it(tmp_path) -> None:
    libs = libraries(tmp_path)
    libs.writer("lib").add(video("old", 2, 0))  # as stored before audio fingerprints
    libs.writer("lib").add(with_audio("new", 2, 1, windows=6))
    status = libs.status(["lib"])[0]
    assert status["audio_fingerprints"] == 6
    assert status["videos_without_audio_fingerprints"] == 1
    assert libs.index("lib").video("old").audio is None
    # Ingesting the old video again with replace brings its audio in.
    libs.writer("lib").add(with_audio("old", 2, 2, windows=4), replace=True)
    status = libs.status(["lib"])[0]
    assert status["audio_fingerprints"] == 10
    assert status["videos_without_audio_fingerprints"] == 0


def test_delete_and_replace_remove_the_audio_file(tmp_path) -> None:
    libs = libraries(tmp_path)
    writer = libs.writer("lib")
    writer.add(with_audio("a", 2, 0, windows=5))
    writer.add(with_audio("b", 2, 1, windows=5))
    videos = tmp_path / "lib" / "videos"
    writer.delete("a")
    assert not (videos / "000000000.audio.npy").exists()
    writer.add(with_audio("b", 2, 2, windows=3), replace=True)
    assert not (videos / "000000001.audio.npy").exists()
    assert (videos / "000000003.audio.npy").exists()  # the log's fourth record
    np.testing.assert_array_equal(libs.index("lib").video("b").audio.bits, prints(3, 2).bits)
    assert libs.status(["lib"])[0]["audio_fingerprints"] == 3


def test_crash_left_audio_files_are_reclaimed(tmp_path) -> None:
    libs = libraries(tmp_path)
    libs.writer("lib").add(with_audio("a", 2, 0, windows=5))
    videos = tmp_path / "lib" / "videos"
    # A crash after an add wrote its audio file but before its frames or its record.
    (videos / "000000001.audio.npy").write_bytes(b"no record")
    (videos / "000000001.audio.npy.tmp").write_bytes(b"half")
    libs = libraries(tmp_path)  # the next process
    libs.writer("lib").add(with_audio("b", 2, 1, windows=2))
    names = sorted(p.name for p in videos.iterdir())
    assert names == ["000000000.audio.npy", "000000000.npy", "000000001.audio.npy",
                     "000000001.npy"]  # fmt: skip
    np.testing.assert_array_equal(libs.index("lib").video("b").audio.bits, prints(2, 1).bits)


@pytest.mark.parametrize(
    "audio, message",
    [
        (AudioPrints(KIND, np.zeros(2, np.float32), np.zeros((2, 4), np.uint8)), "increase"),
        (AudioPrints(KIND, np.array([0, np.nan], np.float32), np.zeros((2, 4), np.uint8)), "NaN"),
        (AudioPrints(KIND, np.zeros(3, np.float32), np.zeros((2, 4), np.uint8)), "one time"),
        (AudioPrints(KIND, np.zeros(0, np.float32), np.zeros((0, 0), np.uint8)), "bytes"),
        (AudioPrints(KIND, np.zeros(0, np.float32), np.zeros((0, 2048), np.uint8)), "bytes"),
        (AudioPrints("Bad Kind!", np.zeros(0, np.float32), np.zeros((0, 4), np.uint8)), "kind"),
    ],
)
def test_bad_audio_is_refused_and_changes_nothing(tmp_path, audio, message) -> None:
    libs = libraries(tmp_path)
    libs.writer("lib").add(with_audio("a", 2, 0, windows=3))
    before = snapshot(tmp_path / "lib")
    bad = video("b", 2, 1)
    bad.audio = audio
    with pytest.raises(RciError, match=message):
        libs.add("lib", bad)
    assert snapshot(tmp_path / "lib") == before


def test_audio_bits_must_be_uint8() -> None:
    with pytest.raises(RciError, match="uint8"):
        AudioPrints(KIND, np.zeros(2, np.float32), np.zeros((2, 4), np.float32))


def test_log_record_names_the_audio_fingerprint(tmp_path) -> None:
    libs = libraries(tmp_path)
    libs.writer("lib").add(with_audio("a", 2, 0, windows=5))
    libs.writer("lib").add(video("old", 2, 1))
    records = [
        json.loads(line) for line in (tmp_path / "lib" / "log.jsonl").read_text().splitlines()
    ]
    assert records[0]["audio"] == KIND and records[0]["audio_count"] == 5
    assert records[0]["audio_width"] == 4
    assert "audio" not in records[1]


def chroma_like(n: int, seed: int) -> VideoFingerprints:
    """A video with n audio windows of this server's fingerprint (random bits)."""
    v = video(f"v{seed}", 3, seed)
    rng = np.random.default_rng(seed)
    v.audio = AudioPrints(
        AUDIO_PRINT,
        (np.arange(n) * 0.5).astype(np.float32),
        rng.integers(0, 256, size=(n, WINDOW_BYTES), dtype=np.uint8),
    )
    return v


def test_audio_index_follows_adds_deletes_and_replaces(tmp_path) -> None:
    libs = libraries(tmp_path)
    a, b = chroma_like(6, 1), chroma_like(4, 2)
    libs.writer("lib").add(a)
    libs.writer("lib").add(b)
    libs.writer("lib").add(with_audio("other-kind", 2, 3, windows=5))  # not comparable
    index = libs.index("lib")
    assert index.audio.ntotal == 10
    D, ids = index.search_audio(b.audio.bits[[2]], 1)
    assert D[0, 0] == 0 and ids[0, 0] == fingerprint_ids(1, 4)[2]
    libs.writer("lib").delete("v1")
    libs.writer("lib").add(dataclasses.replace(chroma_like(3, 4), video_id="v2"), replace=True)
    index = libs.index("lib")
    assert index.audio.ntotal == 3
    D, ids = index.search_audio(chroma_like(3, 4).audio.bits, 1)
    assert (D[:, 0] == 0).all() and (video_keys(ids[:, 0]) == 4).all()


def test_audio_recall_finds_a_video_no_frame_matches(tmp_path) -> None:
    # No frame passes the visual recall's bar; the audio holds the query's.
    def served(**recall) -> Libraries:
        params = RecallParams(min_similarity=0.99, video_candidates=0, **recall)
        settings = {"lib": LibrarySettings(recall=params)}
        return Libraries(tmp_path, settings, descriptor="sscd_test", dim=DIM)

    libs = served()
    target = chroma_like(40, 7)
    for seed in (5, 6, 7, 8):
        libs.writer("lib").add(chroma_like(40, seed))
    views = np.repeat(target.audio.bits[10:30][None], 20, axis=0)  # every tempo and phase
    views[:, :, 0] ^= 0b111  # 3 bit errors a window: a re-encoded copy
    query = unit(np.ones((4, DIM), np.float32))
    assert libs.recall(["lib"], query)[0] == []
    found, _ = libs.recall(["lib"], query, audio=views)
    assert [(name, v.video_id) for name, v in found] == [("lib", "v7")]
    np.testing.assert_array_equal(found[0][1].audio.bits, target.audio.bits)
    # Off by configuration, and nothing for a query without audio windows.
    quiet = np.zeros((20, 0, WINDOW_BYTES), np.uint8)
    assert libs.recall(["lib"], query, audio=quiet)[0] == []
    assert served(audio_candidates=0).recall(["lib"], query, audio=views)[0] == []


@pytest.mark.parametrize(
    "views, message",
    [
        (np.zeros((20, 3, 32), np.float32), "uint8"),
        (np.zeros((19, 3, 32), np.uint8), r"\(20, A, 32\)"),
        (np.zeros((20, 3, 31), np.uint8), r"\(20, A, 32\)"),
        (np.zeros((20, 3), np.uint8), r"\(20, A, 32\)"),
    ],
)
def test_bad_audio_views_are_refused(tmp_path, views, message) -> None:
    libs = libraries(tmp_path)
    libs.writer("lib").add(chroma_like(4, 1))
    with pytest.raises(RciError, match=message):
        libs.recall(["lib"], unit(np.ones((2, DIM), np.float32)), audio=views)
