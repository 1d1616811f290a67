"""The Milvus library store against Milvus Lite, the embedded engine (a file, no server)."""

from __future__ import annotations

import json
import socket
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from rci.errors import AlreadyExistsError, DescriptorMismatchError
from rci.library.store import FRAME_BITS, VideoFingerprints
from rci.preprocess.audio_prints import AUDIO_PRINT, WINDOW_BYTES, AudioPrints

pytest.importorskip("pymilvus", reason="the milvus extra: pip install -e '.[milvus]'")

from rci.library.milvus import (  # noqa: E402
    CLAIM_STALE,
    BusyError,
    MilvusLibrary,
    MilvusSettings,
    MilvusUnavailableError,
)

DIM = 512


def unit(rng: np.random.Generator, n: int) -> np.ndarray:
    x = rng.standard_normal((n, DIM)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def video(video_id: str, seed: int, frames: int = 20, windows: int = 0) -> VideoFingerprints:
    rng = np.random.default_rng(seed)
    audio = None
    if windows:
        bits = rng.integers(0, 256, (windows, WINDOW_BYTES), dtype=np.uint8)
        audio = AudioPrints(AUDIO_PRINT, np.arange(windows, dtype=np.float32) * 0.5, bits)
    times = np.arange(frames, dtype=np.float32)
    return VideoFingerprints(video_id, unit(rng, frames), times, float(frames), audio)


@pytest.fixture
def library(tmp_path) -> MilvusLibrary:
    settings = MilvusSettings(uri=str(tmp_path / "milvus.db"))
    lib = MilvusLibrary(settings, "main", descriptor="sscd_resnet50", dim=DIM)
    yield lib
    lib.close()


def test_a_stored_video_is_found_frame_by_frame_and_read_back_whole(library):
    first, second = video("A", 0, windows=12), video("B", 1)
    assert library.add(first) == (20, False)
    assert library.add(second) == (20, False)
    assert (library.video_count(), library.fingerprint_count()) == (2, 40)
    D, I = library.search(first.embeddings[[3, 7]], 2)
    # Frame ids are the local store's: key << FRAME_BITS | frame.
    assert np.allclose(D[:, 0], 1, atol=1e-5) and list(I[:, 0] & ((1 << FRAME_BITS) - 1)) == [3, 7]
    key = int(I[0, 0] >> FRAME_BITS)
    back = library.video_of_key(key)
    assert back.video_id == "A" and np.allclose(back.embeddings, first.embeddings, atol=1e-6)
    assert np.array_equal(back.timestamps, first.timestamps) and back.duration == 20.0
    assert back.audio.kind == AUDIO_PRINT and np.array_equal(back.audio.bits, first.audio.bits)
    assert np.array_equal(back.audio.times, first.audio.times)
    assert library.video("B").audio is None
    Dm, Km = library.search_means(first.embeddings.mean(0, keepdims=True), 2)
    assert Km[0, 0] == key and Dm[0, 0] > Dm[0, 1]
    Da, Ia = library.search_audio(first.audio.bits[[5]], 1)
    assert Da[0, 0] == 0 and Ia[0, 0] == (key << FRAME_BITS | 5)
    # Fewer neighbours than asked for: -1, as faiss says none.
    assert (library.search(first.embeddings[:1], 50)[1][0, 40:] == -1).all()


def test_a_library_made_by_another_descriptor_is_refused(tmp_path):
    settings = MilvusSettings(uri=str(tmp_path / "milvus.db"))
    MilvusLibrary(settings, "main", descriptor="sscd_resnet50", dim=DIM).close()
    with pytest.raises(DescriptorMismatchError, match="sscd_mobilenetv4"):
        MilvusLibrary(settings, "main", descriptor="sscd_mobilenetv4", dim=DIM)
    with pytest.raises(DescriptorMismatchError, match="dim=512.*dim 256"):  # another width
        MilvusLibrary(settings, "main", descriptor="sscd_resnet50", dim=256)


def test_an_unreachable_milvus_is_a_clear_error():
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    settings = MilvusSettings(uri=f"http://127.0.0.1:{port}", timeout=2)
    with pytest.raises(MilvusUnavailableError, match=f"127.0.0.1:{port}.*not reachable"):
        MilvusLibrary(settings, "main", descriptor="sscd_resnet50", dim=DIM)


def test_settings_are_checked():
    with pytest.raises(ValueError, match="needs a uri"):
        MilvusSettings(uri="")
    with pytest.raises(ValueError, match="consistency"):
        MilvusSettings(uri="x.db", consistency="Sometimes")
    with pytest.raises(ValueError, match="prefix"):
        MilvusSettings(uri="x.db", prefix="bad-name")


def test_recall_over_milvus_finds_what_the_local_index_finds(tmp_path, library):
    from rci.library.index import LibraryIndex
    from rci.library.store import LibraryFolder, LibraryWriter
    from rci.match.recall import RecallParams, recall_recurring

    folder = LibraryFolder(tmp_path, "local", descriptor="sscd_resnet50", dim=DIM)
    videos = [video(f"V{n}", n, frames=30, windows=10) for n in range(6)]
    for v in videos:
        LibraryWriter(folder).add(v)
        library.add(v)
    local = LibraryIndex(folder)
    # A query copying 12 frames of V2 (noised) then 10 of V4, with V4's sound.
    rng = np.random.default_rng(9)
    copied = np.concatenate([videos[2].embeddings[5:17], videos[4].embeddings[:10]])
    query = copied + 0.03 * rng.standard_normal(copied.shape).astype(np.float32)
    query /= np.linalg.norm(query, axis=1, keepdims=True)
    sound = videos[4].audio.bits[None, 2:8]  # one view of six windows
    params = RecallParams(candidates=3, video_candidates=2)
    (a, ra), (b, rb) = (recall_recurring(i, query, params, sound) for i in (local, library))
    assert [v.video_id for v in a] == [v.video_id for v in b]
    assert {"V2", "V4"} <= {v.video_id for v in b} and np.array_equal(ra, rb)
    for x, y in zip(a, b, strict=True):
        assert np.allclose(x.embeddings, y.embeddings, atol=1e-6)
    D1, I1 = local.search(query, 5)
    D2, I2 = library.search(query, 5)
    assert np.allclose(D1, D2, atol=1e-5) and np.array_equal(I1 & 0xFFFFF, I2 & 0xFFFFF)


def test_milvus_going_away_is_a_clear_error_and_requests_succeed_once_it_is_back(tmp_path):
    from milvus_lite.server import Server

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]

    def engine() -> Server:  # Milvus Lite serving its file on a TCP port, as a server does
        server = Server(str(tmp_path / "engine.db"), f"127.0.0.1:{port}")
        assert server.init() and server.start()
        return server

    running = engine()
    settings = MilvusSettings(uri=f"http://127.0.0.1:{port}", timeout=3)
    library = MilvusLibrary(settings, "main", descriptor="sscd_resnet50", dim=DIM)
    stored = video("A", 0)
    library.add(stored)
    running.stop()
    with pytest.raises(MilvusUnavailableError, match=f"library 'main': Milvus at .*{port}"):
        library.search(stored.embeddings[:1], 1)
    running = engine()
    try:
        for _ in range(20):  # the engine takes a moment to listen again
            try:
                D, _ = library.search(stored.embeddings[:1], 1)
                break
            except MilvusUnavailableError:
                continue
        assert D[0, 0] == pytest.approx(1, abs=1e-5)  # what was stored before it went away
    finally:
        running.stop()
        library.close()


def test_writers_of_one_id_take_turns_across_clients(tmp_path):
    # Each thread its own client, as replicas are: a contested id is taken once, and racing
    # replaces leave one video whole (no second row, no stray fingerprints).
    settings = MilvusSettings(uri=str(tmp_path / "milvus.db"), timeout=60)  # a loaded machine
    libs = [MilvusLibrary(settings, "main", descriptor="sscd_resnet50", dim=DIM) for _ in range(4)]

    def contest(n: int) -> bool:
        try:
            libs[n].add(video("X", n, frames=10 + n))
            return True
        except AlreadyExistsError:
            return False

    def swap(n: int) -> None:
        for round_ in range(3):
            libs[n].add(video("Y", 10 * n + round_, frames=5 + n), replace=True)

    with ThreadPoolExecutor(4) as pool:
        assert sorted(pool.map(contest, range(4))) == [False, False, False, True]
        list(pool.map(swap, range(4)))
    x, y = libs[0].video("X"), libs[0].video("Y")
    assert libs[0].video_count() == 2
    assert libs[0].fingerprint_count() == len(x.embeddings) + len(y.embeddings)
    assert not libs[0]._claims("id >= 0")  # every claim given back
    for lib in libs:
        lib.close()


def test_a_dead_writer_s_claim_is_settled_by_the_next_opener(tmp_path):
    settings = MilvusSettings(uri=str(tmp_path / "milvus.db"))
    lib = MilvusLibrary(settings, "main", descriptor="sscd_resnet50", dim=DIM)
    old = video("A", 0)
    lib.add(old)
    (row,) = lib._rows("A")
    # A replace that died after writing its fingerprints, before its video row.
    dead = lib._new_key()
    claim = {"id": dead, "video_id": "A", "added": time.time_ns(),
             "keys": json.dumps([dead, row["id"]])}  # fmt: skip
    lib._put_claim(claim)
    lib._insert_fingerprints(dead, video("A", 1, frames=7))
    assert lib.fingerprint_count() == 27
    with pytest.raises(BusyError, match="'A' in library 'main' is being written"):
        MilvusLibrary(
            MilvusSettings(uri=settings.uri, timeout=1), "main", descriptor="sscd_resnet50", dim=DIM
        ).add(video("A", 2), replace=True)  # its claim is live yet: the id waits
    lib.client.delete(lib.claims, ids=[dead])
    lib._put_claim({**claim, "added": time.time_ns() - int(2 * CLAIM_STALE * 1e9)})  # died
    again = MilvusLibrary(settings, "main", descriptor="sscd_resnet50", dim=DIM)  # sweeps
    assert np.allclose(again.video("A").embeddings, old.embeddings, atol=1e-6)
    assert (again.video_count(), again.fingerprint_count()) == (1, 20)
    assert not again._claims("id >= 0")
    # A replace that died after its row: the write landed, the old video goes.
    new = video("A", 3, frames=5)
    key = lib._new_key()
    long_ago = time.time_ns() - int(2 * CLAIM_STALE * 1e9)
    lib._put_claim({"id": key, "video_id": "A", "added": long_ago,
                    "keys": json.dumps([key, row["id"]])})  # fmt: skip
    lib._insert_fingerprints(key, new)
    lib.client.insert(lib.videos, [{"id": key, "video_id": "A", "duration": 5.0, "count": 5,
                                    "added": 0, "audio_kind": "", "audio_count": 0,
                                    "mean": new.embeddings.mean(0)}])  # fmt: skip
    assert again.sweep() == 1  # kept its own row though the old one's `added` is later
    assert np.allclose(again.video("A").embeddings, new.embeddings, atol=1e-6)
    assert (again.video_count(), again.fingerprint_count()) == (1, 5)
    lib.close()
    again.close()


def test_scale_command_measures_milvus_lite_beside_faiss(tmp_path, capsys):
    from rci.bench.cli import main
    from rci.library.store import LibraryFolder, LibraryWriter

    folder = LibraryFolder(tmp_path, "real", descriptor="sscd_resnet50", dim=DIM)
    rng = np.random.default_rng(0)
    for n in range(12):  # 1,200 frames: enough to fit a 512-d covariance
        x = rng.standard_normal((100, DIM)).astype(np.float32) + 0.2
        x /= np.linalg.norm(x, axis=1, keepdims=True)
        LibraryWriter(folder).add(VideoFingerprints(f"V{n}", x, np.arange(100.0), 100.0))
    out = tmp_path / "scale.md"
    argv = ["scale", "--sizes", "20000", "--queries", "100", "--real", str(folder.path),
            "--out", str(out), "--milvus", "FLAT,IVF_FLAT"]  # fmt: skip
    assert main(argv) == 0
    rows = {
        (r["index"], r["nprobe"]): r
        for r in json.loads(out.with_suffix(".json").read_text())["rows"]
    }
    flat, ivf = rows[("Milvus Lite FLAT", None)], rows[("Milvus Lite IVF_FLAT", "nprobe 128")]
    assert flat["recall_at_10"] == 1.0 == rows[("IndexFlatIP", None)]["recall_at_10"]
    assert flat["source_in_top_10"] == rows[("IndexFlatIP", None)]["source_in_top_10"] == 1.0
    assert 0 < rows[("Milvus Lite IVF_FLAT", "nprobe 16")]["recall_at_10"] <= ivf["recall_at_10"]
    assert flat["add_s"] > 0 and ivf["train_s"] > 0 and flat["ms_per_frame"] > 0
    assert "| 20,000 | Milvus Lite IVF_FLAT | nprobe 16 |" in capsys.readouterr().out
    assert not out.with_suffix(".milvus").exists()  # the collection goes when measured


def test_parity_compares_answers_query_by_query():
    from rci.bench.parity import compare

    def record(*matches):
        return {"matches": [{"ref_id": r, "score": s, "reproduced": d, "segments": seg}
                            for r, s, d, seg in matches]}  # fmt: skip

    seg = [[0.0, 4.0, 10.0, 14.0, 0.9]]
    local = [record(("A", 0.9, True, seg), ("B", 0.3, False, [])), record(("C", 0.8, True, seg))]
    same = [record(("A", 0.90001, True, seg), ("B", 0.3, False, [])), record(("C", 0.8, True, seg))]
    assert compare(local, same) == (2, 2, pytest.approx(1e-5), 0.0)
    moved = [[0.0, 4.5, 10.0, 14.0, 0.9]]
    other = [record(("B", 0.3, False, []), ("A", 0.9, True, seg)), record(("C", 0.8, False, moved))]
    assert compare(local, other) == (1, 0, 0.0, 0.5)  # A, B swapped; C decided otherwise


def test_milvus_lite_takes_only_the_indexes_it_builds():
    with pytest.raises(ValueError, match="Milvus Lite builds FLAT/IVF_FLAT/AUTOINDEX.*'HNSW'"):
        MilvusSettings(uri="x.db", index_type="HNSW")
    assert MilvusSettings(uri="http://milvus:19530", index_type="HNSW").index_type == "HNSW"
