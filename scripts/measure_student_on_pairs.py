"""Score an exported MatchLite student on a pairs file as `rci-matchlite report` scores a
run's: F1, pair uAP and false positives per test slice at its cut chosen on val; then with
the rule's strong scores deciding too (student or heuristic >= --rule-cut); the strongest
look-alikes the never-copied queries find, per split; and, for --probe, one pair's
probability with each of its twelve numbers set to 0, 0.5 and 1 (and the teacher's). Needs
the train extra (the pairs are read as training reads them):

    .venv/bin/python scripts/measure_student_on_pairs.py --pairs .rci/train/pairs.npz \\
        --student .rci/train/matchlite.onnx --probe Q077:S102 \\
        --teacher .rci/train/teacher_outputs.npz
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from rci.match.matchlite import MatchLite
from rci.match.pair_input import SIDE_FEATURES
from rci.train.report import evaluate, never_copied, pair_scores
from rci.train.train import load_pairs, make_batch

SLICES = ("test real", "test composed", "test obscured")


def table(title: str, report: dict) -> None:
    print(f"\n{title} (cut {report['threshold']:.3f})")
    for name in SLICES:
        row = report[name]
        fp = row.get("never_copied_false_positives", "-")
        print(f"  {name}: F1 {row['decision_f1']:.3f}, pair uAP {row['pair_uap']:.3f}, "
              f"near-miss FP {row['near_miss_false_positives']}, never-copied FP {fp}")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pairs", type=Path, required=True)
    parser.add_argument("--student", type=Path, required=True)
    parser.add_argument("--rule-cut", type=float, default=0.7)
    parser.add_argument("--probe", default="", help="QUERY:REFERENCE")
    parser.add_argument("--teacher", type=Path, help="a run's teacher_outputs.npz, for --probe")
    args = parser.parse_args()
    p = load_pairs(args.pairs)
    truth = json.loads(args.pairs.with_suffix(".records.json").read_text())
    recipes = dict(zip(p.query_ids.tolist(), p.recipes.tolist(), strict=True))
    for q in truth["queries"]:
        q["recipe"] = recipes.get(q["query_id"], "real")
    student = MatchLite(args.student, threads=2)
    rows = np.flatnonzero(p.query_splits[p.query] != "train")
    values = np.zeros(len(p.label), np.float32)
    for start in range(0, len(rows), 64):
        b = make_batch(p, rows[start : start + 64])
        out = student.run_student(b.maps.numpy(), b.mask.numpy(), b.side.numpy())
        values[b.rows] = out["PROBABILITY"]
    scores = pair_scores(p.query_ids, p.query, p.ref_ids, values, rows)
    alone = evaluate(truth["records"], truth["queries"], scores)
    table(f"{args.student}", alone)
    # A heuristic score at or over the rule's cut decides as a probability of 1 would.
    heuristic = {(q, m["ref_id"]): m["score"] for q, ms in truth["records"].items() for m in ms}
    both = {k: 1.0 if heuristic[k] >= args.rule_cut else v for k, v in scores.items()}
    table(f"student or heuristic >= {args.rule_cut}", evaluate(
        truth["records"], truth["queries"], both, alone["threshold"]))  # fmt: skip
    print("\nnever-copied queries: pairs with a segment, the strongest heuristic scores")
    for split in ("train", "val", "test"):
        found = sorted(
            (m["score"] for q in truth["queries"] if q["split"] == split and never_copied(q)
             for m in truth["records"][q["query_id"]] if m["segments"]), reverse=True,
        )  # fmt: skip
        strong, top = sum(s >= 0.6 for s in found), [round(s, 3) for s in found[:3]]
        print(f"  {split}: {len(found)} pairs, {strong} at 0.6 or more, top {top}")
    if args.probe:
        query, ref = args.probe.split(":")
        row = int(np.flatnonzero((p.query_ids[p.query] == query) & (p.ref_ids == ref))[0])
        b = make_batch(p, np.array([row]))
        maps, mask, side = b.maps.numpy(), b.mask.numpy(), b.side.numpy()
        probability = lambda s: float(student.run_student(maps, mask, s)["PROBABILITY"][0])  # noqa: E731
        print(f"\n{query} x {ref}: heuristic {heuristic[(query, ref)]:.3f}, "
              f"student {probability(side):.6f}")  # fmt: skip
        if args.teacher:
            print(f"  teacher {np.load(args.teacher)['probability'][row]:.6f}")
        for k, name in enumerate(SIDE_FEATURES):
            probed = [probability(np.where(np.arange(side.shape[1]) == k, v, side).astype(
                np.float32)) for v in (0.0, 0.5, 1.0)]  # fmt: skip
            print(f"  {name} at 0, 0.5, 1: at most {max(probed):.6f}")


if __name__ == "__main__":
    main()
