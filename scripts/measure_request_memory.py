"""Peak memory of the served detect (and ingest) per hostile or large upload: a table for
docs/security.md.

Starts `rci serve`'s tritonserver (cpu target) once, then per case sends the upload(s) to
rci_detect and samples the proportional set size (PSS, so the shared-memory regions that
tritonserver and a stub both map count once) summed over the server's process group, 5
times a second. Reports the peak above the idle server before the case, the answer (or
error) and the seconds taken.

    .venv/bin/python scripts/measure_request_memory.py            # all cases, ~15 min here
    .venv/bin/python scripts/measure_request_memory.py --seconds 600 --cases long
"""

from __future__ import annotations

import argparse
import functools
import subprocess
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

from rci.serving.memory import PeakSampler, pss_by_process
from rci.serving.server import ServerOptions, TritonServer
from rci_client import RciClient, RciClientError


def ffmpeg_video(path: Path, size: str, seconds: int, rate: int) -> Path:
    """A testsrc2 H.264 video (moving pattern, every frame different), small bitrate, with
    a 44.1 kHz stereo AAC track of pink noise under a tone that changes every second (every
    audio window different, so the sound is fingerprinted and aligned throughout)."""
    sound = f"anoisesrc=color=pink:amplitude=0.2:sample_rate=44100:duration={seconds}"
    tone = f"aevalsrc='0.3*sin(2*PI*(300+100*mod(floor(t),17))*t)':s=44100:d={seconds}"
    subprocess.run(
        ["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i",
         f"testsrc2=size={size}:rate={rate}:duration={seconds}",
         "-f", "lavfi", "-i", sound, "-f", "lavfi", "-i", tone,
         "-filter_complex", "[1:a][2:a]amix=inputs=2[a]", "-map", "0:v", "-map", "[a]",
         "-ac", "2", "-c:v", "libx264", "-preset", "ultrafast", "-crf", "40",
         "-pix_fmt", "yuv420p", "-c:a", "aac", "-b:a", "96k", str(path)],
        check=True,
    )  # fmt: skip
    return path


def cases(folder: Path, seconds: int, names: list[str]) -> dict[str, list[bytes | Path]]:
    """name -> the uploads sent at once."""
    made: dict[str, list[bytes | Path]] = {}
    rng = np.random.default_rng(0)
    if "long" in names:
        long = ffmpeg_video(folder / "long.mp4", "1280x720", seconds, 5)
        made[f"ingest 720p, {seconds} s"] = [long]
        # Detected against a library that holds it: recall and alignment of pictures and
        # sound at their largest, a 30-min candidate matching the whole query.
        made[f"720p, {seconds} s, a copy of the library's one video"] = [long]
    if "two" in names:
        half = ffmpeg_video(folder / "half.mp4", "1280x720", seconds // 3, 5)
        made[f"two 720p of {seconds // 3} s at once"] = [half, half]
    if "wide" in names:
        made["7680x4320, 60 s at 1 fps"] = [ffmpeg_video(folder / "8k.mp4", "7680x4320", 60, 1)]
    if "junk" in names:
        made["300 MiB of random bytes"] = [rng.integers(0, 256, 300 << 20, np.uint8).tobytes()]
    if "oversize" in names:
        # Sent past the client's own check, as a hostile client would.
        made["600 MiB of zeros, past the client's check"] = [b"\0" * (600 << 20)]
    return made


def detect(url: str, upload: bytes | Path, skip_client_check: bool) -> str:
    with RciClient(url, timeout=900) as client:
        if skip_client_check:
            client._max_bytes = 1 << 40  # the server must refuse it itself
        try:
            result = client.detect(upload)
        except RciClientError as exc:
            return f"refused: {str(exc)[:70]}"
        found = sum(m.reproduced for m in result.matches)
        return f"answered: {result.duration:.0f} s, {len(result.frame_times)} frames, {found} found"


def ingest(url: str, upload: bytes | Path, skip_client_check: bool) -> str:
    with RciClient(url, timeout=900) as client:
        try:
            client.ingest(upload, "long")
        except RciClientError as exc:
            return f"refused: {str(exc)[:70]}"
        return "ingested"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=int, default=1800, help="length of the long case")
    parser.add_argument("--cases", default="long,two,wide,junk,oversize")
    args = parser.parse_args()
    console = Console()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        console.print("making the uploads with ffmpeg")
        made = cases(folder, args.seconds, args.cases.split(","))
        options = ServerOptions(data_dir=folder / "data", work_dir=folder / "work",
                                http_port=18700, grpc_port=18701, metrics_port=18702)  # fmt: skip
        table = Table(title="peak memory of rci_detect per upload (PSS of the server group)")
        columns = ("case", "upload MiB", "idle MiB", "peak above idle MiB", "s", "result",
                   "largest peaks above idle, MiB")  # fmt: skip
        for column in columns:
            table.add_column(column)
        with TritonServer(options) as server:
            pgid = server.process.pid
            for name, uploads in made.items():
                time.sleep(2)
                idle_by = pss_by_process(pgid)
                idle = sum(idle_by.values())
                size = sum(len(u) if isinstance(u, bytes) else u.stat().st_size for u in uploads)
                start = time.perf_counter()
                call = ingest if name.startswith("ingest") else detect
                send = functools.partial(call, server.http_url, skip_client_check="past" in name)
                with PeakSampler(pgid) as peak, ThreadPoolExecutor(len(uploads)) as pool:
                    results = list(pool.map(send, uploads))
                table.add_row(
                    name, f"{size / 2**20:.0f}", f"{idle:.0f}", f"{peak.peak - idle:.0f}",
                    f"{time.perf_counter() - start:.1f}", "; ".join(sorted(set(results))),
                    ", ".join(f"{k} {v - idle_by.get(k, 0):.0f}" for k, v in sorted(
                        peak.by_process.items(), key=lambda kv: idle_by.get(kv[0], 0) - kv[1]
                    )[:3]),
                )  # fmt: skip
                console.print(f"done: {name}")
        console.print(table)


if __name__ == "__main__":
    main()
