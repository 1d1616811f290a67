"""Benchmark metrics against hand-computed cases (the arithmetic is in the comments)."""

import pytest

from rci.bench.metrics import (
    SegmentMatch,
    box_iou,
    decision_scores,
    intersection_length,
    micro_average_precision,
    segment_average_precision,
    union_length,
    vcsl_f_score,
    vcsl_precision_recall,
)


def seg(q0, q1, r0, r1, score=1.0, query="q", ref="r"):
    return SegmentMatch(query, ref, q0, q1, r0, r1, score)


def test_union_and_intersection_lengths():
    # [0,2) u [1,3) = [0,3) -> 3, plus [5,6) -> 4.
    assert union_length([(0, 2), (1, 3), (5, 6)]) == 4
    assert union_length([]) == 0
    # [0,4) n [2,6) = [2,4) -> 2.
    assert intersection_length([(0, 4)], [(2, 6)]) == 2
    assert intersection_length([(0, 1)], [(2, 3)]) == 0


def test_micro_average_precision():
    truth = {("q1", "r1"), ("q2", "r2")}
    # Ranks: hit (P 1/1), miss, hit (P 2/3) -> (1 + 2/3) / 2 = 0.8333.
    scores = {("q1", "r1"): 0.9, ("q1", "r2"): 0.8, ("q2", "r2"): 0.7}
    assert micro_average_precision(truth, scores) == pytest.approx(5 / 6)
    assert micro_average_precision(truth, {("q1", "r1"): 0.2, ("q2", "r2"): 0.1}) == 1.0
    # A true pair never scored is missed: (1/1) / 2.
    assert micro_average_precision(truth, {("q1", "r1"): 0.5}) == 0.5
    # Ranked last behind two false pairs: (1/3 + 2/4) / 2.
    worst = {("a", "b"): 0.9, ("c", "d"): 0.8, ("q1", "r1"): 0.2, ("q2", "r2"): 0.1}
    assert micro_average_precision(truth, worst) == pytest.approx((1 / 3 + 2 / 4) / 2)
    with pytest.raises(ValueError):
        micro_average_precision(set(), scores)


def test_vcsl_pair_precision_recall():
    truth = [seg(0, 10, 0, 10)]
    # Half of the truth, exactly: precision 1 per axis; recall 5/10 per axis -> 0.25.
    assert vcsl_precision_recall([seg(0, 5, 0, 5)], truth) == pytest.approx((1.0, 0.25))
    # Shifted by 5 on both axes: overlap 5 of 10 on each -> (0.25, 0.25).
    assert vcsl_precision_recall([seg(5, 15, 5, 15)], truth) == pytest.approx((0.25, 0.25))
    # Right on the query axis, wrong on the reference axis: no 2-D overlap -> (0, 0).
    assert vcsl_precision_recall([seg(0, 10, 20, 30)], truth) == (0.0, 0.0)
    assert vcsl_precision_recall([seg(0, 10, 0, 10)], truth) == (1.0, 1.0)
    assert vcsl_precision_recall([], []) == (1.0, 1.0)
    assert vcsl_precision_recall([seg(0, 1, 0, 1)], []) == (0.0, 1.0)
    assert vcsl_precision_recall([], truth) == (1.0, 0.0)


def test_vcsl_f_score_macro_averages_queries():
    truth = [seg(0, 10, 0, 10, query="q1")]
    predicted = [seg(0, 10, 0, 10, query="q1"), seg(0, 5, 0, 5, query="q2")]
    # q1 perfect (1, 1); q2 predicted without truth (0, 1): P = 0.5, R = 1, F = 2/3.
    p, r, f = vcsl_f_score(predicted, truth, [("q1", "r"), ("q2", "r")])
    assert (p, r, f) == pytest.approx((0.5, 1.0, 2 / 3))


def test_segment_average_precision():
    truth = [seg(0, 10, 0, 10)]
    good, bad = seg(0, 10, 0, 10, score=0.9), seg(20, 30, 20, 30, score=0.5)
    assert segment_average_precision(truth, [good]) == pytest.approx(1.0)
    # A false segment ranked below the true one adds no recall: AP stays 1.
    assert segment_average_precision(truth, [good, bad]) == pytest.approx(1.0)
    # Ranked above it: R = 0 after it; then R = 1 at P = sqrt(10/20 * 10/20) = 0.5.
    worse = seg(20, 30, 20, 30, score=0.95)
    assert segment_average_precision(truth, [good, worse]) == pytest.approx(0.5)
    # Half the segment: R = sqrt(0.5 * 0.5) = 0.5 at P = 1.
    assert segment_average_precision(truth, [seg(0, 5, 0, 5)]) == pytest.approx(0.5)
    # Another pair's prediction never covers this pair's truth.
    other = seg(0, 10, 0, 10, query="other")
    assert segment_average_precision(truth, [other]) == 0.0


def test_decision_scores():
    # truth {a, b}, decided {a, c}: one hit -> P 1/2, R 1/2, F1 1/2.
    assert decision_scores({("a", "x"), ("b", "x")}, {("a", "x"), ("c", "x")}) == (0.5, 0.5, 0.5)
    assert decision_scores({("a", "x")}, set()) == (1.0, 0.0, 0.0)


def test_box_iou():
    # (0,0)-(2,2) vs (1,1)-(3,3): intersection 1, union 4 + 4 - 1 = 7.
    assert box_iou((0, 0, 2, 2), (1, 1, 3, 3)) == pytest.approx(1 / 7)
    assert box_iou((0, 0, 1, 1), (0, 0, 1, 1)) == 1.0
    assert box_iou((0, 0, 1, 1), (2, 2, 3, 3)) == 0.0


def test_segment_rejects_reversed_bounds():
    with pytest.raises(ValueError):
        seg(5, 4, 0, 1)
