"""A Milvus library under crashes and concurrency: the server (with its Milvus Lite) killed
mid-ingest, a bare writer killed mid-write, and two servers writing one library in one
Milvus, as replicas do. Acknowledged videos survive whole, a contested id is taken once,
and what a dead writer left half done is settled."""

from __future__ import annotations

import json
import random
import signal
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

pytest.importorskip("pymilvus", reason="the milvus extra: pip install -e '.[milvus]'")

from rci.describe.descriptor import EMBEDDING_DIM  # noqa: E402
from rci.library.milvus import LITE_ENV, MilvusLibrary, MilvusSettings  # noqa: E402
from rci.serving.server import TritonServer  # noqa: E402
from rci_client import RciClient, RciClientError  # noqa: E402
from tests.conftest import server_options  # noqa: E402
from tests.test_crash import _ingest_until_killed, kill_server  # noqa: E402

TRIALS = 3


def _open(uri: str) -> MilvusLibrary:
    return MilvusLibrary(
        MilvusSettings(uri=uri), "main", descriptor="sscd_resnet50", dim=EMBEDDING_DIM
    )


def _contents(library: MilvusLibrary, settle: bool = False) -> list[str]:
    """Video ids held, each checked whole (fingerprints and audio as its row counts them).
    With `settle`, every claim is settled first (nothing else writes then): afterwards no
    fingerprint is left outside a video."""
    if settle:
        library._stale = 0.0
        library.sweep()
        assert not library._claims("id >= 0")
    rows = library.client.query(
        library.videos, filter="id >= 0", output_fields=["id", "video_id", "count", "audio_count"]
    )
    for row in rows:  # each row's own video: a replace cut short holds two for one id
        video = library.video_of_key(row["id"])
        assert len(video.embeddings) == row["count"] and np.isfinite(video.embeddings).all()
        np.testing.assert_allclose(np.linalg.norm(video.embeddings, axis=1), 1, atol=1e-3)
        if row["audio_count"]:
            assert video.audio.bits.shape[0] == row["audio_count"]
    if settle:
        assert library.fingerprint_count() == sum(r["count"] for r in rows)
        assert library.audio_count() == sum(r["audio_count"] for r in rows)
    return [r["video_id"] for r in rows]


def _config(path, uri: str):
    # A minute per call: servers contesting an id wait their turn on a loaded machine.
    path.write_text(f'[libraries.main]\nstore = "milvus"\nuri = "{uri}"\nmilvus_timeout = 60.0\n')
    return path


def test_acknowledged_ingests_into_milvus_lite_survive_sigkill(tmp_path, media, monkeypatch):
    data_dir = tmp_path / "data"
    config = _config(tmp_path / "libraries.toml", "milvus.db")
    video = media["library"]["bikes"].read_bytes()
    rng = random.Random(0)
    acked: list[str] = []
    for trial in range(TRIALS + 1):
        options = server_options(tmp_path / f"w{trial}", data_dir, libraries_config=config)
        server = TritonServer(options).start()
        try:
            monkeypatch.setenv(LITE_ENV, json.dumps(server.lite_uris))
            library = _open(str(data_dir / "milvus.db"))
            ids = _contents(library)
            library.close()
            assert len(set(ids)) == len(ids)
            assert set(acked) <= set(ids), f"trial {trial}: lost {set(acked) - set(ids)}"
            assert len(ids) - len(acked) <= trial
            if trial == TRIALS:
                break
            writer = threading.Thread(
                target=_ingest_until_killed, args=(server.http_url, video, f"t{trial}", acked)
            )
            writer.start()
            # After this trial's first acknowledgement, at a moment anywhere in the next ingest.
            start = len(acked)
            for _ in range(600):
                if len(acked) > start or not writer.is_alive():
                    break
                time.sleep(0.1)
            threading.Event().wait(rng.uniform(0.0, 3.0))
            kill_server(server, writer)  # tritonserver, its stubs and the Milvus Lite engine
        finally:
            server.stop()
    assert len(acked) >= TRIALS
    with TritonServer(server_options(tmp_path / "last", data_dir, libraries_config=config)) as s:
        monkeypatch.setenv(LITE_ENV, json.dumps(s.lite_uris))
        library = _open(str(data_dir / "milvus.db"))
        ids = _contents(library, settle=True)  # the dead writers' leftovers settled
        library.close()
        with RciClient(s.http_url) as client:
            assert client.status()[0]["videos"] == len(ids)
            assert client.detect(video).reproduced
            with pytest.raises(RciClientError, match="already in library"):
                client.ingest(video, acked[0])


# A bare writer into a Milvus at argv[1]: adds videos "{argv[2]}-n" and replaces each
# one's predecessor; prints "+id" once an add is acknowledged, "~id" once a replace is.
WRITER = """
import sys, zlib
import numpy as np
from rci.library.milvus import MilvusLibrary, MilvusSettings
from rci.library.store import VideoFingerprints
from rci.preprocess.audio_prints import AUDIO_PRINT, WINDOW_BYTES, AudioPrints
library = MilvusLibrary(MilvusSettings(uri=sys.argv[1]), "main", descriptor="sscd_resnet50",
                        dim=512)
rng = np.random.default_rng(zlib.crc32(sys.argv[2].encode()))
def video(video_id):
    frames = int(rng.integers(20, 3000))
    x = rng.standard_normal((frames, 512)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    bits = rng.integers(0, 256, (frames, WINDOW_BYTES), dtype=np.uint8)
    audio = AudioPrints(AUDIO_PRINT, np.arange(frames, dtype=np.float32), bits)
    return VideoFingerprints(video_id, x, np.arange(frames, dtype=np.float32), frames, audio)
for n in range(10_000):
    library.add(video(f"{sys.argv[2]}-{n}"))
    print(f"+{sys.argv[2]}-{n}", flush=True)
    if n:
        library.add(video(f"{sys.argv[2]}-{n - 1}"), replace=True)
        print(f"~{sys.argv[2]}-{n - 1}", flush=True)
"""


def _engine(path, port: int):
    """Milvus Lite serving `path` on a TCP port, as a Milvus server does."""
    from milvus_lite.server import Server

    engine = Server(str(path), f"127.0.0.1:{port}")
    assert engine.init() and engine.start()
    return engine


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_a_writer_killed_mid_write_leaves_every_acknowledged_video_whole(tmp_path):
    # The kills land inside add(): between fingerprint batches, before or after the video
    # row, between a replace's new row and the old one's removal.
    port = _port()
    uri = f"http://127.0.0.1:{port}"
    engine = _engine(tmp_path / "engine.db", port)
    rng = random.Random(2)
    added: set[str] = set()
    try:
        library = _open(uri)
        for trial in range(12):
            proc = subprocess.Popen(
                [sys.executable, "-c", WRITER, uri, str(trial)], stdout=subprocess.PIPE, text=True
            )
            first = proc.stdout.readline()
            assert first.startswith("+"), "the writer never wrote"
            time.sleep(rng.uniform(0.0, 1.0))
            proc.send_signal(signal.SIGKILL)
            out, _ = proc.communicate()
            added |= {line[1:] for line in [first.strip(), *out.split()] if line[:1] == "+"}
            ids = _contents(library)  # a replace cut short holds its id twice until settled
            assert added <= set(ids), f"trial {trial}: lost {added - set(ids)}"
            assert len(set(ids) - added) <= trial + 1, f"trial {trial}: {set(ids) - added}"
        ids = _contents(library, settle=True)
        assert len(ids) == len(set(ids)) and added <= set(ids)
        library.close()
    finally:
        engine.stop()


def test_two_servers_write_one_milvus_library(tmp_path, media):
    port = _port()
    engine = _engine(tmp_path / "engine.db", port)
    config = _config(tmp_path / "libraries.toml", f"http://127.0.0.1:{port}")
    bikes = media["library"]["bikes"].read_bytes()
    other, late = [
        p.read_bytes() for name, p in sorted(media["library"].items()) if name != "bikes"
    ][:2]
    try:
        with (
            TritonServer(server_options(tmp_path / "a", tmp_path / "da", libraries_config=config))
            as a,
            TritonServer(server_options(tmp_path / "b", tmp_path / "db", libraries_config=config))
            as b,
        ):  # fmt: skip
            urls = [a.http_url, b.http_url]
            RciClient(urls[0]).ingest(bikes, "x")

            def work(n: int) -> tuple[list[str], bool]:
                """Two ingests, a try at the contested id, a replace of x: on server n % 2."""
                with RciClient(urls[n % 2]) as client:
                    ids = []
                    for k in range(2):
                        client.ingest(bikes, f"w{n}-{k}")
                        ids.append(f"w{n}-{k}")
                    client.ingest(other if n % 2 else bikes, "x", replace=True)
                    assert client.status()[0]["videos"] >= 1
                    try:
                        client.ingest(bikes, "contested")
                        return ids, True
                    except RciClientError as exc:
                        assert "already in library" in str(exc)
                        return ids, False

            with ThreadPoolExecutor(4) as pool:
                results = list(pool.map(work, range(4)))
            assert [won for _, won in results].count(True) == 1
            acked = {i for ids, _ in results for i in ids}
            library = _open(f"http://127.0.0.1:{port}")
            ids = _contents(library, settle=True)
            library.close()
            assert len(ids) == len(set(ids)) and set(ids) == acked | {"x", "contested"}
            # Recall keeps a few candidates, so which of ten identical copies of bikes are
            # named is a tie; a video ingested once, through server a, is found through both.
            RciClient(urls[0]).ingest(late, "late")
            for url in urls:
                with RciClient(url) as client:
                    assert client.status()[0]["videos"] == len(ids) + 1
                    found = {m.video_id for m in client.detect(bikes).reproduced}
                    assert found and found <= set(ids)
                    assert "late" in {m.video_id for m in client.detect(late).reproduced}
    finally:
        engine.stop()


def test_a_served_library_whose_milvus_is_away_fails_clearly_and_recovers(tmp_path, media):
    port = _port()  # nothing listens there yet
    config = tmp_path / "libraries.toml"
    config.write_text(
        f'[libraries.local]\n\n[libraries.remote]\nstore = "milvus"\n'
        f'uri = "http://127.0.0.1:{port}"\nmilvus_timeout = 2.0\n'
    )
    bikes = media["library"]["bikes"]
    options = server_options(tmp_path / "w", tmp_path / "data", libraries_config=config)
    with TritonServer(options) as server, RciClient(server.http_url) as client:
        with pytest.raises(RciClientError, match=f"library 'remote'.*127.0.0.1:{port}") as caught:
            client.ingest(bikes, "bikes", "remote")
        assert str(caught.value.status) == "503"  # UNAVAILABLE: try again later
        local, remote = client.status(["local", "remote"])
        assert local["videos"] == 0 and "not reachable" in remote["error"]
        client.ingest(bikes, "bikes", "local")  # the other library serves on
        assert client.detect(bikes, "local").reproduced
        engine = _engine(tmp_path / "engine.db", port)
        try:
            for _ in range(30):  # the engine takes a moment to listen
                try:
                    client.ingest(bikes, "bikes", "remote")
                    break
                except RciClientError:
                    time.sleep(1)
            assert client.status(["remote"])[0]["videos"] == 1
            assert "bikes" in {m.video_id for m in client.detect(bikes, "remote").reproduced}
        finally:
            engine.stop()
