"""Concurrency: many clients ingest and detect at once, with a second writer process on the
same library; no update is lost, a contested id is taken once, a replaced id is never
missing, and no read is torn."""

from __future__ import annotations

import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor

from rci.library.store import LibraryFolder
from rci.serving.server import TritonServer
from rci_client import RciClient, RciClientError
from tests.conftest import server_options
from tests.test_crash import WRITER, _library_contents

INGESTERS, PER_INGESTER, DETECTORS, SWAPS = 4, 2, 2, 4


def test_parallel_ingest_and_detect(tmp_path, media):
    data_dir = tmp_path / "data"
    bikes = media["library"]["bikes"].read_bytes()
    other = next(p for name, p in media["library"].items() if name != "bikes").read_bytes()
    options = server_options(tmp_path / "work", data_dir, libraries=["main", "swap"])
    with TritonServer(options) as server:
        url = server.http_url
        done = threading.Event()
        with RciClient(url) as client:
            client.ingest(bikes, "x", "swap")

        def swap(_: int) -> int:
            """Replace video x of library swap back and forth."""
            with RciClient(url) as client:
                for n in range(SWAPS):
                    client.ingest(other if n % 2 == 0 else bikes, "x", "swap", replace=True)
            return SWAPS

        def ingest(worker: int) -> list[str]:
            ids = []
            with RciClient(url) as client:
                for n in range(PER_INGESTER):
                    client.ingest(bikes, f"w{worker}-{n}")
                    ids.append(f"w{worker}-{n}")
            return ids

        def contest(_: int) -> bool:
            with RciClient(server.grpc_url, protocol="grpc") as client:
                try:
                    client.ingest(bikes, "contested")
                    return True
                except RciClientError as exc:
                    assert "already in library" in str(exc)
                    return False

        def detect(_: int) -> int:
            """Detect until the ingests end; library sizes seen must never shrink."""
            seen, runs = 0, 0
            with RciClient(url) as client:
                while not done.is_set() or runs == 0:
                    result = client.detect(media["query"])
                    assert all(0 <= m.score <= 1 for m in result.matches)
                    main, swapped = client.status()
                    assert main["videos"] >= seen
                    assert swapped["videos"] == 1  # the old x or the new, never neither
                    seen, runs = main["videos"], runs + 1
            return runs

        # A second writer process on the same library, outside the server.
        bare = subprocess.Popen(
            [sys.executable, "-c", WRITER, str(data_dir), "bare", "40", "30", "0.2", "0"],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert bare.stdout.readline().strip() == "+bare-0"  # writing before the clients start
        with ThreadPoolExecutor(INGESTERS + 3 + DETECTORS) as pool:
            detectors = [pool.submit(detect, d) for d in range(DETECTORS)]
            ingesters = [pool.submit(ingest, w) for w in range(INGESTERS)]
            contesters = [pool.submit(contest, c) for c in range(2)]
            swapper = pool.submit(swap, 0)
            try:
                acked = [i for f in ingesters for i in f.result()]
                wins = [f.result() for f in contesters]
                assert swapper.result() == SWAPS
            finally:
                done.set()  # or the detectors never stop and the pool never closes
            assert all(f.result() >= 1 for f in detectors)
        bare_acked = ["bare-0"] + [i[1:] for i in bare.communicate(timeout=120)[0].split()]
        assert bare.returncode == 0 and len(bare_acked) == 40

        assert wins.count(True) == 1, wins
        ids = _library_contents(data_dir)
        assert len(ids) == len(set(ids))
        assert set(acked) | {"contested"} | set(bare_acked) <= set(ids)
        assert len(acked) == INGESTERS * PER_INGESTER
        with RciClient(url) as client:
            assert client.status()[0]["videos"] == len(ids)
            # Audio fingerprints (the bare writer's) counted as the log holds them.
            live, _ = LibraryFolder(data_dir, "main", descriptor="sscd_resnet50", dim=512).current()
            audio = sum(record.get("audio_count", 0) for record in live.values())
            assert audio >= 40 * 60 and client.status()[0]["audio_fingerprints"] == audio
            assert client.detect(bikes).reproduced
            # After an even number of swaps x is bikes again, and only that.
            assert "x" in {m.video_id for m in client.detect(bikes, "swap").reproduced}
            assert "x" not in {m.video_id for m in client.detect(other, "swap").reproduced}
