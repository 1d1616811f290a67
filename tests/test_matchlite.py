"""The shipped MatchLite student (rci/match/matchlite.onnx) as the server runs it:
its card, its verdicts, and the pairs it refuses."""

import hashlib
import re

import numpy as np
import pytest

from rci.errors import DescriptorMismatchError, RciError
from rci.match.matchlite import CARD_PATH, MODEL_PATH, MatchLite, Verdict
from rci.match.pair_input import CHANNELS, MAX_SIDE, SIDE_FEATURES

SEGMENTS = SIDE_FEATURES.index("segments")


@pytest.fixture(scope="module")
def scorer():
    return MatchLite()


def pairs(n=2, h=20, w=10, copied=(True, False)):
    """n pairs: a copy (a bright diagonal on the visual and path maps, the heuristic's score
    0.9, one segment covering half the query) and a stranger (noise, score 0.1)."""
    rng = np.random.default_rng(0)
    maps = rng.uniform(-0.05, 0.2, (n, len(CHANNELS), h, w)).astype(np.float32)
    maps[:, 1] = 0.0  # no sound
    maps[:, 2] = 0.0
    side = np.zeros((n, len(SIDE_FEATURES)), np.float32)
    for k, c in enumerate(copied[:n]):
        side[k, SIDE_FEATURES.index("query_minutes")] = np.log1p(h / 60)
        side[k, SIDE_FEATURES.index("ref_minutes")] = np.log1p(2 * w / 60)
        if c:
            d = np.arange(min(h, w))
            maps[k, 0, d, d], maps[k, 2, d, d] = 0.95, 1.0
            for name, value in (("score", 0.95), ("visual_score", 0.95), ("segments", 1 / 8),
                                ("query_covered", 0.5), ("ref_covered", 1.0)):  # fmt: skip
                side[k, SIDE_FEATURES.index(name)] = value
        else:
            side[k, SIDE_FEATURES.index("score")] = 0.1
    return maps, np.ones((n, 1, h, w), np.float32), side


def test_the_card_names_the_shipped_file_and_it_is_small():
    data = MODEL_PATH.read_bytes()
    assert len(data) <= 2 * 1024 * 1024
    card = CARD_PATH.read_text()
    assert hashlib.sha256(data).hexdigest() in re.findall(r"[0-9a-f]{64}", card)
    assert "rci-matchlite train" in card and "seed" in card


def test_a_copy_scores_high_and_a_stranger_low(scorer):
    maps, mask, side = pairs()
    heuristic = np.array([True, False])
    out = scorer.score(maps, mask, side, scorer.descriptor, [Verdict.MATCHLITE] * 2, heuristic)
    assert out.probability[0] > scorer.threshold > out.probability[1]
    assert out.reproduced.tolist() == [True, False]
    assert 0.0 <= out.fraction.min() and out.fraction.max() <= 1.0


def test_the_heuristic_verdict_passes_the_rule_through(scorer):
    maps, mask, side = pairs()
    rule = np.array([False, True])  # the opposite of the student, to tell them apart
    out = scorer.score(maps, mask, side, scorer.descriptor, [Verdict.HEURISTIC] * 2, rule)
    assert out.reproduced.tolist() == [False, True]
    mixed = scorer.score(maps, mask, side, scorer.descriptor,
                         [Verdict.MATCHLITE, Verdict.HEURISTIC], rule)  # fmt: skip
    assert mixed.reproduced.tolist() == [True, True]


def test_a_pair_without_a_segment_is_decided_only_at_the_models_own_cut():
    scorer = MatchLite()  # its own, since the cut is changed below
    maps, mask, side = pairs(1)
    side[0, SEGMENTS] = 0.0
    rule = np.array([True])

    def decided(cut: float) -> tuple[bool, float]:
        scorer.unaligned_threshold = cut
        out = scorer.score(maps, mask, side, scorer.descriptor, [Verdict.MATCHLITE], rule)
        assert np.isfinite(out.probability[0])
        return bool(out.reproduced[0]), float(out.probability[0])

    never, p = decided(float("inf"))  # a model without rci.unaligned_threshold
    assert not never and p > scorer.threshold  # an aligned pair would have been reproduced
    assert decided(p)[0] and not decided(np.nextafter(p, 2.0))[0]


def test_one_frame_pairs_silent_pairs_and_no_pairs_get_answers(scorer):
    for h, w in ((1, 1), (1, 7), (7, 1)):
        maps, mask, side = pairs(2, h, w)
        out = scorer.score(maps, mask, side, scorer.descriptor, [Verdict.MATCHLITE] * 2,
                           np.zeros(2, bool))  # fmt: skip
        assert np.isfinite(out.probability).all() and out.probability.shape == (2,)
    maps, mask, side = pairs(0)
    out = scorer.score(maps, mask, side, scorer.descriptor, [], np.zeros(0, bool))
    assert out.probability.shape == (0,) and out.reproduced.shape == (0,)


def test_padding_does_not_change_a_pair_score(scorer):
    maps, mask, side = pairs(1, 12, 8)
    none = np.zeros(1, bool)
    alone = scorer.score(maps, mask, side, scorer.descriptor, [Verdict.MATCHLITE], none)
    big = np.zeros((1, len(CHANNELS), 40, 30), np.float32)
    big[:, :, :12, :8] = maps
    big_mask = np.zeros((1, 1, 40, 30), np.float32)
    big_mask[:, :, :12, :8] = 1.0
    padded = scorer.score(big, big_mask, side, scorer.descriptor, [Verdict.MATCHLITE],
                          np.zeros(1, bool))  # fmt: skip
    assert padded.probability[0] == pytest.approx(alone.probability[0], abs=1e-5)


def test_pairs_of_another_descriptor_are_refused_unless_the_rule_decides(scorer):
    maps, mask, side = pairs()
    with pytest.raises(DescriptorMismatchError, match="sscd_mobilenetv4"):
        scorer.score(maps, mask, side, "sscd_mobilenetv4", [Verdict.MATCHLITE, Verdict.HEURISTIC],
                     np.zeros(2, bool))  # fmt: skip
    rule = np.array([False, True])
    out = scorer.score(maps, mask, side, "sscd_mobilenetv4", [Verdict.HEURISTIC] * 2, rule)
    assert out.reproduced.tolist() == [False, True] and np.isnan(out.probability).all()


@pytest.mark.parametrize(
    "change, expected",
    [
        (lambda m, k, s: (m[:, :2], k, s), "PAIR_MAPS must be"),
        (lambda m, k, s: (m.astype(np.float64), k, s), "PAIR_MAPS must be"),
        (lambda m, k, s: (m, k[:, :, :3], s), "PAIR_MASK must be"),
        (lambda m, k, s: (m, k * 0.5, s), "PAIR_MASK must hold 0 and 1"),
        (lambda m, k, s: (m, k, s[:, :5]), "PAIR_SIDE must be"),
        (lambda m, k, s: (m * np.nan, k, s), "finite"),
        (lambda m, k, s: (m[:, :, :0], k[:, :, :0], s), "a cell on each side"),
        (lambda m, k, s: (m, k, s * np.inf), "finite"),
        (
            lambda m, k, s: (
                np.zeros((2, 3, MAX_SIDE + 1, 2), np.float32),
                np.ones((2, 1, MAX_SIDE + 1, 2), np.float32),
                s,
            ),
            "grids up to",
        ),  # fmt: skip
    ],
)
def test_bad_pairs_are_refused(scorer, change, expected):
    maps, mask, side = change(*pairs())
    with pytest.raises(RciError, match=expected):
        scorer.score(maps, mask, side, scorer.descriptor, [Verdict.MATCHLITE] * 2,
                     np.zeros(2, bool))  # fmt: skip


def test_unknown_verdicts_are_named():
    with pytest.raises(RciError, match="unknown verdict 'best'; known: matchlite, heuristic"):
        Verdict.parse("best")
