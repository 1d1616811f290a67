"""Choose video-level recall's loose threshold on the train and val splits of a built benchmark.

For each train/val query with a true source: the cosine between the query's mean descriptor
and every reference's, and whether frame votes alone already recalled the source (from the
last `rci-bench run`'s predictions, run with video-level recall off). Prints, per threshold,
the recall of true sources by votes, by their union with the top 5 by mean, and how many
extra candidates the union costs per query. Describing a query costs seconds, so by
default the queries are every one whose source votes missed plus a seeded sample of the
rest (--sample; recall counts over the sample are then not the split's). Test queries are
never read.

    .venv/bin/python scripts/choose_video_recall.py --out .rci/bench-full --sample 24
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from rci.describe.descriptor import EMBEDDING_DIM, Descriptor
from rci.library.index import mean_descriptor
from rci.library.store import LibraryFolder
from rci.preprocess.pipeline import preprocess

SPLITS = ("train", "val")
THRESHOLDS = (0.2, 0.3, 0.4, 0.5, 0.6, 0.7)
TOP = 5  # video_candidates


def query_means(out: Path, queries: list[dict]) -> dict[str, np.ndarray]:
    """Mean descriptor (D,) per query id, cached in out/query-means.npz."""
    cache = out / "query-means.npz"
    means = dict(np.load(cache)) if cache.exists() else {}
    todo = [q for q in queries if q["query_id"] not in means]
    if todo:
        descriptor = Descriptor()
        for n, q in enumerate(todo):
            video = preprocess((out / q["path"]).read_bytes())
            means[q["query_id"]] = mean_descriptor(descriptor.embed(video.frames))
            print(f"described {n + 1}/{len(todo)} queries", flush=True)
        np.savez(cache, **means)
    return means


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(".rci/bench-full"))
    parser.add_argument("--library", default="bench")
    parser.add_argument("--sample", type=int, default=24, help="queries beyond the missed")
    args = parser.parse_args()
    manifest = json.loads((args.out / "manifest.json").read_text())
    queries = [q for q in manifest["queries"] if q["split"] in SPLITS]
    votes = {p["query_id"]: {m["ref_id"] for m in p["matches"]}
             for p in json.loads((args.out / "predictions" / "rci.json").read_text())}  # fmt: skip
    missed = [q for q in queries if {t["ref_id"] for t in q["truth"]} - votes[q["query_id"]]]
    rest = [q for q in queries if q not in missed]
    picked = np.random.default_rng(0).permutation(len(rest))[: args.sample]
    queries = missed + [rest[i] for i in sorted(picked)]
    print(f"{len(missed)} queries with a source votes missed, {len(picked)} others")
    folder = LibraryFolder(
        args.out / "server-data", args.library, descriptor="sscd_resnet50", dim=EMBEDDING_DIM
    )
    records = list(folder.current()[0].values())
    ref_ids = [r["video_id"] for r in records]
    refs = np.stack([mean_descriptor(folder.load_video(r).embeddings) for r in records])
    means = query_means(args.out, queries)
    rows = {t: {s: [0, 0, 0, 0] for s in SPLITS} for t in THRESHOLDS}  # hits votes, union, n, extra
    source_sims, other_sims = [], []
    for q in queries:
        sims = refs @ means[q["query_id"]]
        order = np.argsort(-sims)[:TOP]
        truth = {t["ref_id"] for t in q["truth"]}
        for n, ref in enumerate(ref_ids):
            (source_sims if ref in truth else other_sims).append(sims[n])
        for t in THRESHOLDS:
            near = {ref_ids[i] for i in order if sims[i] >= t}
            row = rows[t][q["split"]]
            row[3] += len(near - votes[q["query_id"]])
            for ref in truth:
                row[0] += ref in votes[q["query_id"]]
                row[1] += ref in votes[q["query_id"]] | near
                row[2] += 1
    counts = {s: max(sum(1 for q in queries if q["split"] == s), 1) for s in SPLITS}
    print("| threshold | " + " | ".join(
        f"{s} votes | {s} union | {s} extra per query" for s in SPLITS) + " |")  # fmt: skip
    print("| --- " * (1 + 3 * len(SPLITS)) + "|")
    for t in THRESHOLDS:
        cells = []
        for s in SPLITS:
            hit, union, total, extra = rows[t][s]
            cells += [f"{hit}/{total}", f"{union}/{total}", f"{extra / counts[s]:.2f}"]
        print(f"| {t} | " + " | ".join(cells) + " |")
    source, other = np.array(source_sims), np.array(other_sims)
    print(
        f"\nmean-descriptor cosine, true source: median {np.median(source):.3f}, "
        f"5th percentile {np.percentile(source, 5):.3f}; other references: 99th percentile "
        f"{np.percentile(other, 99):.3f}, max {other.max():.3f}"
    )


if __name__ == "__main__":
    main()
