"""MatchLite's report: each scorer's pair scores turned into the benchmark's predictions
(segments from the served alignment, the scorer's score and decision) and scored as
`rci-bench run` scores them, with each decision threshold chosen on val."""

from __future__ import annotations

import numpy as np

from rci.bench.metrics import decision_scores
from rci.bench.run import score

LEARNED = ("teacher", "student", "student_distilled")
# Each learned scorer twice: deciding only pairs with an aligned segment, and deciding the
# pairs without one too, at a second cut chosen on val (choose_unaligned).
SYSTEMS = ("heuristic_served", "heuristic") + tuple(
    n for name in LEARNED for n in (name, f"{name}_unaligned")
)
LABELS = {
    "heuristic_served": "heuristic at its served cut (0.5)",
    "heuristic": "heuristic (normalization, chrome suppression; cut on val)",
    "teacher": "teacher",
    "student": "student, hard labels only",
    "student_distilled": "student, distilled (MatchLite)",
}
LABELS |= {f"{n}_unaligned": f"{LABELS[n]}, deciding pairs without a segment" for n in LEARNED}
NEVER = float("inf")  # the cut of a scorer that never decides a pair without a segment
COLUMNS = ("decision_f1", "pair_uap", "vcsl_f", "decision_precision", "decision_recall")


def predictions(
    records: dict[str, list[dict]],
    queries: list[dict],
    scores: dict[tuple[str, str], float] | None,
    threshold: float,
    unaligned: float = NEVER,
) -> list[dict]:
    """Prediction records of `queries` (runner format): each match scored by `scores`
    ((query id, video id) -> score; a pair missing scores 0) or, for None, by its own
    heuristic score; reproduced from `threshold` where it has a segment, from `unaligned`
    where it has none (as served: rci.match.matchlite)."""
    out = []
    for q in queries:
        matches = []
        for m in records[q["query_id"]]:
            s = m["score"] if scores is None else scores.get((q["query_id"], m["ref_id"]), 0.0)
            decided = s >= (threshold if m["segments"] else unaligned)
            matches.append({**m, "score": float(s), "reproduced": bool(decided)})
        out.append({"query_id": q["query_id"], "matches": matches, "box_iou": None})
    return out


def choose_threshold(
    records: dict[str, list[dict]],
    queries: list[dict],
    scores: dict[tuple[str, str], float] | None,
) -> float:
    """The threshold of best decision F1 over `queries` (the val split): the middle of the
    widest run of thresholds that reach it."""
    values = sorted(
        {
            m["score"] if scores is None else scores.get((q["query_id"], m["ref_id"]), 0.0)
            for q in queries
            for m in records[q["query_id"]]
        }
    )
    if not values:
        return 0.5
    # Thresholds between consecutive scores decide alike; try each gap's middle.
    middles = [(a + b) / 2 for a, b in zip(values[:-1], values[1:], strict=True)]
    cuts = [values[0] - 1e-3, *middles, values[-1] + 1e-3]
    # Decision F1 alone (score()'s, without its segment metrics: hundreds of cuts are tried).
    truth = {(q["query_id"], t["ref_id"]) for q in queries for t in q["truth"]}
    scored = [
        ((q["query_id"], m["ref_id"]), s, bool(m["segments"]))
        for q in queries
        for m in records[q["query_id"]]
        for s in [m["score"] if scores is None else scores.get((q["query_id"], m["ref_id"]), 0.0)]
    ]
    f1 = [
        decision_scores(truth, {pair for pair, s, seg in scored if s >= c and seg})[2] for c in cuts
    ]
    best = max(f1)
    runs, start = [], None
    for n, value in enumerate(f1 + [-1.0]):
        if value == best and start is None:
            start = n
        elif value != best and start is not None:
            runs.append((start, n - 1))
            start = None
    a, b = max(runs, key=lambda r: (cuts[r[1]] - cuts[r[0]], -r[0]))
    return float((cuts[a] + cuts[b]) / 2)


def choose_unaligned(
    records: dict[str, list[dict]],
    queries: list[dict],
    scores: dict[tuple[str, str], float],
    threshold: float,
) -> float:
    """The cut for pairs without a segment, on `queries` (the val split). Such a pair shows
    a reviewer no copied span, so the scorer alone must make no mistake there: the middle
    of the gap above the highest-scoring such pair that copies nothing (and above
    `threshold`), up to the next that copies; NEVER where no copy scores above it."""
    truth = {(q["query_id"], t["ref_id"]) for q in queries for t in q["truth"]}
    unaligned = [
        ((q["query_id"], m["ref_id"]), scores.get((q["query_id"], m["ref_id"]), 0.0))
        for q in queries
        for m in records[q["query_id"]]
        if not m["segments"]
    ]
    floor = max([threshold] + [s for pair, s in unaligned if pair not in truth])
    above = [s for pair, s in unaligned if pair in truth and s > floor]
    return float((floor + min(above)) / 2) if above else NEVER


def false_positives(queries: list[dict], preds: list[dict], copies_nothing) -> int:
    """Pairs reported reproduced by the queries `copies_nothing(query)` picks."""
    return sum(
        m["reproduced"]
        for q, p in zip(queries, preds, strict=True)
        if copies_nothing(q)
        for m in p["matches"]
    )


def near_miss(query: dict) -> bool:
    return query.get("kind") == "near_miss"


def never_copied(query: dict) -> bool:
    """A composed query made of never-copied library videos (rci.train.pairs)."""
    return query.get("recipe", "").startswith("never-copied")


PARTS = {
    "real": lambda q: q["kind"] != "composed",
    "composed": lambda q: q["kind"] == "composed",
    # The composed queries whose pictures were obscured (rci.train.pairs.obscured).
    "obscured": lambda q: "obscured" in q.get("recipe", ""),
}


def evaluate(
    records: dict[str, list[dict]],
    queries: list[dict],
    scores: dict[tuple[str, str], float] | None,
    threshold: float | None = None,
    decide_unaligned: bool = False,
) -> dict:
    """Metrics of val and test, real queries, composed ones and obscured ones apart, at
    `threshold` (None: chosen on val). With `decide_unaligned`, a learned scorer (`scores`
    given) also decides the pairs without a segment, at a cut chosen on val
    (choose_unaligned; served where the model carries it: rci.match.matchlite)."""
    val = [q for q in queries if q["split"] == "val"]
    if threshold is None:
        threshold = choose_threshold(records, val, scores)
    unaligned = NEVER
    if decide_unaligned and scores is not None:
        unaligned = choose_unaligned(records, val, scores, threshold)
    # JSON has no infinity: None stands for "never".
    out = {"threshold": threshold, "unaligned_threshold": None if unaligned == NEVER else unaligned}
    for split in ("val", "test"):
        for part, belongs in PARTS.items():
            chosen = [q for q in queries if q["split"] == split and belongs(q)]
            if not chosen:
                continue
            preds = predictions(records, chosen, scores, threshold, unaligned)
            row = {k: v for k, v in score(chosen, preds).items() if k in COLUMNS}
            row["near_miss_false_positives"] = false_positives(chosen, preds, near_miss)
            if part != "real":  # real queries are never made of never-copied videos
                row["never_copied_false_positives"] = false_positives(chosen, preds, never_copied)
            row["queries"] = len(chosen)
            out[f"{split} {part}"] = row
    return out


def pair_scores(query_ids, query, ref_ids, values: np.ndarray, rows: np.ndarray) -> dict:
    """{(query id, video id): value} of pairs `rows`."""
    return {(str(query_ids[query[r]]), str(ref_ids[r])): float(values[r]) for r in rows}


def markdown(report: dict) -> str:
    """The report's tables: each system on test (real queries, then composed), then cost."""
    lines = []
    for part in [f"{s} {p}" for s in ("test", "val") for p in PARTS]:
        if not any(part in r for r in report["systems"].values()):
            continue
        lines += [
            f"\n{part}\n",
            "| scorer | cut (with / without a segment) | F1 | pair uAP | VCSL F | P | R "
            "| near-miss FP | never-copied FP |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for name in SYSTEMS:
            r = report["systems"].get(name)
            if r is None or part not in r:
                continue
            row = r[part]
            cells = [f"{row.get(c, float('nan')):.3f}" for c in COLUMNS]
            cut = f"{r['threshold']:.3f}"
            if name.endswith("_unaligned"):
                without = r.get("unaligned_threshold")
                cut += " / " + ("never" if without is None else f"{without:.3f}")
            lines.append(
                f"| {LABELS[name]} | {cut} | "
                + " | ".join(cells)
                + f" | {row['near_miss_false_positives']}"
                + f" | {row.get('never_copied_false_positives', '-')} |"
            )
    cost = report.get("cost")
    if cost:
        lines += [
            "\n| model | parameters | FLOPs per pair (60 x 30 grid) | ms per pair (15 pairs) |",
            "|---|---|---|---|",
        ]
        for name, c in cost.items():
            ms = f"{c['ms_per_pair']:.3f}" if c.get("ms_per_pair") is not None else "-"
            lines.append(f"| {name} | {c['parameters']:,} | {c['flops']:,.0f} | {ms} |")
        if "flops_ratio" in report:
            lines.append(f"\nteacher / student FLOPs: {report['flops_ratio']:.1f}x")
    return "\n".join(lines)


def model_card(report: dict) -> str:
    """The shipped student's card: what it is, how it was made, its figures, its sha256."""
    meta = report["pairs_meta"]
    bench = meta["bench"]
    composed = ", ".join(f"{n} {s}" for s, n in meta["composed"].items())
    seconds = ", ".join(f"{k} {v:.0f} s" for k, v in report["seconds"].items())
    return f"""# MatchLite student (matchlite.onnx)

The learned pair scorer of rci_detect (docs/matchlite.md; it decides `REPRODUCED` where
the verdict is "matchlite"). Inputs
MAPS (N, 3, H, W), MASK (N, 1, H, W), SIDE (N, 12) float32 (rci/match/pair_input.py);
outputs PROBABILITY (N,), FRACTION (N,), KINDS (N, 18). Metadata: `rci.descriptor`
{meta["descriptor"]}, `rci.threshold` {report["systems"]["student_distilled"]["threshold"]:.6f}
(chosen on val), `rci.unaligned_threshold` {report.get("unaligned_threshold")} (the cut for
pairs alignment placed no segment on, chosen on val; None: such pairs are never reproduced).

- sha256: `{report["sha256"]}` ({report["onnx_bytes"]:,} bytes)
- Made by, from a clean checkout with the train extra (`make install-train`):

      rci-bench build --full --seed {bench["seed"]} --out .rci/bench-full
      rci-bench run --out .rci/bench-full          # leaves the served library
      rci-bench replay --out .rci/bench-full       # caches every query's features
      rci-matchlite pairs --bench .rci/bench-full --seed {meta["seed"]}
      rci-matchlite train --seed {report["seed"]} --student-epochs {report["epochs"]["student"]} \\
          --teacher-epochs {report["epochs"]["teacher"]} --threads {report["threads"]}
      rci-matchlite ship

- Benchmark build: version {bench["version"]}, mode {bench["mode"]}, seed {bench["seed"]}; pairs
  from its train split only (real queries and {composed} composed queries); thresholds on
  val; figures below on test.
- Teacher and student trained on CPU (2 threads): {seconds}.
- Export check: largest |onnxruntime - torch| probability {report["export_max_difference"]:.2e}.

{markdown(report)}
"""
