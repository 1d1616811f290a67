"""Load rci_detect with perf_analyzer (from the tritonclient wheel) against a running server.

    python scripts/perf_detect.py --video QUERY.mp4 [--url 127.0.0.1:8001] [--concurrency 1,2,4,8]

Writes the input-data JSON that perf_analyzer reads, gives perf_analyzer the libraries it
needs from the pytriton wheel (libcudart.so.12 under that exact name, libb64), runs it
over gRPC and prints its table; extra arguments after `--` go to perf_analyzer.
`--concurrency` is perf_analyzer's start:end[:step] range, or a list of levels (1,2,4,8),
each measured by its own perf_analyzer run, their CSV rows joined.

The measurement window is chosen for the machine: one detect of the video is timed first
(which also warms the server), and each window lasts WINDOW_REQUESTS of those, at least
2 s. A fixed window shorter than one request never completes a request and perf_analyzer
gives up.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import subprocess
import sys
import time
from pathlib import Path

WINDOW_REQUESTS = 8  # requests of one client a measurement window lasts
MIN_WINDOW_MS = 2000


def write_input_data(video: Path, library: str, out: Path) -> Path:
    """perf_analyzer --input-data JSON with one request: the video's bytes and a library."""
    raw = video.read_bytes()
    data = {
        "data": [
            {
                "VIDEO_BYTES": {"b64": base64.b64encode(raw).decode(), "shape": [len(raw)]},
                # LIBRARY takes one name or several, so perf_analyzer needs its shape.
                "LIBRARY": {"content": [library], "shape": [1]},
            }
        ]
    }
    out.write_text(json.dumps(data))
    return out


def library_dir(work: Path) -> Path:
    """A folder holding libcudart.so.12 and libb64.so.0d links into the pytriton wheel."""
    import pytriton

    libs = Path(pytriton.__file__).resolve().parent.parent / "nvidia_pytriton.libs"
    folder = work / "perf-libs"
    folder.mkdir(parents=True, exist_ok=True)
    for pattern, name in (
        ("libcudart-*.so.12*", "libcudart.so.12"),
        ("libb64-*.so.0d", "libb64.so.0d"),
    ):
        link = folder / name
        if not link.exists():
            link.symlink_to(next(libs.glob(pattern)))
    return folder


def window_ms(video: Path, library: str, url: str) -> tuple[int, float]:
    """(measurement window ms, seconds one detect of `video` took) on this machine."""
    from rci_client import RciClient

    with RciClient(url, protocol="grpc") as client:
        started = time.perf_counter()
        client.detect(video, library)
        seconds = time.perf_counter() - started
    return max(MIN_WINDOW_MS, int(WINDOW_REQUESTS * seconds * 1000)), seconds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--video", type=Path, required=True)
    parser.add_argument("--library", default="main")
    parser.add_argument("--url", default="127.0.0.1:8001", help="gRPC address")
    parser.add_argument(
        "--concurrency", default="1,2,4,8", help="start:end[:step], or levels: 1,2,4,8"
    )
    parser.add_argument("--work-dir", type=Path, default=Path(".rci"))
    parser.add_argument(
        "--csv", type=Path, default=None, help="also write perf_analyzer's CSV here"
    )
    parser.add_argument("extra", nargs="*", help="arguments passed on to perf_analyzer (after --)")
    args = parser.parse_args(argv)
    args.work_dir.mkdir(parents=True, exist_ok=True)
    data = write_input_data(args.video, args.library, args.work_dir / "perf_input.json")
    window, seconds = window_ms(args.video, args.library, args.url)
    print(f"one request took {seconds:.2f} s: measurement window {window} ms", flush=True)
    env = dict(os.environ)
    env["LD_LIBRARY_PATH"] = os.pathsep.join(
        p for p in (str(library_dir(args.work_dir.resolve())), env.get("LD_LIBRARY_PATH")) if p
    )
    command = [
        str(Path(sys.executable).parent / "perf_analyzer"),
        "-m", "rci_detect",
        "-i", "grpc",
        "-u", args.url,
        f"--input-data={data}",
        # On 2 cores the defaults never call a measurement stable.
        "-p", str(window), "--max-trials", "10", "--stability-percentage", "50",
    ]  # fmt: skip
    ranges = (
        [f"{c}:{c}" for c in args.concurrency.split(",")]
        if "," in args.concurrency
        else [args.concurrency]
    )
    rows: list[str] = []
    for n, levels in enumerate(ranges):
        table = args.work_dir / f"perf_{n}.csv"
        run = command + [f"--concurrency-range={levels}", "-f", str(table)] + args.extra
        code = subprocess.run(run, env=env).returncode
        if code:
            return code
        lines = table.read_text().splitlines()
        rows += lines if not rows else lines[1:]  # one header
    if args.csv:
        args.csv.write_text("\n".join(rows) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
