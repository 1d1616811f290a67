"""Temporal alignment on planted copies in seeded random unit vectors.

With D = 256, independent unit vectors have cosine ~ N(0, 1/256), std 0.0625, so a chance
similarity reaches AlignParams.min_similarity (0.35) only at 5.6 sigma: no chance nodes. A
copied frame is ref + noise of norm 0.2, renormalised: cosine 1 / sqrt(1 + 0.2**2) ~ 0.98.
Frames are sampled at 1 fps, so frame n is at n seconds and a segment ends one frame period
(1 s) after its last matched frame.
"""

from __future__ import annotations

import numpy as np
import pytest

from rci.errors import RciError
from rci.match.alignment import AlignParams, Segment, align
from rci.match.verdict import Match, match, match_candidates, pack_matches, unpack_matches
from rci.match.views import QueryViews, checked_views

D = 256


def unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=-1, keepdims=True)).astype(np.float32)


def random_video(rng: np.random.Generator, n: int) -> np.ndarray:
    return unit(rng.normal(size=(n, D)))


def copy_of(rng: np.random.Generator, frames: np.ndarray) -> np.ndarray:
    """frames + noise of norm 0.2, renormalised: cosine ~0.98 to the original."""
    return unit(frames + 0.2 * unit(rng.normal(size=frames.shape)))


def seconds(n: int) -> np.ndarray:
    return np.arange(n, dtype=np.float32)


def test_one_planted_copy_gives_one_segment() -> None:
    rng = np.random.default_rng(0)
    query, ref = random_video(rng, 40), random_video(rng, 60)
    query[10:20] = copy_of(rng, ref[30:40])
    segments = align(query, seconds(40), ref, seconds(60))
    # Query frames 10..19 match ref frames 30..39: query [10, 19 + 1) s, ref [30, 39 + 1) s.
    assert len(segments) == 1
    seg = segments[0]
    assert (seg.query_start, seg.query_end, seg.ref_start, seg.ref_end) == (10, 20, 30, 40)
    assert seg.matches == 10
    assert 0.95 < seg.score <= 1.0
    # The segment's score is the mean cosine of the matched (diagonal) pairs.
    expected = float(np.mean(np.sum(query[10:20] * ref[30:40], axis=1)))
    assert seg.score == pytest.approx(expected, abs=1e-5)


def test_match_reports_the_copy_as_reproduced() -> None:
    rng = np.random.default_rng(1)
    query, ref = random_video(rng, 40), random_video(rng, 60)
    query[10:20] = copy_of(rng, ref[30:40])
    result = match("ref-a", query, seconds(40), ref, seconds(60))
    assert result.video_id == "ref-a"
    assert result.reproduced
    assert result.score == result.segments[0].score
    assert result.score >= AlignParams().threshold


def test_two_planted_copies_give_two_segments_best_first() -> None:
    rng = np.random.default_rng(2)
    query, ref = random_video(rng, 40), random_video(rng, 60)
    query[5:11] = copy_of(rng, ref[40:46])  # 6 frames, offset +35 s
    query[25:35] = copy_of(rng, ref[5:15])  # 10 frames, offset -20 s
    segments = align(query, seconds(40), ref, seconds(60))
    bounds = [(s.query_start, s.query_end, s.ref_start, s.ref_end) for s in segments]
    # Ranked by score * matches: the 10-frame copy (~9.8) before the 6-frame one (~5.9).
    assert bounds == [(25, 35, 5, 15), (5, 11, 40, 46)]
    assert [s.matches for s in segments] == [10, 6]


def test_same_span_copied_twice_into_the_query_gives_two_segments() -> None:
    rng = np.random.default_rng(3)
    query, ref = random_video(rng, 40), random_video(rng, 30)
    query[2:8] = copy_of(rng, ref[10:16])
    query[25:31] = copy_of(rng, ref[10:16])
    segments = align(query, seconds(40), ref, seconds(30))
    bounds = sorted((s.query_start, s.query_end, s.ref_start, s.ref_end) for s in segments)
    assert bounds == [(2, 8, 10, 16), (25, 31, 10, 16)]


def test_no_copy_gives_no_segment() -> None:
    rng = np.random.default_rng(4)
    query, ref = random_video(rng, 40), random_video(rng, 60)
    assert (query @ ref.T).max() < AlignParams().min_similarity  # no node at all
    assert align(query, seconds(40), ref, seconds(60)) == []
    result = match("other", query, seconds(40), ref, seconds(60))
    assert result == Match(video_id="other", score=0.0, reproduced=False, segments=[])


def test_weak_copy_is_aligned_but_not_reproduced() -> None:
    # Noise of norm 1.5 gives cosine 1 / sqrt(1 + 1.5**2) ~ 0.55: above min_similarity
    # (0.35), so the copy aligns, but below a threshold of 0.7, so it is not reproduced.
    rng = np.random.default_rng(5)
    query, ref = random_video(rng, 30), random_video(rng, 30)
    query[5:15] = unit(ref[5:15] + 1.5 * unit(rng.normal(size=(10, D))))
    params = AlignParams(threshold=0.7)
    result = match("weak", query, seconds(30), ref, seconds(30), params)
    assert len(result.segments) == 1
    assert 0.45 < result.score < 0.65
    assert not result.reproduced


def test_speed_change_within_range_still_aligns() -> None:
    # Query frame i shows ref frame round(1.25 i): a 1.25x speed-up. Query 10..19 maps to
    # ref round(12.5) = 12 .. round(23.75) = 24: query [10, 20) s, ref [12, 25) s;
    # the true ref span is [12.5, 25) s, so the bounds are right within 1 s.
    rng = np.random.default_rng(6)
    query, ref = random_video(rng, 40), random_video(rng, 80)
    for i in range(10, 20):
        query[i] = copy_of(rng, ref[round(1.25 * i)][None])[0]
    segments = align(query, seconds(40), ref, seconds(80))
    assert len(segments) == 1
    seg = segments[0]
    assert seg.query_start == 10 and seg.query_end == 20
    assert abs(seg.ref_start - 12.5) <= 1 and abs(seg.ref_end - 25) <= 1
    assert seg.matches == 10


def test_speed_outside_range_is_not_one_segment() -> None:
    # Query frame i shows ref frame 3 i: slope 3 > max_speed 2.5, so no two matches link
    # and each lone match is below min_matches (2).
    rng = np.random.default_rng(7)
    query, ref = random_video(rng, 20), random_video(rng, 60)
    for i in range(5, 15):
        query[i] = copy_of(rng, ref[3 * i][None])[0]
    assert align(query, seconds(20), ref, seconds(60)) == []
    # The same planted matches link once the speed limit allows slope 3.
    segments = align(query, seconds(20), ref, seconds(60), AlignParams(max_speed=3.0))
    assert [(s.query_start, s.query_end, s.ref_start, s.ref_end) for s in segments] == [
        (5, 15, 15, 43)
    ]


def test_still_shot_copy_is_one_segment() -> None:
    # Ref 30..39 is one still frame; the query shows it for 10 s. Every query frame matches
    # every ref frame of the shot equally (a 10 x 10 block; node_k keeps 5 per query frame,
    # chosen by the noise), but the path's rectangle and its parallel diagonals take them
    # all: one segment inside query [10, 20) x ref [30, 40), not one per diagonal.
    rng = np.random.default_rng(8)
    query, ref = random_video(rng, 40), random_video(rng, 60)
    ref[30:40] = ref[30]
    query[10:20] = copy_of(rng, np.repeat(ref[30][None], 10, axis=0))
    segments = align(query, seconds(40), ref, seconds(60))
    assert len(segments) == 1
    seg = segments[0]
    assert 10 <= seg.query_start and seg.query_end <= 20
    assert 30 <= seg.ref_start and seg.ref_end <= 40
    assert seg.matches >= 5 and seg.score > 0.95


def test_copy_of_smooth_content_gives_no_parallel_duplicates() -> None:
    # Ref frames are 5-frame moving averages of random vectors, so frames d apart have
    # cosine (5 - d) / 5: 0.8, 0.6, 0.4. A copy of ref 30..39 then also matches the diagonals
    # at ref offsets +-1, +-2, +-3. The main path's rectangle [10, 19] x [30, 39] leaves two
    # 2-node chains of the +-2 diagonals outside it, (10, 28)-(11, 29) and (18, 40)-(19, 41),
    # mean cosine ~0.6: removing near-parallel diagonals is what keeps them from being
    # reported as two more copies.
    rng = np.random.default_rng(15)
    base = random_video(rng, 64)
    ref = unit(np.stack([base[max(0, t - 2) : t + 3].sum(axis=0) for t in range(60)]))
    assert float(ref[30] @ ref[32]) == pytest.approx(0.6, abs=0.1)
    query = random_video(rng, 40)
    query[10:20] = copy_of(rng, ref[30:40])
    segments = align(query, seconds(40), ref, seconds(60))
    assert [(s.query_start, s.query_end, s.ref_start, s.ref_end) for s in segments] == [
        (10, 20, 30, 40)
    ]


def test_a_shot_recurring_in_the_reference_is_not_a_second_copy() -> None:
    # The reference shows frames 30..34 again at 50..54 (a recurring shot). The query copies
    # 30..39: its frames 10..14 also match 50..54, a second path 20 s off the first, too far
    # to be a near-parallel diagonal. The same query moments cannot copy both: one segment.
    rng = np.random.default_rng(21)
    query, ref = random_video(rng, 40), random_video(rng, 80)
    ref[50:55] = ref[30:35]
    query[10:20] = copy_of(rng, ref[30:40])
    segments = align(query, seconds(40), ref, seconds(80))
    assert [(s.query_start, s.query_end, s.ref_start, s.ref_end) for s in segments] == [
        (10, 20, 30, 40)
    ]
    kept_all = align(query, seconds(40), ref, seconds(80), AlignParams(max_query_overlap=1.0))
    assert [(s.ref_start, s.ref_end) for s in kept_all] == [(30, 40), (50, 55)]


@pytest.mark.parametrize("bad", [-0.1, 1.5, float("nan")])
def test_max_query_overlap_outside_0_1_is_refused(bad: float) -> None:
    with pytest.raises(ValueError, match="max_query_overlap must be 0-1"):
        AlignParams(max_query_overlap=bad)


def test_a_reference_span_copied_twice_gives_two_segments() -> None:
    # The opposite case: two query moments showing the same reference span are two copies.
    rng = np.random.default_rng(22)
    query, ref = random_video(rng, 40), random_video(rng, 60)
    query[5:12] = copy_of(rng, ref[30:37])
    query[25:32] = copy_of(rng, ref[30:37])
    segments = align(query, seconds(40), ref, seconds(60))
    assert sorted((s.query_start, s.query_end, s.ref_start, s.ref_end) for s in segments) == [
        (5, 12, 30, 37),
        (25, 32, 30, 37),
    ]


def test_single_matching_frame_needs_min_matches() -> None:
    rng = np.random.default_rng(9)
    query, ref = random_video(rng, 20), random_video(rng, 20)
    query[7] = copy_of(rng, ref[3][None])[0]
    assert align(query, seconds(20), ref, seconds(20)) == []
    segments = align(query, seconds(20), ref, seconds(20), AlignParams(min_matches=1))
    assert [(s.query_start, s.query_end, s.ref_start, s.ref_end) for s in segments] == [
        (7, 8, 3, 4)
    ]


def test_one_frame_videos_align() -> None:
    # min_matches is capped by the shorter video: a 1-frame copy of a 1-frame video counts.
    rng = np.random.default_rng(10)
    ref = random_video(rng, 1)
    query = copy_of(rng, ref)
    segments = align(query, seconds(1), ref, seconds(1))
    assert [(s.query_start, s.query_end, s.ref_start, s.ref_end, s.matches) for s in segments] == [
        (0, 1, 0, 1, 1)
    ]


def test_frame_period_sets_the_segment_end() -> None:
    # At 2 fps, frames are 0.5 s apart and each stands for 0.5 s.
    rng = np.random.default_rng(11)
    query, ref = random_video(rng, 20), random_video(rng, 20)
    query[4:10] = copy_of(rng, ref[10:16])
    times = seconds(20) / 2
    segments = align(query, times, ref, times, frame_period=0.5)
    # Query frames 4..9 at 2.0..4.5 s, ref frames 10..15 at 5.0..7.5 s; ends + 0.5 s.
    assert [(s.query_start, s.query_end, s.ref_start, s.ref_end) for s in segments] == [
        (2.0, 5.0, 5.0, 8.0)
    ]


def test_max_segments_caps_the_output() -> None:
    rng = np.random.default_rng(12)
    query, ref = random_video(rng, 60), random_video(rng, 60)
    for start in (0, 15, 30, 45):  # four 5-frame copies, offsets far apart
        query[start : start + 5] = copy_of(rng, ref[55 - start - 5 : 55 - start])
    assert len(align(query, seconds(60), ref, seconds(60))) == 4
    assert len(align(query, seconds(60), ref, seconds(60), AlignParams(max_segments=2))) == 2


def test_empty_inputs() -> None:
    rng = np.random.default_rng(13)
    some = random_video(rng, 5)
    none = np.zeros((0, D), dtype=np.float32)
    no_times = np.zeros(0, dtype=np.float32)
    assert align(none, no_times, some, seconds(5)) == []
    assert align(some, seconds(5), none, no_times) == []
    assert match("x", none, no_times, some, seconds(5)) == Match("x", 0.0, False, [])
    assert match_candidates(some, seconds(5), []) == []


def test_match_candidates_ranks_by_score() -> None:
    rng = np.random.default_rng(14)
    query = random_video(rng, 30)
    strong, weak, unrelated = random_video(rng, 30), random_video(rng, 30), random_video(rng, 30)
    query[0:10] = copy_of(rng, strong[10:20])
    # Cosine ~ 1 / sqrt(1 + 0.8**2) ~ 0.78 for the weaker copy.
    query[15:25] = unit(weak[0:10] + 0.8 * unit(rng.normal(size=(10, D))))
    candidates = [
        ("unrelated", unrelated, seconds(30)),
        ("weak", weak, seconds(30)),
        ("strong", strong, seconds(30)),
    ]
    results = match_candidates(query, seconds(30), candidates)
    assert [m.video_id for m in results] == ["strong", "weak", "unrelated"]
    assert [m.reproduced for m in results] == [True, True, False]
    assert results[0].score > 0.95 and 0.7 < results[1].score < 0.85


def test_pack_unpack_round_trip() -> None:
    matches = [
        Match("a", 0.9, True, [Segment(1, 5, 2, 6, 0.9, 4), Segment(10, 12, 20, 22, 0.6, 2)]),
        Match("b-é", 0.0, False, []),
        Match("c", 0.55, True, [Segment(0.5, 3.5, 7.25, 10.25, 0.55, 3)]),
    ]
    tensors = pack_matches(matches)
    assert tensors["VIDEO_IDS"].tolist() == [b"a", "b-é".encode(), b"c"]
    assert tensors["SEGMENTS"].shape == (3, 5) and tensors["SEGMENTS"].dtype == np.float32
    assert tensors["SEGMENT_VIDEO"].tolist() == [0, 0, 2]
    back = unpack_matches(tensors)
    # Values here are exact in float32 except the scores; match counts are not carried.
    assert [m.video_id for m in back] == ["a", "b-é", "c"]
    assert [m.reproduced for m in back] == [True, False, True]
    assert [m.score for m in back] == pytest.approx([0.9, 0.0, 0.55], abs=1e-6)
    for got, want in zip(back, matches, strict=True):
        assert len(got.segments) == len(want.segments)
        for g, w in zip(got.segments, want.segments, strict=True):
            assert g.as_row() == pytest.approx(w.as_row(), abs=1e-6)
            assert g.matches == 0


def test_pack_unpack_no_matches() -> None:
    tensors = pack_matches([])
    assert tensors["SEGMENTS"].shape == (0, 5)
    assert tensors["VIDEO_IDS"].shape == (0,)
    assert unpack_matches(tensors) == []


def reference_best_score(qt, rt, s, alive, params: AlignParams) -> float:
    """Heaviest forward path by plain dynamic programming over every pair of nodes."""
    n = len(s)
    best = [-np.inf] * n
    for b in range(n):  # nodes are sorted by query time, so predecessors come first
        if not alive[b]:
            continue
        reach = 0.0
        for a in range(n):
            dq, dr = qt[b] - qt[a], rt[b] - rt[a]
            if (
                alive[a]
                and 0 < dq <= params.max_gap
                and 0 < dr <= params.max_gap
                and params.min_speed * dq <= dr <= params.max_speed * dq
            ):
                reach = max(reach, best[a])
        best[b] = reach + s[b] - params.bias
    return max(best)


@pytest.mark.parametrize("bias", [0.3, 0.6])  # at 0.6 some gains are negative
@pytest.mark.parametrize("seed", range(4))
def test_best_path_matches_exhaustive_dynamic_programming(seed: int, bias: float) -> None:
    from rci.match.alignment import _best_path

    rng = np.random.default_rng(100 + seed)
    n = 120
    qt = np.sort(rng.integers(0, 30, size=n)).astype(np.float64)
    rt = rng.integers(0, 30, size=n).astype(np.float64)
    s = rng.uniform(0.35, 1.0, size=n)
    alive = rng.random(n) < 0.8
    params = AlignParams(bias=bias)
    path, total = _best_path(qt, rt, s, alive, params)
    assert total == pytest.approx(reference_best_score(qt, rt, s, alive, params), abs=1e-9)
    # The returned path is a valid chain whose gains add up to its score.
    assert all(alive[path])
    assert total == pytest.approx(float(np.sum(s[path] - params.bias)), abs=1e-9)
    for a, b in zip(path, path[1:], strict=False):
        dq, dr = qt[b] - qt[a], rt[b] - rt[a]
        assert 0 < dq <= params.max_gap and 0 < dr <= params.max_gap
        assert params.min_speed * dq <= dr <= params.max_speed * dq


def test_mirrored_view_counts_with_the_better_similarity() -> None:
    rng = np.random.default_rng(3)
    query, ref = random_video(rng, 30), random_video(rng, 30)
    mirrored = random_video(rng, 30)
    # Frames 5..14 copy ref 10..19 in the query itself, frames 20..27 copy ref 0..7 only in
    # the mirrored view: with it, two segments; without it, one.
    query[5:15] = copy_of(rng, ref[10:20])
    mirrored[20:28] = copy_of(rng, ref[0:8])
    plain = align(query, seconds(30), ref, seconds(30))
    both = align(QueryViews(query, mirrored), seconds(30), ref, seconds(30))
    assert [(s.query_start, s.ref_start) for s in plain] == [(5, 10)]
    assert sorted((s.query_start, s.query_end, s.ref_start, s.ref_end) for s in both) == [
        (5, 15, 10, 20), (20, 28, 0, 8),
    ]  # fmt: skip
    views = checked_views(query, mirrored)
    found = match_candidates(views, seconds(30), [("r", ref, seconds(30))])
    assert len(found[0].segments) == 2
    assert checked_views(query, mirrored[:0]).mirrored is None  # empty: no second view
    with pytest.raises(RciError, match="MIRRORED_EMBEDDINGS must be"):
        checked_views(query, mirrored[:5])
    with pytest.raises(RciError, match="MIRRORED_EMBEDDINGS rows must have unit length"):
        checked_views(query, 2 * mirrored)


def test_penalty_is_taken_off_every_similarity_of_its_frame() -> None:
    rng = np.random.default_rng(4)
    query, ref = random_video(rng, 30), random_video(rng, 30)
    query[5:15] = copy_of(rng, ref[10:20])  # cosine ~0.98
    # A penalty of 0.5 on frames 5..9 leaves ~0.48 there (still above min_similarity 0.35):
    # the segment keeps its span, its score is the mean, (5 * 0.48 + 5 * 0.98) / 10 ~ 0.73.
    penalty = np.zeros((1, 30), np.float32)
    penalty[0, 5:10] = 0.5
    plain = align(query, seconds(30), ref, seconds(30))[0]
    (seg,) = align(QueryViews(query, penalty=penalty), seconds(30), ref, seconds(30))
    assert (seg.query_start, seg.query_end) == (plain.query_start, plain.query_end) == (5, 15)
    assert seg.score == pytest.approx(plain.score - 0.25, abs=1e-5)
    # 0.7 leaves ~0.28 on frames 5..9: below min_similarity, they are no longer matches.
    penalty[0, 5:10] = 0.7
    (seg,) = align(QueryViews(query, penalty=penalty), seconds(30), ref, seconds(30))
    assert (seg.query_start, seg.query_end) == (10, 15)
    with pytest.raises(RciError, match="QUERY_PENALTY must be finite"):
        negative = QueryViews(query, penalty=-penalty)
        match_candidates(negative, seconds(30), [("r", ref, seconds(30))])


def test_a_short_segment_many_candidates_share_is_chrome() -> None:
    # A channel's 2 s bumper opens the query and three library videos (b1-b3); "src" is
    # also copied at query 10-30 s. The bumper's segments go (three videos share query 0-2
    # s, and 2 s <= chrome_seconds); the long copy stays though src shows the bumper too.
    rng = np.random.default_rng(5)
    bumper = random_video(rng, 2)
    query = random_video(rng, 40)
    query[0:2] = copy_of(rng, bumper)
    src = random_video(rng, 40)
    src[0:2] = bumper
    query[10:30] = copy_of(rng, src[15:35])
    candidates = [("src", src, seconds(40))]
    for n in range(3):
        video = random_video(rng, 20)
        video[0:2] = bumper
        candidates.append((f"b{n + 1}", video, seconds(20)))
    found = {m.video_id: m for m in match_candidates(query, seconds(40), candidates)}
    assert [(s.query_start, s.query_end) for s in found["src"].segments] == [(10, 30)]
    assert found["src"].reproduced
    for n in range(3):
        assert found[f"b{n + 1}"].segments == [] and not found[f"b{n + 1}"].reproduced
    # Two videos sharing it are not enough (chrome_videos 3).
    two = match_candidates(query, seconds(40), candidates[1:3])
    assert len(two) == 2 and all(m.reproduced for m in two)
    off = AlignParams(chrome_videos=0)
    assert all(m.reproduced for m in match_candidates(query, seconds(40), candidates, off))


def test_a_short_segment_on_frames_many_library_videos_hold_is_chrome() -> None:
    # The same bumper query as above, but only one bumper video reached the candidates (the
    # rest lost recall's vote): recall's recurrence still says four library videos hold
    # query 0-2 s, so that segment goes; the long copy of src stays.
    rng = np.random.default_rng(5)
    bumper = random_video(rng, 2)
    query = random_video(rng, 40)
    query[0:2] = copy_of(rng, bumper)
    src = random_video(rng, 40)
    query[10:30] = copy_of(rng, src[15:35])
    b1 = random_video(rng, 20)
    b1[0:2] = bumper
    candidates = [("src", src, seconds(40)), ("b1", b1, seconds(20))]
    recurring = np.ones(40, np.int32)
    recurring[0:2] = 4
    views = QueryViews(query, recurrence=recurring)
    found = {m.video_id: m for m in match_candidates(views, seconds(40), candidates)}
    assert found["b1"].segments == [] and not found["b1"].reproduced
    assert [(s.query_start, s.query_end) for s in found["src"].segments] == [(10, 30)]
    # Without the recurrence, one candidate alone is not chrome.
    plain = match_candidates(query, seconds(40), candidates)
    assert {m.video_id for m in plain if m.reproduced} == {"src", "b1"}
    # A copy longer than chrome_seconds stays however many videos hold it.
    recurring[10:30] = 9
    found = {m.video_id: m for m in match_candidates(views, seconds(40), candidates)}
    assert found["src"].reproduced


def test_the_whole_view_finds_the_video_a_picture_sits_on() -> None:
    # Query frames 0-20 s show library video "a" inset (the content box) over library video
    # "b" (only the whole frame shows it): the whole view finds b beside a.
    rng = np.random.default_rng(7)
    a, b = random_video(rng, 30), random_video(rng, 30)
    inset = copy_of(rng, a[5:25])
    whole = copy_of(rng, b[0:20])
    candidates = [("a", a, seconds(30)), ("b", b, seconds(30))]
    found = match_candidates(QueryViews(inset, whole=whole), seconds(20), candidates)
    assert {m.video_id for m in found if m.reproduced} == {"a", "b"}
    plain = match_candidates(inset, seconds(20), candidates)
    assert {m.video_id for m in plain if m.reproduced} == {"a"}
    with pytest.raises(RciError, match="WHOLE_EMBEDDINGS"):
        match_candidates(QueryViews(inset, whole=2 * whole), seconds(20), candidates)
