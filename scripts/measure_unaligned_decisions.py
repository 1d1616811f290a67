"""Would MatchLite gain by deciding the pairs alignment placed no segment on? Scores a
training run's teacher (its saved outputs) and its distilled student (its ONNX file, in
onnxruntime) twice: as served (a pair without a segment is never reproduced) and with such
pairs decided at a cut chosen on val (rci.train.report.choose_unaligned: just above every
val pair without a segment that copies nothing). Prints F1 and near-miss false positives
per test slice, and the test pairs without a segment that copy nothing yet score high.
Reads the pairs file as training does, so it needs the train extra (`make install-train`).

    .venv/bin/python scripts/measure_unaligned_decisions.py \\
        --pairs .rci/matchlite/pairs2.npz --run .rci/matchlite/run2
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from rci.match.matchlite import MatchLite
from rci.train.report import evaluate, pair_scores
from rci.train.train import load_pairs

SLICES = ("test real", "test composed", "test obscured")


def student_probabilities(run: Path, p, rows: np.ndarray) -> np.ndarray:
    """(N,) the run's exported student's probability at `rows` (0 elsewhere), pair by pair."""
    scorer = MatchLite(run / "matchlite.onnx", threads=2)
    out = np.zeros(len(p.label), np.float32)
    for r in rows:
        maps = p.maps[r].astype(np.float32)[None]
        mask = np.ones((1, 1, *maps.shape[2:]), np.float32)
        out[r] = scorer.run_student(maps, mask, p.side[r : r + 1])["PROBABILITY"][0]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pairs", type=Path, required=True)
    parser.add_argument("--run", type=Path, required=True)
    args = parser.parse_args()
    p = load_pairs(args.pairs)
    truth = json.loads(args.pairs.with_suffix(".records.json").read_text())
    recipes = dict(zip(p.query_ids.tolist(), p.recipes.tolist(), strict=True))
    for q in truth["queries"]:
        q["recipe"] = recipes.get(q["query_id"], "real")
    rows = np.flatnonzero(p.query_splits[p.query] != "train")
    teacher = np.load(args.run / "teacher_outputs.npz")["probability"]
    print("| scorer | pairs without a segment | cut | " + " | ".join(SLICES) + " |")
    print("|---|---|---|" + "---|" * len(SLICES))
    student = student_probabilities(args.run, p, rows)
    for name, values in (("teacher", teacher), ("student", student)):
        scores = pair_scores(p.query_ids, p.query, p.ref_ids, values, rows)
        for decided in (False, True):
            r = evaluate(truth["records"], truth["queries"], scores, decide_unaligned=decided)
            cut = r["unaligned_threshold"]
            cells = [
                f"{r[s]['decision_f1']:.3f} ({r[s]['near_miss_false_positives']} near-miss FP)"
                for s in SLICES
            ]
            how = "decided" if decided else "never reproduced"
            shown = "-" if cut is None else f"{cut:.3f}"
            print(f"| {name} | {how} | {shown} | " + " | ".join(cells) + " |")
    copies = {(q["query_id"], t["ref_id"]) for q in truth["queries"] for t in q["truth"]}
    kinds = {q["query_id"]: q["kind"] for q in truth["queries"]}
    print("\nTest pairs without a segment that copy nothing, highest student probability first:")
    test = [q for q in truth["queries"] if q["split"] == "test"]
    unaligned = [
        (scores.get((q["query_id"], m["ref_id"]), 0.0), q["query_id"], m["ref_id"])
        for q in test
        for m in truth["records"][q["query_id"]]
        if not m["segments"] and (q["query_id"], m["ref_id"]) not in copies
    ]
    for s, query, ref in sorted(unaligned, reverse=True)[:5]:
        print(f"  {s:.3f}  {query} ({kinds[query]}) x {ref}")


if __name__ == "__main__":
    main()
