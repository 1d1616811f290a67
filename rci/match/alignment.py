"""Match, step 2: temporal alignment of a query against one candidate, giving copied segments.

Matches are the kNN-sparsified query x reference frame similarities. A temporal network
links matches that move forward in both videos within a gap and a speed range; the
heaviest path, scored as sum(similarity - bias), is a copied segment. Matches inside its
rectangle or on near-parallel diagonals are then removed and the search repeats, which
suppresses one-to-many duplicates of the same span. Last, a segment whose query span is
mostly inside stronger segments' is dropped: a query moment shows one reference moment,
and the others it matches are that picture recurring in the reference.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rci.match.intervals import intersection_length
from rci.match.views import QueryViews


@dataclass(frozen=True)
class AlignParams:
    """Times in seconds; similarities are cosine."""

    node_k: int = 5  # reference frames kept per query frame
    min_similarity: float = 0.35  # a match below this is not a node
    bias: float = 0.3  # subtracted from each match's similarity in a path's score
    max_gap: float = 5.0  # largest jump between consecutive matches, either video
    min_speed: float = 0.4  # slope limits of an edge, reference seconds per query second
    max_speed: float = 2.5
    min_matches: int = 2  # a segment needs this many matched frames (fewer for tiny videos)
    max_segments: int = 8
    # Fraction of a segment's query span that stronger segments may already cover. Chosen on
    # the benchmark's train and val splits (0.5-0.9 alike; VCSL F 0.63 -> 0.75 there).
    max_query_overlap: float = 0.75
    # Chrome: a segment of at most chrome_seconds whose query span chrome_videos or more
    # candidates match, or whose query frames that many library videos hold (recall's
    # recurrence), is shared by the library's videos (a channel's bumper, a recurring title
    # card), not copied from one of them. 0 videos turns it off.
    chrome_seconds: float = 5.0
    chrome_videos: int = 3
    threshold: float = 0.5  # a video is reproduced when its score reaches this

    def __post_init__(self) -> None:
        # A NaN or negative fraction would drop every segment: nothing would be reproduced.
        if not 0.0 <= self.max_query_overlap <= 1.0:
            raise ValueError(f"max_query_overlap must be 0-1, got {self.max_query_overlap}")
        if self.chrome_videos < 0 or not self.chrome_seconds >= 0:
            raise ValueError(f"chrome_videos and chrome_seconds must be >= 0, got {self}")


@dataclass(frozen=True)
class Segment:
    """A copied span: query [query_start, query_end) s shows reference [ref_start, ref_end) s.

    modality: what found it, "visual", "audio" or "both" (rci.match.verdict); score is the
    mean similarity of its matched frames (of its audio windows for an audio segment);
    audio_score that of its audio windows and support the pictures' agreement along them
    (rci.match.verdict.visual_support), 0 for a visual segment.
    """

    query_start: float
    query_end: float
    ref_start: float
    ref_end: float
    score: float
    matches: int
    modality: str = "visual"
    audio_score: float = 0.0
    support: float = 0.0

    def as_row(self) -> list[float]:
        return [self.query_start, self.query_end, self.ref_start, self.ref_end, self.score]


def _nodes(S: np.ndarray, params: AlignParams) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(i, j, s) of the top node_k reference frames of each query frame above min_similarity."""
    k = min(params.node_k, S.shape[1])
    j = np.argpartition(-S, k - 1, axis=1)[:, :k]
    i = np.repeat(np.arange(S.shape[0]), k)
    j = j.reshape(-1)
    s = S[i, j]
    keep = s >= params.min_similarity
    order = np.lexsort((j[keep], i[keep]))
    return i[keep][order], j[keep][order], s[keep][order]


def _best_path(
    qt: np.ndarray, rt: np.ndarray, s: np.ndarray, alive: np.ndarray, params: AlignParams
) -> tuple[list[int], float]:
    """Heaviest forward path over alive nodes (sorted by query time); node list and score."""
    n = len(s)
    gain = s - params.bias
    best = np.where(alive, gain, -np.inf)
    prev = np.full(n, -1)
    # Nodes at one query time never link to each other (an edge moves forward in both
    # videos), so each query time's nodes are extended together from the earlier ones.
    starts = np.flatnonzero(np.r_[True, qt[1:] != qt[:-1]])
    stops = np.r_[starts[1:], n]
    lows = np.searchsorted(qt, qt[starts] - params.max_gap, side="left")
    for lo, b0, b1 in zip(lows.tolist(), starts.tolist(), stops.tolist(), strict=True):
        b = np.arange(b0, b1)[alive[b0:b1]]
        # Only a positive path is worth extending; the first best wins a tie, as argmax does.
        a = np.arange(lo, b0)[best[lo:b0] > 0]
        if len(b) == 0 or len(a) == 0:
            continue
        dq = qt[b0] - qt[a]  # > 0: earlier query times only
        dr = rt[b][:, None] - rt[a][None, :]
        ok = (dr > 0) & (dr <= params.max_gap)
        ok &= (dr >= params.min_speed * dq) & (dr <= params.max_speed * dq)
        reach = np.where(ok, best[a][None, :], -np.inf)
        top = np.argmax(reach, axis=1)
        linked = ok.any(axis=1)
        best[b[linked]] = best[a[top[linked]]] + gain[b[linked]]
        prev[b[linked]] = a[top[linked]]
    end = int(np.argmax(best))
    path = [end]
    while prev[path[-1]] >= 0:
        path.append(int(prev[path[-1]]))
    return path[::-1], float(best[end])


def align(
    query: np.ndarray | QueryViews,
    query_times: np.ndarray,
    ref: np.ndarray,
    ref_times: np.ndarray,
    params: AlignParams = AlignParams(),
    frame_period: float = 1.0,
) -> list[Segment]:
    """Copied segments between query (Tq, D) and reference (Tr, D) unit embeddings, best first.

    Times are (Tq,) and (Tr,) seconds; a sampled frame stands for frame_period seconds. A
    query given as QueryViews is compared view by view (QueryViews.similarities).
    """
    views = QueryViews.of(query)
    if len(views) == 0 or len(ref) == 0:
        return []
    # (Tq, Tr) cosine similarities, less any penalty
    return align_similarities(views.similarities(ref), query_times, ref_times, params, frame_period)


def align_similarities(
    S: np.ndarray,
    query_times: np.ndarray,
    ref_times: np.ndarray,
    params: AlignParams = AlignParams(),
    frame_period: float = 1.0,
) -> list[Segment]:
    """Copied segments read off a (Tq, Tr) similarity matrix whose rows are at query_times
    and columns at ref_times (seconds), best first; as align."""
    if S.size == 0:
        return []
    i, j, s = _nodes(S, params)
    return align_nodes(i, j, s, query_times, ref_times, params, frame_period, S.shape)


def align_nodes(
    i: np.ndarray,
    j: np.ndarray,
    s: np.ndarray,
    query_times: np.ndarray,
    ref_times: np.ndarray,
    params: AlignParams,
    frame_period: float,
    shape: tuple[int, int],
) -> list[Segment]:
    """Copied segments from matches: query row i (at query_times[i] s) shows reference
    column j with similarity s, sorted by (i, j), in a (Tq, Tr) = shape grid; best first."""
    qt, rt = query_times[i].astype(np.float64), ref_times[j].astype(np.float64)
    alive = np.ones(len(s), dtype=bool)
    min_matches = min(params.min_matches, *shape)
    segments: list[Segment] = []
    while alive.any() and len(segments) < params.max_segments:
        path, total = _best_path(qt, rt, s, alive, params)
        if total <= 0 or not alive[path[0]]:
            break
        q0, q1, r0, r1 = qt[path[0]], qt[path[-1]], rt[path[0]], rt[path[-1]]
        offsets = rt[path] - qt[path]
        alive[path] = False
        inside = (qt >= q0) & (qt <= q1) & (rt >= r0) & (rt <= r1)
        # Near-parallel diagonals over the same query span are the same copy seen again.
        parallel = (
            (qt >= q0 - params.max_gap)
            & (qt <= q1 + params.max_gap)
            & (rt - qt >= offsets.min() - params.max_gap)
            & (rt - qt <= offsets.max() + params.max_gap)
        )
        alive &= ~(inside | parallel)
        if len(path) < min_matches:
            continue
        segments.append(
            Segment(
                query_start=float(q0),
                query_end=float(q1 + frame_period),
                ref_start=float(r0),
                ref_end=float(r1 + frame_period),
                score=min(1.0, float(s[path].mean())),  # float rounding can exceed 1
                matches=len(path),
            )
        )
    segments.sort(key=lambda seg: (-seg.score * seg.matches, seg.query_start))
    return one_reference_moment_each(segments, params.max_query_overlap)


def one_reference_moment_each(segments: list[Segment], max_overlap: float) -> list[Segment]:
    """Segments (strongest first) less those whose query span is more than `max_overlap`
    inside the spans of stronger ones kept: they align the same query moments elsewhere."""
    kept: list[Segment] = []
    for seg in segments:
        covered = intersection_length(
            [(seg.query_start, seg.query_end)], [(k.query_start, k.query_end) for k in kept]
        )
        if covered <= max_overlap * (seg.query_end - seg.query_start):
            kept.append(seg)
    return kept
