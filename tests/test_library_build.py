"""IVF-PQ snapshots: the build, readers switching to them, the log replayed on top, rebuilds."""

from __future__ import annotations

import json

import numpy as np
import pytest

from rci.errors import RciError
from rci.library.build import MIN_FINGERPRINTS, auto_nlist, build_snapshot
from rci.library.index import LibraryIndex, read_pointer
from rci.library.store import LibraryFolder, LibraryWriter, VideoFingerprints
from rci.match.recall import RecallParams, recall
from rci.preprocess.audio_prints import AUDIO_PRINT, WINDOW_BYTES, AudioPrints
from rci.serving.libraries import Libraries, LibrarySettings, read_config
from rci_client.cli import main as cli

DIM = 64
FRAMES = 60  # per video


def unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=-1, keepdims=True)).astype(np.float32)


def random_video(rng: np.random.Generator, video_id: str) -> VideoFingerprints:
    """FRAMES random 512-d unit fingerprints, one a second."""
    frames = unit(rng.normal(size=(FRAMES, 512)))
    return VideoFingerprints(video_id, frames, np.arange(FRAMES, dtype=np.float32), float(FRAMES))


def video(video_id: str, seed: int, n: int = FRAMES) -> VideoFingerprints:
    # Frames of one video share a component, as shots of one scene do.
    rng = np.random.default_rng(seed)
    frames = unit(rng.normal(size=DIM) + 0.7 * rng.normal(size=(n, DIM)))
    return VideoFingerprints(video_id, frames, np.arange(n, dtype=np.float32), float(n))


def copy_of(v: VideoFingerprints, seed: int) -> np.ndarray:
    """An edited copy's frames: cosine about 0.9 to the source's."""
    noise = unit(np.random.default_rng(seed).normal(size=v.embeddings.shape))
    return unit(v.embeddings + 0.45 * noise)


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """A 12,000-fingerprint library (200 videos) and its first snapshot."""
    data = tmp_path_factory.mktemp("lib")
    folder = LibraryFolder(data, "lib", descriptor="d", dim=DIM)
    writer = LibraryWriter(folder)
    for n in range(200):
        writer.add(video(f"v{n}", n))
    pointer = build_snapshot(folder, pq_m=16, log=lambda _: None)
    return data, folder, pointer


def reader(data, use_snapshots=True) -> LibraryIndex:
    return LibraryIndex(LibraryFolder(data, "lib", descriptor="d", dim=DIM),
                        use_snapshots=use_snapshots, nprobe=8)  # fmt: skip


def test_auto_nlist_grows_with_the_square_root_and_fits_the_training_set() -> None:
    assert auto_nlist(12_000) == 256  # 4 sqrt(n) ~ 438, but 12,000 / 39 fills only 256
    assert auto_nlist(1_000_000) == 4096
    assert auto_nlist(10_000_000) == 16384
    assert auto_nlist(10**9) == 16384  # what 1M training vectors can train
    assert auto_nlist(10) == 64


def test_snapshot_is_published_whole(built) -> None:
    data, folder, pointer = built
    assert read_pointer(folder) == {k: v for k, v in pointer.items() if k != "seconds"}
    assert pointer["nlist"] == 256 and pointer["pq_m"] == 16
    assert pointer["fingerprints"] == 200 * FRAMES and pointer["videos"] == 200
    assert pointer["offset"] == (folder.path / "log.jsonl").stat().st_size
    files = sorted(p.name for p in (folder.path / "index" / pointer["name"]).iterdir())
    assert files == ["frames.faiss", "means.npy", "videos.json"]
    assert not list((folder.path / "index").rglob("*.tmp"))


def test_reader_serves_from_the_snapshot_and_still_finds_copies(built) -> None:
    data, _, pointer = built
    index = reader(data)
    assert index.snapshot["name"] == pointer["name"]
    assert index.describe().startswith("IVF256,PQ16 nprobe 8")
    assert index.ntotal == 12_000 and len(index.video_ids) == 200
    params = RecallParams(candidates=3, min_similarity=0.5, video_candidates=0)
    found = 0
    for n in range(0, 200, 10):
        source = video(f"v{n}", n)
        candidates = recall(index, copy_of(source, 1000 + n), params)
        found += bool(candidates) and candidates[0].video_id == source.video_id
        # Candidates carry full-precision fingerprints read from the files, not PQ codes.
        if candidates and candidates[0].video_id == source.video_id:
            np.testing.assert_array_equal(candidates[0].embeddings, source.embeddings)
    assert found == 20
    # A library configured flat ignores snapshots: exact search.
    assert reader(data, use_snapshots=False).describe() == "exact"


def test_log_written_after_the_snapshot_is_replayed(tmp_path) -> None:
    folder = LibraryFolder(tmp_path, "lib", descriptor="d", dim=DIM)
    writer = LibraryWriter(folder)
    for n in range(170):
        writer.add(video(f"v{n}", n))
    early = LibraryIndex(folder, use_snapshots=True)  # caught up before any snapshot
    assert early.describe() == "exact"
    build_snapshot(folder, pq_m=16, log=lambda _: None)
    writer.add(video("new", 500))
    writer.delete("v3")
    writer.add(video("v5", 501), replace=True)
    for index in (early, LibraryIndex(folder, use_snapshots=True)):
        index.refresh()
        assert index.snapshot is not None
        assert len(index.video_ids) == 170 and "v3" not in index.video_ids
        assert index.video_ids[-2:] == ["new", "v5"]
        assert index.ntotal == 170 * FRAMES and index.means.ntotal == 170
        params = RecallParams(candidates=1, min_similarity=0.5, video_candidates=0)
        for source, seed in [(video("new", 500), 1), (video("v5", 501), 2), (video("v7", 7), 3)]:
            assert [c.video_id for c in recall(index, copy_of(source, seed), params)] == [
                source.video_id
            ]
        # Neither the deleted video's frames (key 3) nor the replaced one's old (key 5) are
        # anywhere in the index; their own frames find other videos now.
        for old_key, seed in [(3, 3), (5, 5)]:
            _, ids = index.search(video(f"v{old_key}", seed).embeddings, 10)
            assert not np.isin(ids >> 20, [old_key]).any()
        assert index.keys["v5"] != 5
        assert recall(index, copy_of(video("v3", 3), 4), params)[0].video_id != "v3"


def test_rebuild_supersedes_and_prunes(tmp_path) -> None:
    folder = LibraryFolder(tmp_path, "lib", descriptor="d", dim=DIM)
    writer = LibraryWriter(folder)
    for n in range(170):
        writer.add(video(f"v{n}", n))
    names = []
    for extra in range(3):
        writer.add(video(f"extra{extra}", 900 + extra))
        index = LibraryIndex(folder, use_snapshots=True)
        names.append(build_snapshot(folder, pq_m=16, log=lambda _: None)["name"])
        index.refresh()  # a running reader switches to the new snapshot
        assert index.snapshot["name"] == names[-1]
        assert index.ntotal == (171 + extra) * FRAMES
    kept = sorted(p.name for p in (folder.path / "index").iterdir() if p.is_dir())
    assert kept == names[1:]  # the current one and the one before
    # A build that died before publishing leaves a folder; the next build removes it, and
    # a reader never looks at it.
    dead = folder.path / "index" / "000000000001-1"
    dead.mkdir()
    (dead / "frames.faiss").write_bytes(b"half")
    assert LibraryIndex(folder, use_snapshots=True).snapshot["name"] == names[-1]
    names.append(build_snapshot(folder, pq_m=16, log=lambda _: None)["name"])
    kept = sorted(p.name for p in (folder.path / "index").iterdir() if p.is_dir())
    assert kept == names[2:]


def test_a_snapshot_that_cannot_be_loaded_leaves_the_index_serving(built, tmp_path) -> None:
    import shutil

    data, folder, _ = built
    copy = tmp_path / "lib"
    shutil.copytree(folder.path, copy)
    index = LibraryIndex(LibraryFolder(tmp_path, "lib", descriptor="d", dim=DIM),
                         use_snapshots=True)  # fmt: skip
    pointer = read_pointer(index.folder)
    (copy / "index" / pointer["name"] / "frames.faiss").write_bytes(b"corrupt")
    (copy / "index" / "CURRENT").write_text(json.dumps({**pointer, "offset": 0}))
    index.refresh()  # the same snapshot folder under a new pointer: it fails to load
    assert "not loaded" in index.describe() and index.ntotal == 12_000
    fresh = LibraryIndex(index.folder, use_snapshots=True)  # exact, from the log
    assert fresh.describe().startswith("exact (snapshot") and fresh.ntotal == 12_000
    params = RecallParams(candidates=1, min_similarity=0.5, video_candidates=0)
    found = recall(fresh, copy_of(video("v9", 9), 1), params)
    assert [c.video_id for c in found] == ["v9"]


def test_build_refuses_a_small_library_and_writes_nothing(tmp_path) -> None:
    folder = LibraryFolder(tmp_path, "lib", descriptor="d", dim=DIM)
    LibraryWriter(folder).add(video("a", 0))
    with pytest.raises(RciError, match=f"at least {MIN_FINGERPRINTS}"):
        build_snapshot(folder, log=lambda _: None)
    assert read_pointer(folder) is None
    assert not [p for p in (folder.path / "index").iterdir() if p.is_dir()]


def test_build_index_command(tmp_path, capsys) -> None:
    config = tmp_path / "libraries.toml"
    config.write_text('[libraries.main]\nindex = "ivfpq"\nnlist = 64\n\n[libraries.flat]\n')
    libs = Libraries(
        tmp_path / "data",
        {"main": LibrarySettings(index="ivfpq"), "flat": LibrarySettings()},
        descriptor="sscd_resnet50",
        dim=512,
    )
    rng = np.random.default_rng(0)
    for n in range(170):
        libs.add("main", random_video(rng, f"v{n}"))
    args = ["build-index", "--data-dir", str(tmp_path / "data"), "--libraries-config", str(config)]
    assert cli([*args, "--library", "main"]) == 0
    pointer = json.loads((tmp_path / "data" / "main" / "index" / "CURRENT").read_text())
    assert pointer["nlist"] == 64 and pointer["pq_m"] == 32 and pointer["videos"] == 170
    assert "IVF64,PQ32 over 10200 fingerprints" in capsys.readouterr().out
    # --if-grown: nothing until the library holds that many times the snapshot's.
    assert cli([*args, "--library", "main", "--if-grown", "1.5"]) == 0
    assert "has not grown 1.5-fold since; nothing built" in capsys.readouterr().out
    for bad in ("1", "-2", "nan"):
        assert cli([*args, "--library", "main", "--if-grown", bad]) == 1
        assert "if_grown must be 0 or > 1" in capsys.readouterr().out
    assert json.loads((tmp_path / "data" / "main" / "index" / "CURRENT").read_text()) == pointer
    assert cli([*args, "--library", "flat"]) == 2
    assert 'not configured with index = "ivfpq"' in capsys.readouterr().out
    assert cli([*args, "--library", "nosuch"]) == 2
    assert f"library 'nosuch' is not in --libraries-config {config} (main, flat)" in " ".join(
        capsys.readouterr().out.split()
    )
    # Without the server's TOML file, the message names the flag that was missing.
    bare = ["build-index", "--data-dir", str(tmp_path / "data"), "--library", "flat"]
    assert cli(bare) == 2
    said = " ".join(capsys.readouterr().out.split())
    assert "is not in --libraries (main); a library of the server's TOML file needs" in said
    assert "--libraries-config FILE" in said
    # It takes the library options only: no server ports it would ignore.
    with pytest.raises(SystemExit):
        cli([*bare, "--http-port", "9000"])
    assert "unrecognized arguments: --http-port" in capsys.readouterr().err
    assert cli([*args[:3], "--library", "main"]) == 2  # without the config: flat by default
    config.write_text('[libraries.absent]\nindex = "ivfpq"\n')
    assert cli([*args, "--library", "absent"]) == 2
    assert "no library 'absent'" in capsys.readouterr().out
    libs.add("flat", VideoFingerprints("a", unit(rng.normal(size=(3, 512))),
                                       np.arange(3, dtype=np.float32), 3.0))  # fmt: skip
    config.write_text('[libraries.flat]\nindex = "ivfpq"\n')
    assert cli([*args, "--library", "flat"]) == 1
    assert "needs at least 10000" in capsys.readouterr().out


def test_first_build_starts_by_itself_past_train_at(tmp_path, monkeypatch) -> None:
    # An IVF-PQ library with auto_build: the add that reaches train_at starts
    # `rci build-index --if-missing` in the background; the snapshot appears.
    config = tmp_path / "libraries.toml"
    config.write_text('[libraries.main]\nindex = "ivfpq"\nnlist = 64\ntrain_at = 10000\n')
    monkeypatch.setenv("RCI_LIBRARIES_CONFIG", str(config))
    libs = Libraries(tmp_path, read_config(config), descriptor="sscd_resnet50", dim=512)
    rng = np.random.default_rng(0)
    for n in range(170):
        libs.add("main", random_video(rng, f"v{n}"))
        if n < 166:  # 9,960 fingerprints so far: below train_at, nothing starts
            assert "main" not in libs._builds
    build = libs._builds["main"]
    assert build.wait(timeout=300) == 0
    pointer = read_pointer(libs.folder("main"))
    assert pointer["nlist"] == 64 and pointer["fingerprints"] >= 10_000
    assert libs.index("main").describe().startswith("IVF64,PQ32")
    # Adds short of twice the snapshot's fingerprints (rebuild_growth 2) start nothing...
    n = 170
    live = libs.folder("main").live_records
    while live.catch_up().fingerprints + FRAMES < 2 * pointer["fingerprints"]:
        libs.add("main", random_video(rng, f"v{n}"))
        n += 1
    assert libs._builds["main"] is build
    # ...the one that doubles it starts a rebuild, which publishes a snapshot of all of it.
    libs.add("main", random_video(rng, f"v{n}"))
    rebuild = libs._builds["main"]
    assert rebuild is not build and "--if-grown" in rebuild.args
    assert rebuild.wait(timeout=300) == 0
    total = live.catch_up().fingerprints
    assert total >= 2 * pointer["fingerprints"]
    assert read_pointer(libs.folder("main"))["fingerprints"] == total
    assert libs.index("main").ntotal == total


def test_a_failed_automatic_build_is_not_started_again_on_every_add(tmp_path, monkeypatch):
    # nlist 1024 needs 39,936 training fingerprints; at 10,020 the build fails (exit 1). The
    # adds after it must not start the same failure again and again.
    config = tmp_path / "libraries.toml"
    config.write_text('[libraries.main]\nindex = "ivfpq"\nnlist = 1024\ntrain_at = 10000\n')
    monkeypatch.setenv("RCI_LIBRARIES_CONFIG", str(config))
    libs = Libraries(tmp_path, read_config(config), descriptor="sscd_resnet50", dim=512)
    rng = np.random.default_rng(0)
    for n in range(167):
        libs.add("main", random_video(rng, f"v{n}"))
    build = libs._builds["main"]
    assert build.wait(timeout=120) == 1
    for n in range(167, 170):
        libs.add("main", random_video(rng, f"v{n}"))
    assert libs._builds["main"] is build
    assert read_pointer(libs.folder("main")) is None


def with_audio(v: VideoFingerprints, seed: int, windows: int = 8) -> VideoFingerprints:
    rng = np.random.default_rng(seed)
    bits = rng.integers(0, 256, size=(windows, WINDOW_BYTES), dtype=np.uint8)
    v.audio = AudioPrints(AUDIO_PRINT, np.arange(windows, dtype=np.float32) / 2, bits)
    return v


# 8 windows a video: 1,368 in all, searched exactly; 64: 10,944, past MIN_AUDIO_WINDOWS, so
# the snapshot holds a binary IVF over them.
@pytest.mark.parametrize("windows, kind", [(8, "exact"), (64, "BIVF256 nprobe 4")])
def test_audio_index_stays_whole_across_snapshots(tmp_path, windows, kind) -> None:
    folder = LibraryFolder(tmp_path, "lib", descriptor="d", dim=DIM)
    writer = LibraryWriter(folder)
    for n in range(170):
        writer.add(with_audio(video(f"v{n}", n), n, windows))
    writer.add(video("silent", 700))
    early = LibraryIndex(folder, use_snapshots=True, audio_nprobe=4)  # before any snapshot
    writer.add(with_audio(video("before", 600), 600, windows))
    pointer = build_snapshot(folder, pq_m=16, log=lambda _: None)
    assert (pointer.get("audio_windows", 0) == 171 * windows) == (kind != "exact")
    writer.add(with_audio(video("new", 500), 500, windows))
    writer.delete("v3")
    writer.add(with_audio(video("v5", 501), 501, windows), replace=True)
    for index in (early, LibraryIndex(folder, use_snapshots=True, audio_nprobe=4)):
        index.refresh()
        assert index.snapshot is not None
        assert index.describe().endswith(f"audio {kind}" if kind == "exact" else "windows)")
        assert f"audio {kind}" in index.describe()
        assert index.audio.ntotal == 171 * windows and len(index.audio_keys) == 171
        for video_id, seed in [("new", 500), ("v5", 501), ("v7", 7), ("before", 600)]:
            bits = with_audio(video(video_id, seed), seed, windows).audio.bits
            D, ids = index.search_audio(bits, 1)
            assert (D[:, 0] == 0).all() and (ids[:, 0] >> 20 == index.keys[video_id]).all()
        # The deleted video's windows and the replaced one's old windows are gone.
        for seed in (3, 5):  # v3 deleted, v5 replaced
            D, _ = index.search_audio(with_audio(video("x", 0), seed, windows).audio.bits, 1)
            assert (D[:, 0] > 0).all()
