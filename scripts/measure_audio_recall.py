"""What audio recall's search costs and finds as a library grows: exact Hamming search
(IndexBinaryFlat) against the binary IVF that `rci build-index` trains for a library's audio
(BIVF, nlist from auto_nlist), on one thread.

Scale: seconds to search the windows of a 60 s query (2 a second, 5 tempos x phases 0 and
2: 1200 windows, k = 10) in libraries of random 256-bit windows, and the fraction of
planted copies found: a library window with 5%, 10% or 15% of its bits flipped (similarity
0.9, 0.8, 0.7; audio_min_similarity is 0.7) searched for it among its 10 neighbours.
Random windows have no clusters, which is IVF's hardest case.

Benchmark (--bench OUT, a benchmark build whose served run filled OUT/server-data): per
query that carries a reference's sound (kept, noised, voiced over), whether audio recall
(rci.match.recall.recall_audio, the served parameters) puts that reference among its
candidates, exact and through the BIVF a build would train on that library; with --filler
N, N random windows join the library first (a larger library's lists and competition).

    .venv/bin/python scripts/measure_audio_recall.py
    .venv/bin/python scripts/measure_audio_recall.py --sizes 0 --bench .rci/bench-full
    .venv/bin/python scripts/measure_audio_recall.py --sizes 0 --bench .rci/bench-full \
        --filler 1000000
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import faiss
import numpy as np

from rci.bench.replay import served_library
from rci.describe.descriptor import DescriptorModel
from rci.library.build import TRAIN_PER_LIST, auto_nlist, train_audio_index
from rci.library.index import fingerprint_ids
from rci.library.store import record_key
from rci.match.recall import RecallParams, recall_audio
from rci.preprocess.audio_prints import WINDOW_BYTES

NPROBES = (8, 16, 32, 64, 128)
FLIPS = (0.05, 0.10, 0.15)  # bit error rates of the planted copies


def _median_search(index, xq: np.ndarray, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        began = time.perf_counter()
        index.search(xq, 10)
        times.append(time.perf_counter() - began)
    return float(np.median(times))


def _planted(rng: np.random.Generator, rows: np.ndarray, rate: float) -> np.ndarray:
    bits = np.unpackbits(rows, axis=1)
    bits ^= (rng.random(bits.shape) < rate).astype(np.uint8)
    return np.packbits(bits, axis=1)


def scale(sizes: list[int], repeats: int) -> None:
    rng = np.random.default_rng(0)
    xq = rng.integers(0, 256, (1200, WINDOW_BYTES), dtype=np.uint8)
    flips = " | ".join(f"found at {1 - 2 * r:.1f}" for r in FLIPS)
    print(f"| library windows | hours of audio | index | search s (median) | {flips} |")
    print("|---|---|---|---|" + "---|" * len(FLIPS))
    for n in sizes:
        base = rng.integers(0, 256, (n, WINDOW_BYTES), dtype=np.uint8)
        targets = rng.choice(n, 1000, replace=False)
        copies = [_planted(rng, base[targets], r) for r in FLIPS]
        flat = faiss.IndexBinaryFlat(WINDOW_BYTES * 8)
        flat.add(base)
        nlist = auto_nlist(n)
        ivf = faiss.index_binary_factory(WINDOW_BYTES * 8, f"BIVF{nlist}")
        ivf.train(base[rng.permutation(n)[: min(n, 64 * nlist)]])
        ivf.add(base)
        hours = n * 0.495 / 3600
        for name, index, probes in [("exact", flat, [0]), (f"BIVF{nlist}", ivf, NPROBES)]:
            for nprobe in probes:
                if nprobe:
                    index.nprobe = nprobe
                found = [
                    np.mean((index.search(c, 10)[1] == targets[:, None]).any(1)) for c in copies
                ]
                label = name + (f" nprobe {nprobe}" if nprobe else "")
                cells = " | ".join(f"{f:.3f}" for f in found)
                seconds = _median_search(index, xq, repeats)
                print(f"| {n:,} | {hours:.0f} | {label} | {seconds:.3f} | {cells} |")


def bench(out: Path, filler: int) -> None:
    manifest = json.loads((out / "manifest.json").read_text())
    index = served_library(out / "server-data", "bench", DescriptorModel.parse("sscd_resnet50"))
    folder = index.folder
    live, _ = folder.current()
    rng = np.random.default_rng(0)
    if filler:  # random windows of a video no query plays: the library at a larger scale
        extra = rng.integers(0, 256, (filler, WINDOW_BYTES), dtype=np.uint8)
        ids = fingerprint_ids(max(index.keys.values()) + 1, filler)
        index.audio.add_with_ids(extra, ids)
        sounds = {record_key(r): folder.load_audio(r).bits for r in live.values()
                  if r.get("audio_count")}  # fmt: skip
        nlist = auto_nlist(index.audio.ntotal)
        ivf = faiss.index_binary_factory(WINDOW_BYTES * 8, f"BIVF{nlist}")
        both = np.concatenate([*sounds.values(), extra])
        ivf.train(both[rng.permutation(len(both))[: TRAIN_PER_LIST * nlist]])
        for key, bits in sounds.items():
            ivf.add_with_ids(bits, fingerprint_ids(key, len(bits)))
        ivf.add_with_ids(extra, ids)
    else:
        trained = train_audio_index(folder, list(live.values()), rng, log=lambda _: None)
        if trained is None:
            print(f"{folder.path}: too few audio windows for a BIVF")
            return
        ivf = trained[0]
    exact = index.audio
    keys = {key: video_id for video_id, key in index.keys.items()}
    params = RecallParams()
    queries = []
    for q in manifest["queries"]:
        if q["audio"] not in ("kept", "noised", "voiceover") or not q["truth"]:
            continue
        heard = q["truth"][:1] if q["kind"] == "inside" else q["truth"]
        with np.load(out / "features" / f"{q['query_id']}.npz") as data:
            queries.append(({t["ref_id"] for t in heard}, data["audio"]))
    print(f"{len(queries)} queries carrying a reference's sound; library "
          f"{exact.ntotal:,} windows ({filler:,} of them random)\n")  # fmt: skip
    print("| index | reference among the audio candidates | search s per query (median) |")
    print("|---|---|---|")
    for label, audio, nprobe in [("exact", exact, 0)] + [
        (f"BIVF{ivf.nlist} nprobe {p}", ivf, p) for p in NPROBES if p <= ivf.nlist
    ]:
        if nprobe:
            audio.nprobe = nprobe
        index.audio = audio
        found, times = 0, []
        for refs, views in queries:
            began = time.perf_counter()
            keys_found = recall_audio(index, views, params)
            times.append(time.perf_counter() - began)
            found += bool(refs & {keys.get(k) for k in keys_found})
        print(f"| {label} | {found}/{len(queries)} | {np.median(times):.4f} |")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000,100000,1000000", help="library windows; 0: none")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--bench", type=Path, help="a benchmark build with its served library")
    parser.add_argument("--filler", type=int, default=0, help="random windows added to --bench")
    args = parser.parse_args()
    faiss.omp_set_num_threads(1)
    sizes = [int(x) for x in args.sizes.split(",") if int(x)]
    if sizes:
        scale(sizes, args.repeats)
    if args.bench:
        print()
        bench(args.bench, args.filler)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
