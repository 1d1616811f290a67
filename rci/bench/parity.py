"""Store parity on a benchmark build: the same fingerprints in a local library (exact faiss
search) and in a Milvus Lite library (FLAT), every query detected against each through the
served cpu ensemble, and the answers compared: candidates, scores, decisions, segments,
and the benchmark's metrics for each store.

The references and never-copied videos are ingested once through the server into the local
library; their stored fingerprints are then written into Milvus as they are (MilvusLibrary),
so any difference comes from the store's search and read-back, not from decoding twice.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import time
from dataclasses import dataclass
from pathlib import Path

from rci.bench.run import _detect, score
from rci.bench.scale import open_folder

LIBRARIES_TOML = """
[libraries.local]

[libraries.milvus]
store = "milvus"
uri = "parity.db"
"""
SCORE_TOLERANCE = 1e-4  # float32 inner products summed in another order
SECONDS_TOLERANCE = 0.01  # segment bounds


@dataclass
class Parity:
    """Per store: the benchmark's metrics and median detect seconds; over the queries: how
    many got the same answer from both, the largest score and segment-bound differences,
    and the Milvus copy's insert rate."""

    metrics: dict[str, dict]
    detect_median: dict[str, float]
    queries: int
    same_candidates: int
    same_decisions: int
    max_score_difference: float
    max_bound_difference: float
    insert_fingerprints_per_second: float
    fingerprints: int
    differences: list[str]  # per query answered otherwise: each store's candidates


def compare(local: list[dict], milvus: list[dict]) -> tuple[int, int, float, float]:
    """Over queries' prediction records (runner format, same order): queries whose matches
    name the same videos in the same order, queries with the same decisions, the largest
    score difference and the largest segment-bound difference (seconds) among those."""
    same, decided, score_gap, bound_gap = 0, 0, 0.0, 0.0
    for a, b in zip(local, milvus, strict=True):
        ids = [m["ref_id"] for m in a["matches"]]
        if ids != [m["ref_id"] for m in b["matches"]]:
            continue
        same += 1
        pairs = list(zip(a["matches"], b["matches"], strict=True))
        decided += all(x["reproduced"] == y["reproduced"] for x, y in pairs)
        for x, y in pairs:
            score_gap = max(score_gap, abs(x["score"] - y["score"]))
            if len(x["segments"]) != len(y["segments"]):
                bound_gap = float("inf")
                continue
            for s, t in zip(x["segments"], y["segments"], strict=True):
                bound_gap = max(bound_gap, *(abs(u - v) for u, v in zip(s[:4], t[:4], strict=True)))
    return same, decided, score_gap, bound_gap


def measure(build_dir: Path, work: Path, log=print) -> Parity:
    """Ingest `build_dir`'s library into both stores through one started server (state in
    `work`, emptied first) and detect every query against each."""
    from rci.library.milvus import LITE_ENV, MilvusLibrary
    from rci.serving.libraries import read_config
    from rci.serving.server import ServerOptions, TritonServer
    from rci_client import RciClient

    manifest = json.loads((build_dir / "manifest.json").read_text())
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    config = work / "libraries.toml"
    config.write_text(LIBRARIES_TOML)
    data = work / "data"
    options = ServerOptions(data_dir=data, work_dir=work / "server", libraries_config=config)
    stored = [s for s in manifest["sources"] if s["role"] in ("reference", "library")]
    with TritonServer(options) as server, RciClient(server.http_url, timeout=600) as client:
        for n, source in enumerate(stored):
            client.ingest(build_dir / source["path"], source["id"], "local")
            log(f"ingested {n + 1}/{len(stored)}")
        os.environ[LITE_ENV] = json.dumps(server.lite_uris)  # this process reaches it too
        folder = open_folder(data / "local")
        milvus = MilvusLibrary(
            read_config(config)["milvus"].milvus_settings(data), "milvus",
            descriptor=folder.meta.descriptor, dim=folder.meta.dim,
        )  # fmt: skip
        start, fingerprints = time.perf_counter(), 0
        for record in folder.current()[0].values():
            video = folder.load_video(record)
            milvus.add(video)
            fingerprints += len(video.embeddings)
        rate = fingerprints / (time.perf_counter() - start)
        milvus.close()
        records = {}
        for name in ("local", "milvus"):
            records[name] = [_detect(client, build_dir, q, name) for q in manifest["queries"]]
            log(f"detected {len(manifest['queries'])} queries against {name}")
    for name, r in records.items():  # for a closer look at any difference
        (work / f"predictions-{name}.json").write_text(json.dumps(r))
    same, decided, score_gap, bound_gap = compare(records["local"], records["milvus"])
    return Parity(
        metrics={name: score(manifest["queries"], r) for name, r in records.items()},
        detect_median={
            name: statistics.median(p["seconds"] for p in r) for name, r in records.items()
        },
        queries=len(manifest["queries"]),
        same_candidates=same,
        same_decisions=decided,
        max_score_difference=score_gap,
        max_bound_difference=bound_gap,
        insert_fingerprints_per_second=rate,
        fingerprints=fingerprints,
        differences=[
            f"{a['query_id']}: local {_candidates(a)}; Milvus {_candidates(b)}"
            for a, b in zip(records["local"], records["milvus"], strict=True)
            if compare([a], [b])[:2] != (1, 1)
        ],
    )


def _candidates(record: dict) -> str:
    """A query's matches as `id score (copy)`, in the order reported."""
    return ", ".join(
        f"{m['ref_id']} {m['score']:.3f}" + (" (copy)" if m["reproduced"] else "")
        for m in record["matches"]
    )


def markdown(p: Parity) -> str:
    """The metrics side by side, then the per-query agreement."""
    rows = [
        ("decision F1", "decision_f1"),
        ("pair uAP", "pair_uap"),
        ("VCSL F", "vcsl_f"),
        ("source recall", "source_recall"),
    ]
    lines = ["| | local, exact faiss | Milvus Lite, FLAT |", "| --- | --- | --- |"]
    for label, key in rows:
        a, b = (p.metrics[s].get(key) for s in ("local", "milvus"))
        lines.append(f"| {label} | {_fmt(a)} | {_fmt(b)} |")
    lines.append(
        f"| detect median s | {p.detect_median['local']:.2f} | {p.detect_median['milvus']:.2f} |"
    )
    lines += [
        "",
        f"{p.queries} queries against {p.fingerprints:,} fingerprints: the same candidates in "
        f"the same order for {p.same_candidates}, the same decisions for {p.same_decisions}; "
        f"largest score difference {p.max_score_difference:.2g} (tolerance "
        f"{SCORE_TOLERANCE:g}), largest segment-bound difference "
        f"{p.max_bound_difference:.2g} s. Copying the fingerprints into Milvus Lite: "
        f"{p.insert_fingerprints_per_second:,.0f} fingerprints/s.",
    ]
    if p.differences:
        lines += ["", "Answered otherwise:", *(f"- {d}" for d in p.differences)]
    return "\n".join(lines)


def _fmt(value) -> str:
    return "n/a" if value is None else f"{value:.3f}"
