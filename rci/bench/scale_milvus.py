"""The fingerprint index at scale in Milvus Lite: the same database, queries and exact ground
truth as rci-bench scale (rci.bench.scale), inserted into one Milvus Lite collection as a
Milvus library's frames collection holds them, then searched under each index type Milvus
Lite 2.5 builds (FLAT and IVF_FLAT; it refuses HNSW and the rest, which a Milvus server
has): insert rate, index build time, recall@10 and latency per query frame over 60-frame
batches, as one detect sends them.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from pathlib import Path

import faiss
import numpy as np

from rci.bench.scale import CHUNK, DIM, Gaussian, K, _scores, _stderr, timed_search
from rci.library.build import auto_nlist
from rci.library.milvus import INSERT_ROWS, start_lite

# Index type -> (build parameters, search parameters per row): each search setting a row.
INDEXES = {
    "FLAT": ({}, [{}]),
    "IVF_FLAT": (None, [{"nprobe": 16}, {"nprobe": 128}]),  # nlist as faiss's
}


def exact_neighbours(n: int, gauss: Gaussian, xq: np.ndarray, seed: int, chunk: int = CHUNK):
    """Ids (nq, K) of the exact top K by inner product over database rows 0..n-1."""
    heap = faiss.ResultHeap(len(xq), K, keep_max=True)
    for start, xb in gauss.chunks(n, seed, chunk):
        D, I = faiss.knn(xq, xb, K, faiss.METRIC_INNER_PRODUCT)
        heap.add_result(D, I + start)
    heap.finalize()
    return heap.I


def bench_milvus(
    n: int, gauss: Gaussian, xq: np.ndarray, sources: np.ndarray, work: Path, *,
    indexes: list[str], seed: int, chunk: int = CHUNK, log: Callable[[str], None] = _stderr,
) -> list[dict]:  # fmt: skip
    """Rows {vectors, index, nprobe (its search setting), recall_at_10, source_in_top_10,
    ms_per_frame, memory_mb (the Lite file), train_s (index build), add_s (inserts)}."""
    from pymilvus import MilvusClient

    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    # An engine of its own per size, stopped at the end (pymilvus would keep one per path).
    uris, engines = start_lite([work / f"scale-{n}.db"])
    try:
        return _measure(MilvusClient(uri=next(iter(uris.values()))), n, gauss, xq, sources,
                        work, indexes, seed, chunk, log)  # fmt: skip
    finally:
        for engine in engines:
            engine.stop()


def _measure(client, n, gauss, xq, sources, work, indexes, seed, chunk, log) -> list[dict]:
    from pymilvus import DataType

    schema = client.create_schema(auto_id=False)
    schema.add_field("id", DataType.INT64, is_primary=True)
    schema.add_field("vector", DataType.FLOAT_VECTOR, dim=DIM)
    client.create_collection("frames", schema=schema, consistency_level="Strong")
    add_s = 0.0
    for start, xb in gauss.chunks(n, seed, chunk):
        tic = time.perf_counter()
        for part in range(0, len(xb), INSERT_ROWS):
            rows = xb[part : part + INSERT_ROWS]
            ids = range(start + part, start + part + len(rows))
            client.insert(
                "frames", [{"id": i, "vector": v} for i, v in zip(ids, rows, strict=True)]
            )
        add_s += time.perf_counter() - tic
        log(f"Milvus Lite {n:,}: {start + len(xb):,} rows inserted ({add_s:.0f} s)")
    client.flush("frames")  # sealed segments: what an index is built on
    gt = exact_neighbours(n, gauss, xq, seed, chunk)
    out = []
    for kind in indexes:
        build, searches = INDEXES[kind]
        if build is None:
            build = {"nlist": auto_nlist(n)}
        client.release_collection("frames")
        for name in client.list_indexes("frames"):
            client.drop_index("frames", name)
        params = client.prepare_index_params()
        params.add_index("vector", index_type=kind, metric_type="IP", params=build)
        tic = time.perf_counter()
        client.create_index("frames", params)
        client.load_collection("frames")
        train_s = time.perf_counter() - tic
        memory_mb = sum(f.stat().st_size for f in work.rglob("*") if f.is_file()) / 2**20
        for search in searches:
            I, ms = timed_search(_search(client, search), xq)
            setting = ", ".join(f"{k} {v}" for k, v in search.items()) or None
            out.append({"vectors": n, "index": f"Milvus Lite {kind}", "nprobe": setting,
                        "memory_mb": memory_mb, "train_s": train_s, "add_s": add_s,
                        **_scores(I, gt, sources), "ms_per_frame": ms})  # fmt: skip
            log(f"Milvus Lite {n:,} {kind} {setting}: recall@10 {out[-1]['recall_at_10']:.3f}")
    client.close()
    return out


def _search(client, search: dict) -> Callable[[np.ndarray], np.ndarray]:
    """A batch (b, D) -> its ids (b, K) from the frames collection, -1 where fewer."""

    def run(batch: np.ndarray) -> np.ndarray:
        hits = client.search(
            "frames", data=list(batch), anns_field="vector", limit=K,
            search_params={"metric_type": "IP", "params": search},
        )  # fmt: skip
        ids = [[h["id"] for h in found][:K] for found in hits]
        return np.array([row + [-1] * (K - len(row)) for row in ids], np.int64)

    return run
