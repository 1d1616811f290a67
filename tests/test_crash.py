"""Durability: SIGKILL the whole server (tritonserver and its backend stubs) at random
moments during a stream of ingests; after each restart every acknowledged video is there and
every record of the library reads back whole."""

from __future__ import annotations

import mmap
import os
import random
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

from rci.describe.descriptor import EMBEDDING_DIM
from rci.library.store import LibraryFolder
from rci.serving.server import SHM_PREFIX, TritonServer, _group_alive, reclaim_shared_memory
from rci_client import RciClient, RciClientError
from tests.conftest import server_options

TRIALS = 20


def _ingest_until_killed(url: str, video: bytes, prefix: str, acked: list[str]) -> None:
    """Ingest `video` under fresh ids until the server dies; ids are appended once acked."""
    try:
        with RciClient(url) as client:
            for n in range(10_000):
                client.ingest(video, f"{prefix}-{n}")
                acked.append(f"{prefix}-{n}")
    except Exception:  # noqa: BLE001 - the kill, seen as whichever error the transport raises
        return  # whatever was in flight may or may not have landed


def kill_server(server: TritonServer, writer: threading.Thread) -> list[str]:
    """SIGKILL tritonserver, its stubs and its Milvus Lite engines; wait for the writer to
    see it. Returns the shared-memory regions reclaimed."""
    os.killpg(server.process.pid, signal.SIGKILL)
    for lite in server._lite:
        os.kill(lite._p.pid, signal.SIGKILL)
    server.process.wait()
    writer.join(timeout=60)
    assert not writer.is_alive()
    # The killed server leaves its shared-memory regions behind: reclaim them (the next
    # start would, once they are 2 s old), or many kills fill /dev/shm.
    while _group_alive(server.process.pid):
        time.sleep(0.05)
    return reclaim_shared_memory(min_age=0)


def _library_contents(data_dir) -> list[str]:
    """Video ids of library 'main' read from disk: the log replayed (no id added twice
    without a delete between, no delete of an absent id), every live file loaded."""
    folder = LibraryFolder(data_dir, "main", descriptor="sscd_resnet50", dim=EMBEDDING_DIM)
    records, _ = folder.read_records(0)
    live: set[str] = set()
    for record in records:
        if record["op"] == "add":
            assert record["video_id"] not in live, f"{record['video_id']} added twice"
            live.add(record["video_id"])
        else:
            live.remove(record["video_id"])
    for record in folder.live(records).values():
        video = folder.load_video(record)
        assert len(video.embeddings) == record["count"]
        assert np.isfinite(video.embeddings).all()
        np.testing.assert_allclose(np.linalg.norm(video.embeddings, axis=1), 1, atol=1e-3)
        if "audio" in record:  # its audio fingerprints whole too
            assert video.audio.bits.shape == (record["audio_count"], record["audio_width"])
            assert np.isfinite(video.audio.times).all()
    return list(folder.live(records))


def test_acknowledged_ingests_survive_sigkill(tmp_path, media):
    data_dir = tmp_path / "data"
    video = media["library"]["bikes"].read_bytes()
    rng = random.Random(0)
    acked: list[str] = []
    for trial in range(TRIALS + 1):
        server = TritonServer(server_options(tmp_path / f"w{trial}", data_dir)).start()
        try:
            with RciClient(server.http_url) as client:
                # Recovery: all acknowledged ids, each once; at most the one in flight more.
                ids = _library_contents(data_dir)
                assert len(set(ids)) == len(ids)
                assert set(acked) <= set(ids), f"trial {trial}: lost {set(acked) - set(ids)}"
                assert len(ids) - len(acked) <= trial
                assert client.status()[0]["videos"] == len(ids)
                if trial == TRIALS:
                    break
                writer = threading.Thread(
                    target=_ingest_until_killed,
                    args=(server.http_url, video, f"t{trial}", acked),
                )
                writer.start()
                # A moment anywhere in the stream: mid-decode, mid-write or between requests.
                threading.Event().wait(rng.uniform(0.3, 3.0))
                assert kill_server(server, writer)
        finally:
            server.stop()
    assert len(acked) >= TRIALS // 2, f"only {len(acked)} ingests acknowledged: kills too early"
    # The library still works after the crashes: a copy is found, a repeated id refused.
    with TritonServer(server_options(tmp_path / "last", data_dir)) as server:
        with RciClient(server.http_url) as client:
            assert client.detect(video).reproduced
            with pytest.raises(RciClientError, match="already in library"):
                client.ingest(video, acked[0])


# A bare writer: argv data_dir, id prefix, [videos, frames per video, pause s, delete every
# n-th video]; prints "+id" once an add is acknowledged, "-id" once a delete is.
WRITER = """
import sys, time, zlib
import numpy as np
from rci.library.store import LibraryFolder, LibraryWriter, VideoFingerprints
from rci.preprocess.audio_prints import AUDIO_PRINT, AudioPrints
folder = LibraryFolder(sys.argv[1], "main", descriptor="sscd_resnet50", dim=512)
videos, frames, pause, every = 10_000, 2000, 0.0, 0
if len(sys.argv) > 3:
    videos, frames, pause = int(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5])
    every = int(sys.argv[6])
rng = np.random.default_rng(zlib.crc32(sys.argv[2].encode()))
for n in range(videos):
    x = rng.standard_normal((frames, 512)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    t = np.arange(frames, dtype=np.float32)
    bits = rng.integers(0, 256, (2 * frames, 32), dtype=np.uint8)  # 2 audio windows a second
    audio = AudioPrints(AUDIO_PRINT, np.arange(2 * frames, dtype=np.float32) / 2, bits)
    video = VideoFingerprints(f"{sys.argv[2]}-{n}", x, t, float(frames), audio=audio)
    LibraryWriter(folder).add(video)
    print(f"+{sys.argv[2]}-{n}", flush=True)
    if every and n % every == every - 1:
        LibraryWriter(folder).delete(f"{sys.argv[2]}-{n - 1}")
        print(f"-{sys.argv[2]}-{n - 1}", flush=True)
    time.sleep(pause)
"""


def test_writer_killed_mid_write_loses_nothing_acknowledged(tmp_path):
    # The server test above kills mostly during decoding; here the writer does nothing but
    # write, so the kills land inside add() and delete() themselves: between the fingerprint
    # file and its log record, mid-record, mid-fsync, between a delete record and the file's
    # removal. Even trials write big videos (4 MB) and delete every third one's predecessor;
    # odd trials write small ones (100 KB) and delete every other one, mostly deleting.
    rng = random.Random(1)
    added: set[str] = set()
    deleted: set[str] = set()
    in_flight: set[str] = set()
    for trial in range(40):
        frames, every = ("2000", "3") if trial % 2 == 0 else ("50", "2")
        proc = subprocess.Popen(
            [sys.executable, "-c", WRITER, str(tmp_path), str(trial), "10000", frames, "0", every],
            stdout=subprocess.PIPE,
            text=True,
        )
        first = proc.stdout.readline()
        assert first.startswith("+"), "the writer never wrote"  # the loop is running
        time.sleep(rng.uniform(0.0, 0.2))
        proc.send_signal(signal.SIGKILL)
        out, _ = proc.communicate()
        lines = [line.strip() for line in [first, *out.splitlines()] if line.strip()]
        for line in lines:
            (added if line[0] == "+" else deleted).add(line[1:])
        # The kill may have come after a delete landed but before it was acknowledged.
        n = int(lines[-1].rsplit("-", 1)[1])
        if lines[-1][0] == "+" and n % int(every) == int(every) - 1:
            in_flight.add(f"{trial}-{n - 1}")
        ids = set(_library_contents(tmp_path))
        lost = added - deleted - in_flight - ids
        assert not lost, f"trial {trial}: lost {lost}"
        # Nothing else: at most one unacknowledged add per trial landed.
        assert len(ids - added) <= trial + 1, f"trial {trial}: unknown ids {ids - added}"
        assert not deleted & ids, f"trial {trial}: deleted ids back: {deleted & ids}"
        # Files a crash leaves outside the log go at the next process's first write: at most
        # this trial's one remains.
        # (two files a video: its frames and its audio).
        files = list((tmp_path / "main" / "videos").iterdir())
        assert len(files) <= 2 * len(ids) + 2, (
            f"trial {trial}: {len(files)} files, {len(ids)} videos"
        )
    assert deleted, "no delete was acknowledged: the kills came too early"


def test_reclaim_removes_only_unmapped_old_regions(tmp_path):
    names = [SHM_PREFIX + n for n in ("old", "young", "mapped")]
    for name in names:
        (tmp_path / name).write_bytes(b"\0" * 4096)
    past = time.time() - 60
    os.utime(tmp_path / names[0], (past, past))
    os.utime(tmp_path / names[2], (past, past))
    (tmp_path / "other-file").write_bytes(b"x")
    os.utime(tmp_path / "other-file", (past, past))
    with open(tmp_path / names[2], "r+b") as f, mmap.mmap(f.fileno(), 4096):
        assert reclaim_shared_memory(min_age=10, shm_dir=tmp_path) == [names[0]]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(names[1:] + ["other-file"])
