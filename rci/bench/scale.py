"""The fingerprint index at scale: exact search and the product's IVF-PQ over millions of
synthetic SSCD-like fingerprints, by recall@10, latency per query frame, memory and build time.

Database: 512-d unit float32 vectors drawn from a Gaussian with the mean and covariance of the
real descriptors in a built library, then L2-normalised. Rows are i.i.d. and made in chunks
by generators seeded (seed, chunk number), so a chunk can be made again instead of kept, and
a smaller database is a prefix of a larger one: the queries are the same at every size.

Queries: the first half are edited copies of database rows (random rows of chunk 0 plus noise
shaped like the data, cosine to the row 0.8-0.9); "source in top 10" is the fraction of them
whose row is among the 10 returned, what voting needs. The second half are real descriptors
of whole videos held out of the fit: frames without a copy in the database, as most are.

Ground truth: the exact top-10 by inner product, streamed over the chunks. Memory is what a
reader holds: n d 4 bytes for exact search; for IVF-PQ the serialized index (codes n pq_m,
ids n 8, coarse centroids nlist d 4 and PQ codebooks), as a snapshot's frames.faiss holds.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import faiss
import numpy as np

from rci.library.build import MAX_TRAIN, MIN_TRAIN, TRAIN_PER_LIST, auto_nlist
from rci.library.store import LibraryFolder

K = 10  # neighbours per query frame
BATCH = 60  # query frames per search: a one-minute video at one frame per second
PQ = "PQ32np"  # as rci.library.build.build_snapshot: no polysemous training
CHUNK = 100_000  # database rows made at a time: 200 MB
DIM = 512


def _stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def normalise(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def open_folder(path: Path) -> LibraryFolder:
    """The library folder at `path`, with the descriptor and dimension it was made with."""
    meta = json.loads((path / "meta.json").read_text())
    return LibraryFolder(path.parent, path.name, descriptor=meta["descriptor"], dim=meta["dim"])


def real_videos(path: Path) -> list[np.ndarray]:
    """Each live video's fingerprints, (T, 512) float32, in the library folder `path`."""
    folder = open_folder(path)
    live, _ = folder.current()
    return [folder.load_video(r).embeddings for r in live.values()]


@dataclass(frozen=True)
class Gaussian:
    """x = normalise(mean + basis z), z ~ N(0, I): the fitted mean and covariance, unit length."""

    mean: np.ndarray  # (D,) float32
    basis: np.ndarray  # (D, D) float32: covariance eigenvectors times sqrt(eigenvalues)

    @classmethod
    def fit(cls, x: np.ndarray, ridge: float = 0.0) -> Gaussian:
        """Fitted to rows x (N, D); `ridge` > 0 adds that variance in every direction, so
        fewer rows than dimensions still give a full-rank spread."""
        if len(x) < 2 or (len(x) <= x.shape[1] and ridge <= 0):
            raise ValueError(
                f"fitting a covariance needs more than {x.shape[1]} rows, got {len(x)}"
            )
        cov = np.cov(x, rowvar=False) + ridge * np.eye(x.shape[1])
        w, v = np.linalg.eigh(cov)
        basis = v * np.sqrt(np.clip(w, 0, None))
        return cls(x.mean(axis=0).astype(np.float32), basis.astype(np.float32))

    def noise(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """(n, D) float32 centred draws: deviations shaped like the data's."""
        return rng.standard_normal((n, len(self.mean)), dtype=np.float32) @ self.basis.T

    def chunk(self, number: int, seed: int, rows: int = CHUNK) -> np.ndarray:
        """(rows, D) float32: the first `rows` of database chunk `number` for `seed`."""
        rng = np.random.default_rng([seed, number])
        return normalise(self.mean + self.noise(rng, rows))

    def chunks(self, n: int, seed: int, size: int = CHUNK) -> Iterator[tuple[int, np.ndarray]]:
        """(first row, (rows, D) float32) chunks of database rows 0..n-1."""
        for number, start in enumerate(range(0, n, size)):
            yield start, self.chunk(number, seed, min(size, n - start))


def make_queries(
    videos: list[np.ndarray], seed: int, nq: int, first_chunk: int
) -> tuple[Gaussian, np.ndarray, np.ndarray]:
    """The fitted Gaussian, queries xq (nq, D) float32 and the copies' source rows (nq // 2,),
    drawn from the first `first_chunk` database rows."""
    rng = np.random.default_rng(seed)
    order, held, count = rng.permutation(len(videos)), 0, 0
    while count < nq - nq // 2:  # whole videos: a video's frames are near-duplicates
        count += len(videos[order[held]])
        held += 1
    gauss = Gaussian.fit(np.concatenate([videos[i] for i in order[held:]]))
    real = np.concatenate([videos[i] for i in order[:held]])
    real = real[rng.choice(len(real), nq - nq // 2, replace=False)]
    sources = rng.choice(first_chunk, nq // 2, replace=False)
    _, x = next(gauss.chunks(first_chunk, seed, first_chunk))
    x = x[sources]
    # A unit row plus noise of length sqrt(1/c^2 - 1) at right angles has cosine c to it.
    cosine = rng.uniform(0.8, 0.9, (len(x), 1))
    noise = gauss.noise(rng, len(x))
    noise = normalise(noise - (noise * x).sum(1, keepdims=True) * x)
    copies = normalise(x + noise * np.sqrt(1 / cosine**2 - 1))
    return gauss, np.ascontiguousarray(np.vstack([copies, real]), dtype=np.float32), sources


def timed_search(
    index: faiss.Index | Callable[[np.ndarray], np.ndarray], xq: np.ndarray
) -> tuple[np.ndarray, float]:
    """Ids (nq, K) and the median over 60-frame batches of milliseconds per query frame; a
    faiss index, or a function from a batch (b, D) to its ids (b, K)."""
    search = index if callable(index) else (lambda batch: index.search(batch, K)[1])
    parts, per_frame = [], []
    for start in range(0, len(xq), BATCH):
        batch = xq[start : start + BATCH]
        tic = time.perf_counter()
        parts.append(search(batch))
        per_frame.append((time.perf_counter() - tic) * 1e3 / len(batch))
    return np.concatenate(parts), statistics.median(per_frame)


def _scores(I: np.ndarray, gt: np.ndarray, sources: np.ndarray) -> dict:
    """recall@10: mean share of the exact 10 among the 10 returned, per query frame."""
    found = [len(np.intersect1d(a, b)) / K for a, b in zip(I, gt, strict=True)]
    source = (I[: len(sources)] == sources[:, None]).any(axis=1)
    return {"recall_at_10": float(np.mean(found)), "source_in_top_10": float(source.mean())}


def bench_size(
    n: int, gauss: Gaussian, xq: np.ndarray, sources: np.ndarray, *, nprobes: list[int],
    max_flat: int, seed: int, pq: str = PQ, chunk: int = CHUNK,
    log: Callable[[str], None] = _stderr,
) -> list[dict]:  # fmt: skip
    """Rows {vectors, index, nprobe, recall_at_10, source_in_top_10, ms_per_frame, memory_mb,
    train_s, add_s} for exact search and IVF{nlist},{pq} at each nprobe over n database rows."""
    nlist = auto_nlist(n)
    ntrain = min(MAX_TRAIN, max(TRAIN_PER_LIST * nlist, MIN_TRAIN), n)
    # Rows are i.i.d., so the first ones are as fair a training sample as any.
    xt = np.concatenate([xb for _, xb in gauss.chunks(ntrain, seed, chunk)])
    factory = f"IVF{nlist},{pq}"
    log(f"{n:,}: training {factory} on {ntrain:,} rows")
    ivf = faiss.index_factory(DIM, factory, faiss.METRIC_INNER_PRODUCT)
    tic = time.perf_counter()
    ivf.train(xt)
    train_s, seconds = time.perf_counter() - tic, {"gt": 0.0, "ivf": 0.0, "flat": 0.0}
    del xt
    flat = faiss.IndexFlatIP(DIM) if n <= max_flat else None
    heap = faiss.ResultHeap(len(xq), K, keep_max=True)
    for start, xb in gauss.chunks(n, seed, chunk):
        tic = time.perf_counter()
        D, I = faiss.knn(xq, xb, K, faiss.METRIC_INNER_PRODUCT)
        heap.add_result(D, I + start)
        seconds["gt"] += time.perf_counter() - tic
        tic = time.perf_counter()
        ivf.add_with_ids(xb, np.arange(start, start + len(xb), dtype=np.int64))
        seconds["ivf"] += time.perf_counter() - tic
        if flat is not None:
            tic = time.perf_counter()
            flat.add(xb)
            seconds["flat"] += time.perf_counter() - tic
        log(f"{n:,}: {start + len(xb):,} rows searched exactly and added")
    heap.finalize()
    gt = heap.I
    if flat is None:  # the streamed brute force (all queries per chunk) is the exact row
        I, ms, kind, add_s = gt, seconds["gt"] * 1e3 / len(xq), "exact (streamed)", None
    else:
        (I, ms), kind, add_s = timed_search(flat, xq), "IndexFlatIP", seconds["flat"]
    exact = {"index": kind, "nprobe": None, "memory_mb": n * DIM * 4 / 2**20, "train_s": None}
    rows = [{"vectors": n, **exact, **_scores(I, gt, sources), "ms_per_frame": ms, "add_s": add_s}]
    memory_mb = len(faiss.serialize_index(ivf)) / 2**20
    for nprobe in nprobes:
        ivf.nprobe = nprobe
        I, ms = timed_search(ivf, xq)
        rows.append({"vectors": n, "index": factory, "nprobe": nprobe,
                     "memory_mb": memory_mb, "train_s": train_s, **_scores(I, gt, sources),
                     "ms_per_frame": ms, "add_s": seconds["ivf"]})  # fmt: skip
        log(f"{n:,}: nprobe {nprobe}: recall@10 {rows[-1]['recall_at_10']:.3f}")
    return rows


def query_set(
    real: Path, sizes: list[int], queries: int = 1000, seed: int = 0, chunk: int = CHUNK
) -> tuple[Gaussian, np.ndarray, np.ndarray]:
    """make_queries for a run over `sizes`: the copies' sources among the rows every size
    holds, so each size (and each engine) answers the same queries."""
    return make_queries(real_videos(real), seed, queries, min(chunk, *sizes))


def scale(
    real: Path, sizes: list[int], *, queries: int = 1000, nprobes: list[int] = (16, 64),
    max_flat: int = 2_000_000, seed: int = 0, pq: str = PQ, chunk: int = CHUNK,
    log: Callable[[str], None] = _stderr,
) -> list[dict]:  # fmt: skip
    """bench_size's rows for every size, with the same queries, fitted to library `real`."""
    gauss, xq, sources = query_set(real, sizes, queries, seed, chunk)
    opts = {"nprobes": list(nprobes), "max_flat": max_flat, "seed": seed, "pq": pq, "chunk": chunk}
    return [row for n in sizes for row in bench_size(n, gauss, xq, sources, **opts, log=log)]


def machine(threads: int) -> str:
    """CPU model, cores, RAM and faiss threads, for a table's header."""
    cpu = platform.processor() or "unknown CPU"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    cores = f"{os.cpu_count()} cores, {ram:.1f} GiB RAM"
    return f"{cpu}, {cores}; faiss {faiss.__version__}, {threads} threads"


def markdown(rows: list[dict], header: str) -> str:
    """The rows as a markdown table under `header`."""

    def dash(value, spec: str) -> str:
        if isinstance(value, str):  # a Milvus search setting: "ef 64"
            return value
        return "-" if value is None else format(value, spec)

    lines = [
        header, "",
        "| vectors | index | nprobe | recall@10 | source in top 10 | ms / query frame | "
        "memory MB | train s | add s |",
        "|---:|---|---:|---:|---:|---:|---:|---:|---:|",
    ]  # fmt: skip
    for r in rows:
        lines.append(
            f"| {r['vectors']:,} | {r['index']} | {dash(r['nprobe'], 'd')} | "
            f"{r['recall_at_10']:.3f} | {r['source_in_top_10']:.3f} | {r['ms_per_frame']:.3f} | "
            f"{r['memory_mb']:.1f} | {dash(r['train_s'], '.1f')} | {dash(r['add_s'], '.1f')} |"
        )
    return "\n".join(lines) + "\n"
