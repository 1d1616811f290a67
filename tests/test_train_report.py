"""MatchLite's report (rci.train.report): how a scorer's pair scores become decisions, and
the cut for pairs alignment placed no segment on."""

import pytest

from rci.train.report import NEVER, choose_unaligned, evaluate, predictions

SEGMENT = [[0.0, 10.0, 0.0, 10.0, 0.9]]


def split(name: str) -> tuple[dict, list[dict]]:
    """Records and queries of one split: an aligned copy, an unaligned copy, an unaligned
    stranger and an aligned stranger."""
    q = f"{name}-q"
    truth = [{"ref_id": r, "query_start": 0.0, "query_end": 10.0, "ref_start": 0.0,
              "ref_end": 10.0, "content_box": None} for r in ("A", "B")]  # fmt: skip
    matches = [
        {"ref_id": "A", "score": 0.9, "segments": SEGMENT},
        {"ref_id": "B", "score": 0.0, "segments": []},
        {"ref_id": "C", "score": 0.0, "segments": []},
        {"ref_id": "D", "score": 0.2, "segments": SEGMENT},
    ]
    return {q: matches}, [{"query_id": q, "split": name, "kind": "composed", "truth": truth}]


def scores_of(name: str, a=0.95, b=0.9, c=0.6, d=0.1) -> dict:
    q = f"{name}-q"
    return {(q, "A"): a, (q, "B"): b, (q, "C"): c, (q, "D"): d}


def test_the_unaligned_cut_clears_every_val_stranger_without_a_segment():
    records, queries = split("val")
    assert choose_unaligned(records, queries, scores_of("val"), 0.5) == 0.75
    # Never below the cut of aligned pairs, and never where no copy scores above a stranger.
    assert choose_unaligned(records, queries, scores_of("val", c=0.1), 0.8) == pytest.approx(0.85)
    assert choose_unaligned(records, queries, scores_of("val", b=0.5), 0.5) == NEVER


def test_a_pair_without_a_segment_is_decided_only_at_its_own_cut():
    records, queries = split("test")
    scores = scores_of("test")
    decided = lambda unaligned: [  # noqa: E731
        m["reproduced"] for m in predictions(records, queries, scores, 0.5, unaligned)[0]["matches"]
    ]
    assert decided(NEVER) == [True, False, False, False]
    assert decided(0.75) == [True, True, False, False]
    assert decided(0.5) == [True, True, True, False]


def test_evaluate_decides_unaligned_pairs_only_when_asked_and_never_by_the_rule():
    val_records, val = split("val")
    test_records, test = split("test")
    records, queries = {**val_records, **test_records}, val + test
    scores = {**scores_of("val"), **scores_of("test")}
    served = evaluate(records, queries, scores, 0.5)
    asked = evaluate(records, queries, scores, 0.5, decide_unaligned=True)
    rule = evaluate(records, queries, None, 0.5, decide_unaligned=True)
    assert served["unaligned_threshold"] is None and rule["unaligned_threshold"] is None
    assert asked["unaligned_threshold"] == 0.75
    assert served["test composed"]["decision_recall"] == 0.5
    assert asked["test composed"]["decision_recall"] == 1.0
    assert asked["test composed"]["decision_precision"] == 1.0
    assert rule["test composed"]["decision_recall"] == 0.5


def test_false_positives_are_counted_for_near_misses_and_never_copied_queries():
    records, queries = {}, []
    for split_name in ("val", "test"):
        for kind, recipe in (("near_miss", "real"), ("composed", "never-copied + silent")):
            q = f"{split_name}-{kind}"
            records[q] = [
                {"ref_id": "A", "score": 0.9, "segments": SEGMENT},
                {"ref_id": "B", "score": 0.1, "segments": SEGMENT},
            ]
            queries.append(
                {"query_id": q, "split": split_name, "kind": kind, "recipe": recipe, "truth": []}
            )
    row = evaluate(records, queries, None, 0.5)
    assert row["test real"]["near_miss_false_positives"] == 1
    assert "never_copied_false_positives" not in row["test real"]
    assert row["test composed"]["never_copied_false_positives"] == 1
    assert row["test composed"]["near_miss_false_positives"] == 0
