"""Benchmark metrics: video-level uAP, segment-level VCSL P/R/F and VSC segment AP, decisions.

Definitions follow the Meta Video Similarity Challenge (descriptor and matching tracks) and
the VCSL benchmark; implemented here from their published definitions, in seconds.
"""

from __future__ import annotations

import itertools
import math
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from rci.match.intervals import Interval, intersection_length, union_length

Pair = tuple[str, str]  # (query id, reference id)


def match_records(matches) -> list[dict]:
    """Matches (served, or in process: rci.match.verdict.Match, decided by
    rci.match.matchlite.decide) in the runner format: the score is the heuristic's, which
    ranks pairs for pair uAP; the decision is the verdict's (MatchLite's by default), with
    its probability and copied fraction beside (None where no scorer ran)."""
    return [
        {
            "ref_id": m.video_id,
            "score": m.score,
            "probability": m.probability,
            "copied_fraction": m.copied_fraction,
            "reproduced": m.reproduced,
            "segments": [s.as_row() for s in m.segments],
            "visual_score": m.visual_score,
            "audio_score": m.audio_score,
            "audio_reuse": m.audio_reuse,
            "modalities": [s.modality for s in m.segments],
        }
        for m in matches
    ]


@dataclass(frozen=True)
class SegmentMatch:
    """A copied segment of one pair: query [query_start, query_end) s shows reference
    [ref_start, ref_end) s. Ground truth has score 1."""

    query_id: str
    ref_id: str
    query_start: float
    query_end: float
    ref_start: float
    ref_end: float
    score: float = 1.0

    def __post_init__(self) -> None:
        if self.query_end < self.query_start or self.ref_end < self.ref_start:
            raise ValueError(f"segment ends before it starts: {self}")

    @property
    def pair(self) -> Pair:
        return (self.query_id, self.ref_id)

    def interval(self, axis: str) -> Interval:
        """The segment's span on axis 'query' or 'ref'."""
        if axis == "query":
            return (self.query_start, self.query_end)
        return (self.ref_start, self.ref_end)


AXES = ("query", "ref")


def micro_average_precision(truth: set[Pair], scores: Mapping[Pair, float]) -> float:
    """VSC descriptor-track uAP: one score per (query, reference) pair, ranked globally.

    uAP = sum over ranks k of precision@k * [pair k is true] / |truth|; pairs never scored
    count as missed. Ties keep the order of `scores`.
    """
    if not truth:
        raise ValueError("micro-AP needs at least one true pair")
    ranked = sorted(scores.items(), key=lambda item: -item[1])
    hits, total = 0, 0.0
    for k, (pair, _) in enumerate(ranked, start=1):
        if pair in truth:
            hits += 1
            total += hits / k
    return total / len(truth)


def _axis_overlap(boxes: list[SegmentMatch], others: list[SegmentMatch], axis: str) -> float:
    """Sum over `boxes` of the union length of their intersections, on one axis, with the
    `others` they overlap in 2-D (the VCSL rule)."""
    total = 0.0
    for box in boxes:
        pieces = []
        for other in others:
            q = min(box.query_end, other.query_end) - max(box.query_start, other.query_start)
            r = min(box.ref_end, other.ref_end) - max(box.ref_start, other.ref_start)
            if q > 0 and r > 0:
                lo = max(box.interval(axis)[0], other.interval(axis)[0])
                hi = min(box.interval(axis)[1], other.interval(axis)[1])
                pieces.append((lo, hi))
        total += union_length(pieces)
    return total


def vcsl_precision_recall(
    predicted: list[SegmentMatch], truth: list[SegmentMatch]
) -> tuple[float, float]:
    """VCSL segment precision and recall of one video pair.

    Per axis, precision = overlap of each prediction with the truth it touches / total
    predicted length, recall likewise against the truth's length; the pair's value is the
    product over the query and reference axes. No prediction and no truth: (1, 1);
    predictions without truth: (0, 1); truth without prediction: (1, 0).
    """
    if not predicted and not truth:
        return 1.0, 1.0
    if not truth:
        return 0.0, 1.0
    if not predicted:
        return 1.0, 0.0
    precision = recall = 1.0
    for axis in AXES:
        pred_len = sum(b.interval(axis)[1] - b.interval(axis)[0] for b in predicted)
        true_len = sum(b.interval(axis)[1] - b.interval(axis)[0] for b in truth)
        precision *= _axis_overlap(predicted, truth, axis) / pred_len if pred_len else 0.0
        recall *= _axis_overlap(truth, predicted, axis) / true_len if true_len else 0.0
    return precision, recall


def vcsl_f_score(
    predicted: list[SegmentMatch], truth: list[SegmentMatch], pairs: Iterable[Pair]
) -> tuple[float, float, float]:
    """VCSL (precision, recall, F) over `pairs`: per-pair values averaged within each query,
    then over queries (macro), F = 2PR / (P + R)."""
    by_pair_pred, by_pair_true = defaultdict(list), defaultdict(list)
    for seg in predicted:
        by_pair_pred[seg.pair].append(seg)
    for seg in truth:
        by_pair_true[seg.pair].append(seg)
    per_query: dict[str, list[tuple[float, float]]] = defaultdict(list)
    for pair in pairs:
        per_query[pair[0]].append(vcsl_precision_recall(by_pair_pred[pair], by_pair_true[pair]))
    if not per_query:
        raise ValueError("VCSL F needs at least one pair")
    # Mean within each query, then over queries.
    p_means = [sum(p for p, _ in values) / len(values) for values in per_query.values()]
    r_means = [sum(r for _, r in values) / len(values) for values in per_query.values()]
    precision = sum(p_means) / len(p_means)
    recall = sum(r_means) / len(r_means)
    f = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return precision, recall, f


def segment_average_precision(truth: list[SegmentMatch], predicted: list[SegmentMatch]) -> float:
    """VSC matching-track segment AP.

    Predictions are taken in falling score order (equal scores as one step). After each
    step, per axis: recall = covered truth length / total truth length and precision =
    covered truth length / predicted length (unions per pair; truth a pair's predictions
    never touch counts only in the total). P = sqrt(P_q P_r), R = sqrt(R_q R_r), and
    AP = sum of P * (increase of R).
    """
    if not truth:
        raise ValueError("segment AP needs at least one true segment")
    true_by_pair: dict[Pair, list[SegmentMatch]] = defaultdict(list)
    for seg in truth:
        true_by_pair[seg.pair].append(seg)
    true_total = {
        axis: sum(union_length(s.interval(axis) for s in segs) for segs in true_by_pair.values())
        for axis in AXES
    }
    seen: dict[Pair, list[SegmentMatch]] = defaultdict(list)
    covered = {axis: defaultdict(float) for axis in AXES}
    spent = {axis: defaultdict(float) for axis in AXES}
    ap, recall = 0.0, 0.0
    ordered = sorted(predicted, key=lambda s: -s.score)
    for _, group in itertools.groupby(ordered, key=lambda s: s.score):
        for seg in group:
            seen[seg.pair].append(seg)
            preds = seen[seg.pair]
            touched = [t for t in true_by_pair[seg.pair] if any(_overlap_2d(t, p) for p in preds)]
            for axis in AXES:
                mine = [p.interval(axis) for p in preds]
                covered[axis][seg.pair] = intersection_length(
                    mine, [t.interval(axis) for t in touched]
                )
                spent[axis][seg.pair] = union_length(mine)
        r = {a: sum(covered[a].values()) / true_total[a] for a in AXES}
        p = {a: sum(covered[a].values()) / max(sum(spent[a].values()), 1e-12) for a in AXES}
        new_recall = math.sqrt(r["query"] * r["ref"])
        ap += math.sqrt(p["query"] * p["ref"]) * (new_recall - recall)
        recall = new_recall
    return ap


def _overlap_2d(a: SegmentMatch, b: SegmentMatch) -> bool:
    q = min(a.query_end, b.query_end) - max(a.query_start, b.query_start)
    r = min(a.ref_end, b.ref_end) - max(a.ref_start, b.ref_start)
    return q > 0 and r > 0


def decision_scores(truth: set[Pair], decided: set[Pair]) -> tuple[float, float, float]:
    """(precision, recall, F1) of the pairs decided 'reproduced' against the true pairs.

    Empty sets count as perfect on their side: no decisions gives precision 1.
    """
    hits = len(truth & decided)
    precision = hits / len(decided) if decided else 1.0
    recall = hits / len(truth) if truth else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return precision, recall, f1


def box_iou(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    """Intersection over union of two [x0, y0, x1, y1] boxes (any consistent unit)."""
    w = min(a[2], b[2]) - max(a[0], b[0])
    h = min(a[3], b[3]) - max(a[1], b[1])
    inter = max(0.0, w) * max(0.0, h)
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0
