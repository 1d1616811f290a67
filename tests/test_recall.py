"""Recall: nearest-neighbour votes for library videos, and the candidate tensors."""

from __future__ import annotations

from collections import defaultdict

import numpy as np
import pytest

from rci.library.store import VideoFingerprints
from rci.match.recall import (
    RecallParams,
    pack_candidates,
    recall,
    recall_recurring,
    recurrence,
    unpack_candidates,
    vote,
)
from rci.match.views import QueryViews
from rci.serving.libraries import Libraries

# D, nbr: faiss's similarities and neighbour rows (faiss calls them D, I), -1 = none.
# Index rows 0-2 belong to video 0, rows 3-4 to video 1, rows 5-7 to video 2.
ROW_VIDEO = np.array([0, 0, 0, 1, 1, 2, 2, 2])


def by_video(nbr: np.ndarray, row_video: np.ndarray = ROW_VIDEO) -> np.ndarray:
    """The video of each neighbour row, -1 where there is none."""
    return np.where(nbr >= 0, row_video[nbr], -1)


def params(**kw) -> RecallParams:
    return RecallParams(**{"min_similarity": 0.2, **kw})


def test_each_query_frame_votes_once_per_video() -> None:
    D = np.array([[0.9, 0.8, 0.7], [0.6, 0.5, 0.0], [0.4, 0.3, 0.0]], dtype=np.float32)
    nbr = np.array([[0, 1, 2], [3, 5, -1], [4, 3, -1]])
    # Frame 0: three rows of video 0 -> one vote for video 0 (best 0.9).
    # Frame 1: video 1 (0.6), video 2 (0.5). Frame 2: two rows of video 1 -> one vote (0.4).
    # Votes: v0 1, v1 2, v2 1; the v0/v2 tie goes to the larger similarity sum (0.9 > 0.5).
    assert vote(D, by_video(nbr), params()) == [1, 0, 2]


def test_min_similarity_drops_weak_neighbours() -> None:
    D = np.array([[0.9, 0.8, 0.7], [0.6, 0.5, 0.0], [0.4, 0.3, 0.0]], dtype=np.float32)
    nbr = np.array([[0, 1, 2], [3, 5, -1], [4, 3, -1]])
    # At 0.55 only 0.9, 0.8, 0.7 (v0, frame 0) and 0.6 (v1, frame 1) vote: v2 is gone and
    # v0 and v1 tie at one vote each; v0's 0.9 beats v1's 0.6.
    assert vote(D, by_video(nbr), params(min_similarity=0.55)) == [0, 1]
    # A neighbour exactly at min_similarity votes (0.5 is exact in float32): v2 is back with
    # one vote and the smallest weight, 0.5.
    assert vote(D, by_video(nbr), params(min_similarity=0.5)) == [0, 1, 2]
    assert vote(D, by_video(nbr), params(min_similarity=0.95)) == []


def test_ties_on_votes_are_broken_by_best_similarity_per_frame() -> None:
    D = np.array([[0.7, 0.6, 0.6, 0.6], [0.7, 0.6, 0.0, 0.0]], dtype=np.float32)
    nbr = np.array([[3, 0, 1, 2], [4, 0, -1, -1]])
    # Video 0: frame 0 best 0.6 (three rows), frame 1 0.6 -> 2 votes, weight 1.2.
    # Video 1: frame 0 0.7, frame 1 0.7 -> 2 votes, weight 1.4, so video 1 first.
    # (Summing every neighbour would give video 0 a weight of 2.4 and the lead.)
    assert vote(D, by_video(nbr), params()) == [1, 0]


def test_more_votes_beat_higher_similarity() -> None:
    D = np.array([[0.99, 0.3], [0.3, 0.0], [0.3, 0.0]], dtype=np.float32)
    nbr = np.array([[5, 0], [1, -1], [2, -1]])
    # Video 2: 1 vote (0.99). Video 0: 3 votes (0.3 each, weight 0.9).
    assert vote(D, by_video(nbr), params()) == [0, 2]


def test_candidates_limit() -> None:
    D = np.array([[0.9, 0.8, 0.7], [0.9, 0.8, 0.0]], dtype=np.float32)
    nbr = np.array([[5, 3, 0], [6, 4, -1]])
    # Votes: v2 2 (1.8), v1 2 (1.6), v0 1 (0.7).
    assert vote(D, by_video(nbr), params(candidates=5)) == [2, 1, 0]
    assert vote(D, by_video(nbr), params(candidates=2)) == [2, 1]
    assert vote(D, by_video(nbr), params(candidates=1)) == [2]


def test_missing_neighbours_cast_no_vote() -> None:
    # faiss marks missing neighbours with row -1; whatever D says there is ignored.
    D = np.array([[1.0, 1.0], [0.5, 1.0]], dtype=np.float32)
    nbr = np.array([[-1, -1], [3, -1]])
    assert vote(D, by_video(nbr), params()) == [1]
    assert vote(D, np.full_like(nbr, -1), params()) == []


def test_no_query_frames() -> None:
    D = np.zeros((0, 3), dtype=np.float32)
    nbr = np.zeros((0, 3), dtype=np.int64)
    assert vote(D, by_video(nbr), params()) == []


def test_params_validation() -> None:
    with pytest.raises(ValueError, match="k and candidates"):
        RecallParams(k=0)
    with pytest.raises(ValueError, match="k and candidates"):
        RecallParams(candidates=0)


def reference_vote(D, nbr, row_video, p: RecallParams) -> list[int]:
    """vote() by plain loops: best similarity per (frame, video), then rank."""
    best: dict[tuple[int, int], float] = {}
    for f in range(D.shape[0]):
        for d, i in zip(D[f], nbr[f], strict=True):
            if i >= 0 and d >= p.min_similarity:
                v = int(row_video[i])
                best[f, v] = max(best.get((f, v), -np.inf), float(d))
    votes: dict[int, int] = defaultdict(int)
    weight: dict[int, float] = defaultdict(float)
    for (_, v), d in best.items():
        votes[v] += 1
        weight[v] += d
    ranked = sorted(votes, key=lambda v: (-votes[v], -weight[v], v))
    return ranked[: p.candidates]


@pytest.mark.parametrize("seed", range(5))
def test_vote_matches_reference(seed: int) -> None:
    rng = np.random.default_rng(seed)
    nq, k, rows, videos = 30, 8, 200, 12
    row_video = np.sort(rng.integers(0, videos, size=rows))
    nbr = rng.integers(-1, rows, size=(nq, k))
    D = rng.uniform(-0.2, 1.0, size=(nq, k)).astype(np.float32)
    p = RecallParams(k=k, candidates=6, min_similarity=0.4)
    assert vote(D, by_video(nbr, row_video), p) == reference_vote(D, nbr, row_video, p)


def unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=-1, keepdims=True)).astype(np.float32)


def test_recall_finds_the_copied_video_in_a_library(tmp_path) -> None:
    # Three 20-frame videos of random unit vectors (D = 64). The query repeats frames 5..14
    # of video "b" with small noise (cosine ~0.98) and has 10 unrelated frames.
    rng = np.random.default_rng(0)
    libs = Libraries(tmp_path, ["lib"], descriptor="test", dim=64)
    writer = libs.writer("lib")
    videos = {}
    for name in ["a", "b", "c"]:
        videos[name] = unit(rng.normal(size=(20, 64)))
        times = np.arange(20, dtype=np.float32)
        writer.add(VideoFingerprints(name, videos[name], times, 20.0))
    query = np.concatenate(
        [
            unit(videos["b"][5:15] + 0.2 * unit(rng.normal(size=(10, 64)))),
            unit(rng.normal(size=(10, 64))),
        ]
    )
    # Chance cosines in 64 dimensions have std 1/8: keep them out with min_similarity 0.6.
    found = recall(libs.index("lib"), query, RecallParams(k=5, candidates=2, min_similarity=0.6))
    assert [c.video_id for c in found] == ["b"]
    np.testing.assert_array_equal(found[0].embeddings, videos["b"])
    np.testing.assert_array_equal(found[0].timestamps, np.arange(20, dtype=np.float32))


def test_recall_on_empty_library_or_query(tmp_path) -> None:
    libs = Libraries(tmp_path, ["lib"], descriptor="test", dim=8)
    assert recall(libs.index("lib"), np.ones((3, 8), dtype=np.float32)) == []
    libs.writer("lib").add(
        VideoFingerprints("a", np.eye(8, dtype=np.float32)[:2], np.arange(2, dtype=np.float32), 2.0)
    )
    assert recall(libs.index("lib"), np.zeros((0, 8), dtype=np.float32)) == []


def fingerprints(video_id: str, n: int, dim: int, seed: int) -> VideoFingerprints:
    rng = np.random.default_rng(seed)
    return VideoFingerprints(
        video_id=video_id,
        embeddings=unit(rng.normal(size=(n, dim))),
        timestamps=np.arange(n, dtype=np.float32) * 1.5,
        duration=n * 1.5,
    )


def test_pack_unpack_candidates_round_trip() -> None:
    candidates = [
        fingerprints("three", 3, 8, 0),
        fingerprints("one-é", 1, 8, 1),
        fingerprints("five", 5, 8, 2),
    ]
    tensors = pack_candidates(candidates, dim=8)
    assert tensors["CANDIDATE_EMBEDDINGS"].shape == (3, 5, 8)
    assert tensors["CANDIDATE_TIMESTAMPS"].shape == (3, 5)
    assert tensors["CANDIDATE_LENGTHS"].tolist() == [3, 1, 5]
    assert tensors["CANDIDATE_LENGTHS"].dtype == np.int32
    assert tensors["CANDIDATE_IDS"].tolist() == [b"three", "one-é".encode(), b"five"]
    # Padding is zeros.
    assert not tensors["CANDIDATE_EMBEDDINGS"][1, 1:].any()
    assert not tensors["CANDIDATE_TIMESTAMPS"][0, 3:].any()
    back = unpack_candidates(tensors)
    assert [video_id for video_id, _, _ in back] == ["three", "one-é", "five"]
    for (_, emb, times), c in zip(back, candidates, strict=True):
        np.testing.assert_array_equal(emb, c.embeddings)
        np.testing.assert_array_equal(times, c.timestamps)


def test_pack_unpack_zero_candidates() -> None:
    tensors = pack_candidates([], dim=8)
    assert tensors["CANDIDATE_EMBEDDINGS"].shape == (0, 0, 8)
    assert tensors["CANDIDATE_IDS"].shape == (0,)
    assert tensors["CANDIDATE_LENGTHS"].shape == (0,)
    assert unpack_candidates(tensors) == []


def test_unpack_refuses_ids_that_are_not_utf8() -> None:
    from rci.errors import RciError
    from rci.match.recall import candidate_libraries

    tensors = pack_candidates([fingerprints("a", 3, 8, 0)], dim=8, libraries=["main"])
    bad = dict(tensors, CANDIDATE_IDS=np.array([b"\xff\xfe"], dtype=object))
    with pytest.raises(RciError, match="CANDIDATE_IDS holds a value that is not valid UTF-8"):
        unpack_candidates(bad)
    bad = dict(tensors, CANDIDATE_LIBRARIES=np.array([b"\xc3"], dtype=object))
    with pytest.raises(RciError, match="CANDIDATE_LIBRARIES holds a value that is not valid"):
        candidate_libraries(bad)


def test_mirrored_view_recalls_a_mirrored_copy(tmp_path) -> None:
    # As above, but the copied frames reach the query only through its mirrored view (the
    # "mirror image" of a frame here is any other unit vector; what matters is that the
    # view, not the frame, matches). Without the view nothing reaches 0.6.
    rng = np.random.default_rng(1)
    libs = Libraries(tmp_path, ["lib"], descriptor="test", dim=64)
    writer = libs.writer("lib")
    videos = {}
    for name in ["a", "b", "c"]:
        videos[name] = unit(rng.normal(size=(20, 64)))
        writer.add(VideoFingerprints(name, videos[name], np.arange(20, dtype=np.float32), 20.0))
    query = unit(rng.normal(size=(10, 64)))
    mirrored = unit(videos["c"][3:13] + 0.2 * unit(rng.normal(size=(10, 64))))
    strict = RecallParams(k=5, candidates=2, min_similarity=0.6, video_min_similarity=0.6)
    assert recall(libs.index("lib"), query, strict) == []
    found = recall(libs.index("lib"), QueryViews(query, mirrored), strict)
    assert [c.video_id for c in found] == ["c"]
    # With frame votes off (an unreachable min_similarity), the mirrored view's mean brings
    # "c" in by whole-video similarity: it averages 10 of c's 20 frames, so its cosine to c's
    # mean is about 10 * 0.98 / (sqrt(10) * sqrt(20)) = 0.69; the plain view's is chance.
    means = RecallParams(k=5, candidates=2, min_similarity=1.5, video_min_similarity=0.5)
    assert recall(libs.index("lib"), query, means) == []
    assert [c.video_id for c in recall(libs.index("lib"), QueryViews(query, mirrored), means)] == [
        "c"
    ]
    # A penalty of 0.5 on both views takes the frames' ~0.98 under 0.6: no votes, and the
    # means' ~0.69 under 0.5.
    penalised = QueryViews(query, mirrored, penalty=np.full((2, 10), 0.5, np.float32))
    assert recall(libs.index("lib"), penalised, strict) == []
    assert recall(libs.index("lib"), penalised, means) == []


def test_recurrence_counts_the_videos_near_each_frames_best() -> None:
    D = np.array(
        [[0.95, 0.94, 0.93, 0.92, 0.5], [0.9, 0.6, 0.55, 0.5, 0.4], [0.3, 0.25, 0.1, 0.0, 0.0]],
        dtype=np.float32,
    )
    V = np.array([[0, 1, 1, 2, 3], [0, 0, 1, 2, 3], [0, 1, 2, -1, -1]])
    # Frame 0: videos 0, 1, 2 within 0.05 of 0.95 (video 3 at 0.5 is not). Frame 1: only
    # video 0 is near 0.9. Frame 2: 0.3 and 0.25 clear min_similarity 0.2, 0.1 does not.
    got = recurrence(D, V, params(recurrence_margin=0.05))
    assert got.tolist() == [3, 1, 2] and got.dtype == np.int32
    assert recurrence(D, V, params(recurrence_margin=0.5)).tolist() == [4, 4, 2]
    assert recurrence(D, V, params(min_similarity=0.99)).tolist() == [0, 0, 0]


def test_recall_says_how_many_library_videos_hold_each_query_frame(tmp_path) -> None:
    # Four library videos open with the same 2 s (a channel's bumper); the query opens with
    # it too, then copies 10 s of one of them.
    rng = np.random.default_rng(2)
    libs = Libraries(tmp_path, ["lib"], descriptor="test", dim=64)
    writer = libs.writer("lib")
    bumper = unit(rng.normal(size=(2, 64)))
    videos = {}
    for name in ["a", "b", "c", "d"]:
        videos[name] = np.vstack([bumper, unit(rng.normal(size=(18, 64)))])
        writer.add(VideoFingerprints(name, videos[name], np.arange(20, dtype=np.float32), 20.0))
    query = np.vstack([bumper, videos["c"][5:15]])
    candidates, recurring = recall_recurring(libs.index("lib"), query)
    assert recurring.tolist() == [4, 4] + [1] * 10
    alone = recall(libs.index("lib"), query)
    assert [c.video_id for c in candidates] == [c.video_id for c in alone]
