"""What audio recall's exact Hamming search costs as a library grows: seconds to search the
windows of a 60 s query (2 a second, 5 tempos x phases 0 and 2: 1200 windows, k = 10) in
libraries of random 256-bit windows, on one thread.

    .venv/bin/python scripts/measure_audio_recall.py
"""

from __future__ import annotations

import argparse
import time

import faiss
import numpy as np

from rci.preprocess.audio_prints import WINDOW_BYTES


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000,100000,1000000", help="library windows")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    faiss.omp_set_num_threads(1)
    rng = np.random.default_rng(0)
    xq = rng.integers(0, 256, (1200, WINDOW_BYTES), dtype=np.uint8)
    print("| library windows | hours of audio | search s (median) |\n|---|---|---|")
    for n in (int(x) for x in args.sizes.split(",")):
        index = faiss.IndexBinaryFlat(WINDOW_BYTES * 8)
        index.add(rng.integers(0, 256, (n, WINDOW_BYTES), dtype=np.uint8))
        times = []
        for _ in range(args.repeats):
            began = time.perf_counter()
            index.search(xq, 10)
            times.append(time.perf_counter() - began)
        print(f"| {n:,} | {n * 0.495 / 3600:.0f} | {np.median(times):.3f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
