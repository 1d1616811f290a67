"""The durable on-disk library: writer, log, readers, persistence, crash recovery."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import numpy as np
import pytest

from rci.errors import AlreadyExistsError, DescriptorMismatchError, NotFoundError, RciError
from rci.library.index import LibraryIndex, fingerprint_ids, video_keys
from rci.library.store import LibraryFolder, LibraryWriter, VideoFingerprints
from rci.serving.libraries import Libraries

DIM = 16


def unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=-1, keepdims=True)).astype(np.float32)


def video(video_id: str, n: int, seed: int, duration: float | None = None) -> VideoFingerprints:
    rng = np.random.default_rng(seed)
    return VideoFingerprints(
        video_id=video_id,
        embeddings=unit(rng.normal(size=(n, DIM))),
        timestamps=np.arange(n, dtype=np.float32),
        duration=float(n) if duration is None else duration,
    )


def libraries(data_dir: Path, names=("lib",), descriptor: str = "sscd_test", dim: int = DIM):
    return Libraries(data_dir, list(names), descriptor=descriptor, dim=dim)


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file under a library folder, by relative path (the lock file left out)."""
    return {
        str(p.relative_to(folder)): p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and p.name != ".lock"
    }


@pytest.fixture
def three_videos() -> list[VideoFingerprints]:
    return [video("a", 5, 0, 5.25), video("b", 3, 1, 2.5), video("c", 7, 2, 7.125)]


def test_add_then_search_is_exact(tmp_path, three_videos) -> None:
    libs = libraries(tmp_path)
    writer = libs.writer("lib")
    assert [writer.add(v) for v in three_videos] == [(5, False), (3, False), (7, False)]
    index = libs.index("lib")
    assert index.video_ids == ["a", "b", "c"]
    # Videos are keyed by their log position; a fingerprint's id is key << 20 | frame.
    assert index.keys == {"a": 0, "b": 1, "c": 2}
    ids = np.concatenate([fingerprint_ids(key, n) for key, n in [(0, 5), (1, 3), (2, 7)]])
    assert ids[5] == (1 << 20) and ids[-1] == (2 << 20) + 6
    np.testing.assert_array_equal(video_keys(ids), [0] * 5 + [1] * 3 + [2] * 7)
    # Search against numpy brute force over the concatenated fingerprints.
    base = np.concatenate([v.embeddings for v in three_videos])
    queries = unit(np.random.default_rng(9).normal(size=(6, DIM)))
    D, nbr = index.search(queries, 4)
    sims = queries @ base.T
    expected_I = np.argsort(-sims, axis=1)[:, :4]
    np.testing.assert_array_equal(nbr, ids[expected_I])
    np.testing.assert_allclose(D, np.take_along_axis(sims, expected_I, axis=1), atol=1e-5)
    # Asking for more neighbours than rows pads with -1.
    _, nbr = index.search(queries[:1], 20)
    assert (nbr[0, :15] >= 0).all() and (nbr[0, 15:] == -1).all()


def test_video_reads_back_what_was_added(tmp_path, three_videos) -> None:
    libs = libraries(tmp_path)
    for v in three_videos:
        libs.writer("lib").add(v)
    index = libs.index("lib")
    for want in three_videos:
        got = index.video(want.video_id)
        assert got.video_id == want.video_id
        np.testing.assert_array_equal(got.embeddings, want.embeddings)
        np.testing.assert_array_equal(got.timestamps, want.timestamps)
        assert got.duration == want.duration  # 5.25, 2.5, 7.125: exact at 3 decimals


def test_duration_is_kept_to_milliseconds(tmp_path) -> None:
    libs = libraries(tmp_path)
    libs.writer("lib").add(video("a", 2, 0, duration=12.34567))
    assert libs.index("lib").video("a").duration == 12.346


def test_repeated_id_is_refused_and_changes_nothing(tmp_path, three_videos) -> None:
    libs = libraries(tmp_path)
    for v in three_videos:
        libs.writer("lib").add(v)
    before = snapshot(tmp_path / "lib")
    with pytest.raises(AlreadyExistsError, match="'b'"):
        libs.writer("lib").add(video("b", 9, 5))
    assert snapshot(tmp_path / "lib") == before
    index = libs.index("lib")
    assert index.video_ids == ["a", "b", "c"]
    assert index.index.ntotal == 15
    np.testing.assert_array_equal(index.video("b").embeddings, three_videos[1].embeddings)
    # The error code is served as ALREADY_EXISTS.
    assert AlreadyExistsError.code == "ALREADY_EXISTS"


def test_unknown_library_is_not_found(tmp_path) -> None:
    libs = libraries(tmp_path, names=["one", "two"])
    for call in (libs.index, libs.writer, libs.folder):
        with pytest.raises(NotFoundError, match="'three'"):
            call("three")
    assert not (tmp_path / "three").exists()
    assert NotFoundError.code == "NOT_FOUND"


@pytest.mark.parametrize(
    "name", ["", "Upper", "-lead", "_lead", "a/b", "../up", "a.b", "sp ace", "x" * 65, "é"]
)
def test_invalid_library_names(tmp_path, name: str) -> None:
    with pytest.raises(ValueError, match="library name"):
        libraries(tmp_path, names=["ok", name])


def test_valid_library_names(tmp_path) -> None:
    names = ["a", "0", "a-b_c", "x" * 64]
    libs = libraries(tmp_path, names=names)
    assert [s["videos"] for s in libs.status(names)] == [0, 0, 0, 0]


def test_descriptor_mismatch(tmp_path) -> None:
    libraries(tmp_path, descriptor="a").writer("lib").add(video("v", 2, 0))
    with pytest.raises(DescriptorMismatchError, match="'a'.*'b'"):
        libraries(tmp_path, descriptor="b").index("lib")
    with pytest.raises(DescriptorMismatchError, match="dim 16"):
        libraries(tmp_path, descriptor="a", dim=8).writer("lib")
    # meta.json still names the first descriptor.
    meta = json.loads((tmp_path / "lib" / "meta.json").read_text())
    assert meta["generation"] and len(meta["generation"]) == 32
    assert meta == {"name": "lib", "descriptor": "a", "dim": DIM, "generation": meta["generation"]}


def test_reopening_sees_everything(tmp_path, three_videos) -> None:
    first = libraries(tmp_path, names=["lib", "other"])
    for v in three_videos:
        first.writer("lib").add(v)
    first.writer("other").add(video("z", 4, 7))
    again = libraries(tmp_path, names=["lib", "other"])
    index = again.index("lib")
    assert index.video_ids == ["a", "b", "c"]
    for want in three_videos:
        np.testing.assert_array_equal(index.video(want.video_id).embeddings, want.embeddings)
    assert again.index("other").video_ids == ["z"]
    # And the reopened library refuses ids added before it was opened.
    with pytest.raises(AlreadyExistsError):
        again.writer("lib").add(video("a", 1, 0))


def test_any_printable_id_round_trips(tmp_path) -> None:
    ids = ["vidéo ✓", "a/b\\c", '"quoted"', "名前"]
    libs = libraries(tmp_path)
    for n, video_id in enumerate(ids):
        libs.writer("lib").add(video(video_id, 2, n))
    assert libraries(tmp_path).index("lib").video_ids == ids
    with pytest.raises(AlreadyExistsError):
        libs.writer("lib").add(video("名前", 1, 0))


def test_torn_last_line_is_ignored_then_cut(tmp_path, three_videos) -> None:
    libs = libraries(tmp_path)
    libs.writer("lib").add(three_videos[0])
    log = tmp_path / "lib" / "log.jsonl"
    intact = log.read_bytes()
    # A crash mid-append leaves a partial record with no newline.
    with open(log, "ab") as f:
        f.write(b'{"op": "add", "video_id": "torn", "fi')
    reader = libraries(tmp_path).index("lib")
    assert reader.video_ids == ["a"]
    # The next writer cuts the torn tail before appending its own record.
    libs.writer("lib").add(three_videos[1])
    lines = log.read_bytes().splitlines(keepends=True)
    assert b"".join(lines[:1]) == intact
    assert len(lines) == 2 and lines[1].endswith(b"\n")
    assert [json.loads(line)["video_id"] for line in lines] == ["a", "b"]
    # The reader that saw the torn line catches up past it; a fresh one agrees.
    reader.refresh()
    assert reader.video_ids == ["a", "b"]
    assert libraries(tmp_path).index("lib").video_ids == ["a", "b"]


def test_torn_line_alone_in_the_log(tmp_path) -> None:
    libs = libraries(tmp_path)
    libs.folder("lib")  # creates the folder
    (tmp_path / "lib" / "log.jsonl").write_bytes(b'{"op": "ad')
    assert libraries(tmp_path).index("lib").video_ids == []
    libs.writer("lib").add(video("a", 2, 0))
    assert libraries(tmp_path).index("lib").video_ids == ["a"]


def test_orphan_video_file_is_never_read(tmp_path) -> None:
    # A crash after writing videos/N.npy but before its log line: the file is not a video,
    # and the next add takes its name.
    libs = libraries(tmp_path)
    libs.writer("lib").add(video("a", 2, 0))
    orphan = tmp_path / "lib" / "videos" / "000000001.npy"
    orphan.write_bytes(b"half-written")
    assert libraries(tmp_path).index("lib").video_ids == ["a"]
    libs.writer("lib").add(video("b", 3, 1))
    index = libraries(tmp_path).index("lib")
    assert index.video_ids == ["a", "b"]
    np.testing.assert_array_equal(index.video("b").embeddings, video("b", 3, 1).embeddings)


def test_first_write_of_a_process_reclaims_files_a_crash_left(tmp_path, three_videos):
    libs = libraries(tmp_path)
    for v in three_videos:
        libs.writer("lib").add(v)
    videos = tmp_path / "lib" / "videos"
    b_file = videos / "000000001.npy"
    kept = b_file.read_bytes()
    libs.writer("lib").delete("b")
    # A crash between b's delete record and the file's removal, one inside a later add's
    # write_atomic, and one between an add's file and its record (its key since taken).
    b_file.write_bytes(kept)
    (videos / "000000007.npy.tmp").write_bytes(b"half")
    (videos / "000000003.npy").write_bytes(b"no record")
    libs = libraries(tmp_path)  # the next process
    libs.writer("lib").add(video("d", 2, 3))
    live, _ = libs.folder("lib").current()
    assert sorted(p.name for p in videos.iterdir()) == sorted(
        Path(r["file"]).name for r in live.values()
    )
    assert sorted(live) == ["a", "c", "d"]
    index = libraries(tmp_path).index("lib")
    np.testing.assert_array_equal(index.video("c").embeddings, three_videos[2].embeddings)


def test_live_records_follow_what_other_writers_append(tmp_path) -> None:
    # A reader's LiveRecords reads only new lines; after every kind of write it must equal
    # live() over the whole log, as must its counts.
    reader = libraries(tmp_path).folder("lib")
    writer = libraries(tmp_path)
    steps = [
        lambda: writer.writer("lib").add(video("a", 3, 0)),
        lambda: writer.writer("lib").add(video("b", 5, 1)),
        lambda: writer.writer("lib").delete("a"),
        lambda: writer.writer("lib").add(video("b", 2, 2), replace=True),
        lambda: writer.writer("lib").add(video("a", 4, 3)),
    ]
    for step in steps:
        step()
        live = reader.live_records.catch_up()
        records, offset = reader.read_records(0)
        assert live.videos == reader.live(records)
        assert list(live.videos) == list(reader.live(records))  # log order
        assert live.fingerprints == sum(r["count"] for r in live.videos.values())
        assert (live.records, live.offset) == (len(records), offset)
    assert live.fingerprints == 6 and sorted(live.videos) == ["a", "b"]


def test_log_read_in_blocks_matches_whole(tmp_path, three_videos) -> None:
    # Lines crossing block boundaries, a blank line and a torn tail: every block size reads
    # the same complete records with the same offsets.
    libs = libraries(tmp_path)
    for v in three_videos:
        libs.writer("lib").add(v)
    libs.writer("lib").delete("b")
    folder = libs.folder("lib")
    with open(folder.log_path, "ab") as f:
        f.write(b'\n{"op": "add", "video_id": "torn"')
    whole = folder.read_entries(0)
    assert [r["video_id"] for r, _ in whole] == ["a", "b", "c", "b"]
    for block in (1, 7, 64, 1000):
        assert list(folder.iter_entries(0, block=block)) == whole
        assert list(folder.iter_entries(whole[1][1], block=block)) == whole[2:]


def test_live_records_reread_a_library_made_again(tmp_path) -> None:
    folder = libraries(tmp_path).folder("lib")
    libraries(tmp_path).writer("lib").add(video("a", 3, 0))
    libraries(tmp_path).writer("lib").add(video("b", 3, 1))
    assert sorted(folder.live_records.catch_up().videos) == ["a", "b"]
    (tmp_path / "lib" / "log.jsonl").unlink()  # removed and made again, smaller
    libraries(tmp_path).writer("lib").add(video("c", 2, 2))
    live = folder.live_records.catch_up()
    assert list(live.videos) == ["c"] and live.fingerprints == 2 and live.records == 1


def test_live_records_reread_a_library_made_again_in_the_same_inode(tmp_path) -> None:
    # A library removed and made again may get its old log's inode number back, and its log
    # may be longer: only meta.json's generation tells. Rewriting the log in place (same
    # inode) after a new meta.json stands for that; a writer holding the old view would
    # key, delete and reclaim against the wrong log.
    folder = libraries(tmp_path).folder("lib")
    libraries(tmp_path).writer("lib").add(video("a", 3, 0))
    assert list(folder.live_records.catch_up().videos) == ["a"]
    other = tmp_path / "other"
    writer = libraries(other).writer("lib")
    for n, name in enumerate(["x", "y", "z"]):
        writer.add(video(name, 2, n))
    (tmp_path / "lib" / "meta.json").write_bytes((other / "lib" / "meta.json").read_bytes())
    with open(tmp_path / "lib" / "log.jsonl", "r+b") as f:
        f.truncate(0)
        f.write((other / "lib" / "log.jsonl").read_bytes())
    live = folder.live_records.catch_up()
    assert list(live.videos) == ["x", "y", "z"] and live.records == 3 and live.fingerprints == 6


def test_reader_refreshes_on_index(tmp_path, three_videos) -> None:
    reader = libraries(tmp_path)
    writer = libraries(tmp_path)
    writer.writer("lib").add(three_videos[0])
    index = reader.index("lib")
    assert index.video_ids == ["a"]
    writer.writer("lib").add(three_videos[1])
    writer.writer("lib").add(three_videos[2])
    assert index.video_ids == ["a"]  # not refreshed yet
    assert reader.index("lib") is index
    assert index.video_ids == ["a", "b", "c"]
    assert index.index.ntotal == 15
    assert index.means.ntotal == 3
    np.testing.assert_array_equal(index.video("c").embeddings, three_videos[2].embeddings)
    # A refresh with nothing new changes nothing.
    index.refresh()
    assert index.index.ntotal == 15


def test_empty_library_index(tmp_path) -> None:
    index = libraries(tmp_path).index("lib")
    assert index.video_ids == [] and index.ntotal == 0 and index.means.ntotal == 0
    assert index.describe() == "exact"


def test_add_rejects_bad_videos(tmp_path) -> None:
    writer = libraries(tmp_path).writer("lib")
    with pytest.raises(RciError, match="must have 16 columns, got 8"):
        writer.add(
            VideoFingerprints("a", np.ones((2, 8), np.float32), np.zeros(2, np.float32), 1.0)
        )
    with pytest.raises(RciError, match="1-1048576 fingerprints"):
        writer.add(
            VideoFingerprints("a", np.ones((0, DIM), np.float32), np.zeros(0, np.float32), 1.0)
        )
    for bad_id in ["", "x" * 257, "new\nline", "   ", "\t"]:
        with pytest.raises(RciError, match="video id"):
            writer.add(video(bad_id, 2, 0))
    writer.add(video("x" * 256, 2, 0))
    assert libraries(tmp_path).index("lib").video_ids == ["x" * 256]


def poisoned(kind: str) -> VideoFingerprints:
    """A 10-frame video with one kind of poison a client may send rci_library_add directly."""
    good = video("p", 10, 3)
    emb, times, duration = good.embeddings.copy(), good.timestamps.copy(), good.duration
    if kind == "nan":
        emb[4, 7] = np.nan
    elif kind == "inf":
        emb[0, 0] = np.inf
    elif kind == "zero":
        emb[2] = 0
    elif kind == "huge":
        emb *= 1e6  # one such video was "reproduced" at 1.0 by every query
    elif kind == "nan_time":
        times[3] = np.nan
    elif kind == "negative_time":
        times[0] = -1
    elif kind == "unordered_time":
        times[[2, 3]] = times[[3, 2]]
    elif kind == "nan_duration":
        duration = float("nan")
    elif kind == "negative_duration":
        duration = -5.0
    elif kind == "inf_duration":
        duration = float("inf")
    return VideoFingerprints("p", emb, times, duration)


POISONS = {
    "nan": "NaN or infinite", "inf": "NaN or infinite", "zero": "unit length",
    "huge": "unit length", "nan_time": "NaN or infinite", "negative_time": r"lie in \[0",
    "unordered_time": "increase strictly", "nan_duration": "duration must be finite",
    "negative_duration": "duration must be finite", "inf_duration": "duration must be finite",
}  # fmt: skip


@pytest.mark.parametrize("kind", sorted(POISONS))
def test_add_refuses_poisoned_videos(tmp_path, kind) -> None:
    libs = libraries(tmp_path)
    libs.writer("lib").add(video("kept", 4, 1))
    with pytest.raises(RciError, match=POISONS[kind]):
        libs.add("lib", poisoned(kind))
    with pytest.raises(RciError, match=POISONS[kind]):
        libs.writer("lib").add(poisoned(kind))  # the writer checks too, whoever calls it
    assert libraries(tmp_path).index("lib").video_ids == ["kept"]


def test_error_messages_quote_at_most_200_characters_of_an_id(tmp_path) -> None:
    with pytest.raises(RciError) as refused:
        libraries(tmp_path).writer("lib").add(video("x" * 1_000_000, 2, 0))
    assert len(str(refused.value)) < 400 and "1000000 characters" in str(refused.value)


def test_fingerprints_validation() -> None:
    with pytest.raises(ValueError, match="float32"):
        VideoFingerprints("a", np.ones((2, 4)), np.zeros(2, np.float32), 1.0)
    with pytest.raises(ValueError, match="timestamps"):
        VideoFingerprints("a", np.ones((2, 4), np.float32), np.zeros(3, np.float32), 1.0)


def test_status(tmp_path, three_videos) -> None:
    libraries(tmp_path, names=["other"], descriptor="old").writer("other").add(video("z", 2, 0))
    libs = libraries(tmp_path, names=["lib", "empty", "other"])
    for v in three_videos:
        libs.writer("lib").add(v)
    status = libs.status(["lib", "empty", "other"])
    assert status[0] == {
        "name": "lib",
        "descriptor": "sscd_test",
        "dim": DIM,
        "videos": 3,
        "fingerprints": 15,
        "audio_fingerprints": 0,
        "videos_without_audio_fingerprints": 3,
        "index": "exact",
        "index_built_at": None,
        "build_advised": False,
    }
    assert status[1] == {
        "name": "empty",
        "descriptor": "sscd_test",
        "dim": DIM,
        "videos": 0,
        "fingerprints": 0,
        "audio_fingerprints": 0,
        "videos_without_audio_fingerprints": 0,
        "index": "exact",
        "index_built_at": None,
        "build_advised": False,
    }
    assert status[2]["name"] == "other"
    assert "'old'" in status[2]["error"] and "'sscd_test'" in status[2]["error"]


def test_concurrent_writers_serialise(tmp_path) -> None:
    # Four writers, each with its own Libraries (its own lock file descriptor), add 5 videos
    # each plus one shared id: every distinct id lands once, the shared id exactly once.
    errors: list[Exception] = []
    added: list[str] = []

    def work(w: int) -> None:
        writer = libraries(tmp_path).writer("lib")
        for n in range(5):
            writer.add(video(f"w{w}-{n}", 2, 10 * w + n))
        try:
            writer.add(video("shared", 2, 99))
            added.append(f"w{w}")
        except AlreadyExistsError as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(w,)) for w in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(added) == 1 and len(errors) == 3
    index = libraries(tmp_path).index("lib")
    assert sorted(index.video_ids) == sorted(
        [f"w{w}-{n}" for w in range(4) for n in range(5)] + ["shared"]
    )
    files = [json.loads(line)["file"] for line in (tmp_path / "lib" / "log.jsonl").open()]
    assert len(set(files)) == 21
    for video_id in index.video_ids:
        if video_id != "shared":
            w, k = (int(x) for x in video_id[1:].split("-"))
            want = video(video_id, 2, 10 * w + k).embeddings
            np.testing.assert_array_equal(index.video(video_id).embeddings, want)


def test_library_folder_and_index_directly(tmp_path) -> None:
    folder = LibraryFolder(tmp_path, "direct", descriptor="d", dim=DIM)
    assert (tmp_path / "direct" / "videos").is_dir()
    assert folder.read_records(0) == ([], 0)
    index = LibraryIndex(folder)
    assert index.index.ntotal == 0


def test_failed_refresh_leaves_the_index_consistent_and_retries(tmp_path) -> None:
    libs = libraries(tmp_path)
    writer = libs.writer("lib")
    writer.add(video("a", 2, 0))
    index = libs.index("lib")
    writer.add(video("b", 3, 1))
    writer.add(video("c", 4, 2))
    # b's fingerprints are unreadable for a moment (a disk error, a copy in progress).
    path = tmp_path / "lib" / "videos" / "000000001.npy"
    good = path.read_bytes()
    path.write_bytes(b"unreadable")
    with pytest.raises(ValueError):
        libs.index("lib")
    path.write_bytes(good)
    index = libs.index("lib")
    assert index.ntotal == 9 and index.means.ntotal == 3
    assert index.video_ids == ["a", "b", "c"]


def test_delete_removes_a_video_from_readers_old_and_new(tmp_path, three_videos) -> None:
    libs = libraries(tmp_path)
    for v in three_videos:
        libs.writer("lib").add(v)
    reader = libs.index("lib")  # caught up before the delete
    assert libs.writer("lib").delete("b") == 3
    for index in (libs.index("lib"), LibraryIndex(libs.folder("lib"))):
        assert index.video_ids == ["a", "c"] and index.ntotal == 12 and index.means.ntotal == 2
        # Ids still name the right video and frame: each fingerprint finds itself.
        _, ids = index.search(three_videos[2].embeddings, 1)
        assert ids[:, 0].tolist() == fingerprint_ids(2, 7).tolist()
        np.testing.assert_allclose(index.video("c").embeddings, three_videos[2].embeddings)
    assert reader is libs.index("lib")
    assert not (tmp_path / "lib" / "videos" / "000000001.npy").exists()  # space returned


def test_delete_of_an_unknown_id_is_not_found_and_changes_nothing(tmp_path, three_videos):
    libs = libraries(tmp_path)
    libs.writer("lib").add(three_videos[0])
    before = snapshot(tmp_path / "lib")
    for missing in ("nope", "A"):
        with pytest.raises(NotFoundError, match="not in library 'lib'"):
            libs.writer("lib").delete(missing)
    assert snapshot(tmp_path / "lib") == before
    libs.writer("lib").delete("a")
    with pytest.raises(NotFoundError):
        libs.writer("lib").delete("a")  # twice
    assert libs.index("lib").video_ids == []


def test_deleted_id_can_be_ingested_again(tmp_path, three_videos) -> None:
    # Replacing a video: delete, then add new fingerprints under the same id.
    libs = libraries(tmp_path)
    libs.writer("lib").add(three_videos[0])
    index = libs.index("lib")
    libs.writer("lib").delete("a")
    replacement = video("a", 4, 9)
    libs.writer("lib").add(replacement)
    for reader in (index, LibraryIndex(libs.folder("lib"))):
        reader.refresh()
        assert reader.video_ids == ["a"] and reader.index.ntotal == 4
        np.testing.assert_allclose(reader.video("a").embeddings, replacement.embeddings)


def test_reader_catching_up_skips_an_add_deleted_later(tmp_path, three_videos) -> None:
    # The add's file is gone by the time this reader reads the log: it must not load it.
    libs = libraries(tmp_path)
    index = libs.index("lib")
    libs.writer("lib").add(three_videos[0])
    libs.writer("lib").add(three_videos[1])
    libs.writer("lib").delete("a")
    index.refresh()
    assert index.video_ids == ["b"] and index.index.ntotal == 3


def test_reader_survives_a_delete_between_reading_the_log_and_loading(tmp_path, three_videos):
    # Another process deletes "a" after this reader has read the log but before it loads
    # "a"'s file: the reader reads the log again (the delete record is durable before the
    # file goes) instead of failing the request.
    class DeletedMidway(LibraryFolder):
        def load_video(self, record):
            if record["video_id"] == "a" and not getattr(self, "deleted", False):
                self.deleted = True
                LibraryWriter(
                    LibraryFolder(tmp_path, "lib", descriptor="sscd_test", dim=DIM)
                ).delete("a")
            return super().load_video(record)

    libs = libraries(tmp_path)
    libs.writer("lib").add(three_videos[0])
    libs.writer("lib").add(three_videos[1])
    index = LibraryIndex(DeletedMidway(tmp_path, "lib", descriptor="sscd_test", dim=DIM))
    assert index.video_ids == ["b"] and index.index.ntotal == 3
