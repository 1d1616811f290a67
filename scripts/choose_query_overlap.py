"""Choose alignment's max_query_overlap on the train and val splits of a built benchmark.

Re-scores one `rci-bench run`'s predictions with the segment filter applied at several
fractions: segments are taken strongest first (as rci_match orders them) and one whose
query span is more than the fraction inside those kept is dropped; each match's score is
then its best remaining segment's. The predictions must come from a run with the filter
off (`max_query_overlap` "1.0" in model_repository/common/rci_match/config.pbtxt), saved
aside before the next run overwrites them. Test queries are never scored.

    .venv/bin/python scripts/choose_query_overlap.py --out .rci/bench-full \\
        --predictions .rci/rci-unfiltered.json
"""

from __future__ import annotations

import argparse
import copy
import json
from pathlib import Path

from rci.bench.run import score
from rci.match.alignment import AlignParams, Segment, one_reference_moment_each

SPLITS = ("train", "val")
FRACTIONS = (0.25, 0.5, 0.75, 0.9, 1.0)


def filtered(record: dict, fraction: float) -> dict:
    """A prediction record with every match's segments filtered and its score redone."""
    out = copy.deepcopy(record)
    for m in out["matches"]:
        segments = [Segment(q0, q1, r0, r1, s, 0) for q0, q1, r0, r1, s in m["segments"]]
        kept = one_reference_moment_each(segments, fraction)
        m["segments"] = [seg.as_row() for seg in kept]
        m["score"] = max((seg.score for seg in kept), default=0.0)
        m["reproduced"] = m["score"] >= AlignParams().threshold
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(".rci/bench-full"))
    parser.add_argument("--predictions", type=Path, required=True)
    args = parser.parse_args()
    queries = json.loads((args.out / "manifest.json").read_text())["queries"]
    records = {r["query_id"]: r for r in json.loads(args.predictions.read_text())}
    print("| split | max_query_overlap | segment AP | VCSL P | VCSL R | VCSL F | decision F1 |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for split in SPLITS:
        chosen = [q for q in queries if q["split"] == split]
        for fraction in FRACTIONS:
            r = score(chosen, [filtered(records[q["query_id"]], fraction) for q in chosen])
            print(
                f"| {split} | {fraction} | {r['segment_ap']:.3f} | {r['vcsl_precision']:.3f} | "
                f"{r['vcsl_recall']:.3f} | {r['vcsl_f']:.3f} | {r['decision_f1']:.3f} |"
            )


if __name__ == "__main__":
    main()
