"""What a library write costs as its log grows: a table per log size.

Writes a synthetic log of N add records (10-minute videos, one fingerprint per second, no
fingerprint files: only the log is measured) into a scratch folder, then times the first
add of a fresh process (it reads the whole log), the next adds (only new lines), a delete,
and a status catch-up after another process wrote, beside the whole-log parse that every
write and status made before LiveRecords. Peak memory is the process's after its writes,
before a second writer and that parse (each would hold another copy of the log's records).

    .venv/bin/python scripts/measure_log_writes.py --videos 10000,100000,1000000
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from rci.library.store import LibraryFolder, LibraryWriter, VideoFingerprints

DIM = 512
FRAMES = 600  # a 10-minute video at one fingerprint per second
ADDS = 20  # timed adds after the first


def write_log(folder: LibraryFolder, videos: int) -> None:
    with open(folder.log_path, "wb") as f:
        for n in range(videos):
            record = {"op": "add", "video_id": f"video-{n:09d}", "file": f"videos/{n:09d}.npy",
                      "count": FRAMES, "duration": float(FRAMES)}  # fmt: skip
            f.write(json.dumps(record).encode() + b"\n")


def fingerprints(video_id: str) -> VideoFingerprints:
    x = np.random.default_rng(0).standard_normal((FRAMES, DIM)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return VideoFingerprints(video_id, x, np.arange(FRAMES, dtype=np.float32), float(FRAMES))


def measure(data_dir: Path) -> dict:
    """Run in a fresh process: the first add reads the log as a restarted server would."""
    folder = LibraryFolder(data_dir, "lib", descriptor="bench", dim=DIM)
    writer = LibraryWriter(folder)
    start = time.perf_counter()
    writer.add(fingerprints("first"))
    first = time.perf_counter() - start
    adds = []
    for n in range(ADDS):
        start = time.perf_counter()
        writer.add(fingerprints(f"next-{n}"))
        adds.append(time.perf_counter() - start)
    start = time.perf_counter()
    writer.delete("next-0")
    delete = time.perf_counter() - start
    # One process's view of the log; the second writer below holds another.
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    other = LibraryWriter(LibraryFolder(data_dir, "lib", descriptor="bench", dim=DIM))
    other.add(fingerprints("other"))  # another writer's record for the catch-up to read
    start = time.perf_counter()
    live = folder.live_records.catch_up()
    status = time.perf_counter() - start
    assert "other" in live.videos
    start = time.perf_counter()
    folder.live(folder.read_records(0)[0])  # what every write and status did before
    reparse = time.perf_counter() - start
    return {
        "reparse_s": reparse,
        "first_s": first,
        "add_ms": 1000 * statistics.median(adds),
        "delete_ms": 1000 * delete,
        "status_ms": 1000 * status,
        "peak_mb": peak,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--videos", default="10000,100000,1000000", help="log sizes, comma-sep.")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure(Path(args.child))))
        return
    print("| videos in log | log MB | first add s | add ms (median of 20) | delete ms "
          "| status catch-up ms | whole-log parse s | peak MB |")  # fmt: skip
    print("|---:|---:|---:|---:|---:|---:|---:|---:|")
    for videos in (int(v) for v in args.videos.split(",")):
        with tempfile.TemporaryDirectory() as scratch:
            folder = LibraryFolder(Path(scratch), "lib", descriptor="bench", dim=DIM)
            write_log(folder, videos)
            size = folder.log_path.stat().st_size / 1e6
            out = subprocess.run(
                [sys.executable, __file__, "--child", scratch],
                check=True, capture_output=True, text=True,
            ).stdout  # fmt: skip
            m = json.loads(out)
        print(f"| {videos:,} | {size:.0f} | {m['first_s']:.2f} | {m['add_ms']:.1f} | "
              f"{m['delete_ms']:.1f} | {m['status_ms']:.2f} | {m['reparse_s']:.2f} | "
              f"{m['peak_mb']:.0f} |")  # fmt: skip


if __name__ == "__main__":
    main()
