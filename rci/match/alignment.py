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

import dataclasses
from dataclasses import dataclass

import numpy as np

from rci.errors import RciError, quote
from rci.library.checks import check_embeddings, check_times
from rci.match.intervals import intersection_length
from rci.match.views import QueryViews, check_views

# Similarities one pair may need (float32: 256 MB): 30 min of query at 1 fps against 10 h
# of reference. A client calling rci_match directly cannot ask for more.
MAX_PAIR_CELLS = 1 << 26
# ... and one request's pairs all together (alignment is a Python loop per pair): what the
# ensemble sends by default is 10 candidates per library searched.
MAX_CANDIDATES = 256
MAX_REQUEST_CELLS = 1 << 28


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
    """A copied span: query [query_start, query_end) s shows reference [ref_start, ref_end) s."""

    query_start: float
    query_end: float
    ref_start: float
    ref_end: float
    score: float  # mean cosine similarity of the matched frames
    matches: int

    def as_row(self) -> list[float]:
        return [self.query_start, self.query_end, self.ref_start, self.ref_end, self.score]


@dataclass(frozen=True)
class Match:
    """A candidate's verdict: segments best first and the video-level score."""

    video_id: str
    score: float
    reproduced: bool
    segments: list[Segment]
    library: str = ""  # the library the video was found in


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
    for b in range(n):
        if not alive[b]:
            continue
        # Candidates a: earlier in both videos, within max_gap, slope within the speed range.
        lo = np.searchsorted(qt, qt[b] - params.max_gap, side="left")
        a = np.arange(lo, b)
        if len(a) == 0:
            continue
        dq = qt[b] - qt[a]
        dr = rt[b] - rt[a]
        ok = (
            alive[a]
            & (dq > 0)
            & (dr > 0)
            & (dr <= params.max_gap)
            & (dr >= params.min_speed * dq)
            & (dr <= params.max_speed * dq)
        )
        if ok.any():
            cand = a[ok]
            top = cand[np.argmax(best[cand])]
            if best[top] > 0:
                best[b] = best[top] + gain[b]
                prev[b] = top
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
    qt, rt = query_times[i].astype(np.float64), ref_times[j].astype(np.float64)
    alive = np.ones(len(s), dtype=bool)
    min_matches = min(params.min_matches, *S.shape)
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


def match(
    video_id: str,
    query: np.ndarray | QueryViews,
    query_times: np.ndarray,
    ref: np.ndarray,
    ref_times: np.ndarray,
    params: AlignParams = AlignParams(),
) -> Match:
    """Align and score one candidate; score is the best segment's mean similarity (0 if none)."""
    segments = align(query, query_times, ref, ref_times, params)
    score = max((seg.score for seg in segments), default=0.0)
    return Match(
        video_id=video_id, score=score, reproduced=score >= params.threshold, segments=segments
    )


def match_candidates(
    query: np.ndarray | QueryViews,
    query_times: np.ndarray,
    candidates: list[tuple[str, np.ndarray, np.ndarray]],
    params: AlignParams = AlignParams(),
    libraries: list[str] | None = None,
) -> list[Match]:
    """Match every (video_id, embeddings (T, D), timestamps (T,)) candidate, labelled with
    its library when `libraries` (one name per candidate) is given; best score first.
    The query (its embeddings, or QueryViews) must be unit rows with increasing times, and
    each pair's similarity matrix at most MAX_PAIR_CELLS (RciError otherwise)."""
    views = QueryViews.of(query)
    query = views.embeddings
    check_embeddings(query, "EMBEDDINGS")
    check_times(query_times, len(query), "TIMESTAMPS")
    check_views(views)
    if len(candidates) > MAX_CANDIDATES:
        raise RciError(f"{len(candidates)} candidates; at most {MAX_CANDIDATES} per request")
    cells = len(query) * sum(len(emb) for _, emb, _ in candidates)
    if cells > MAX_REQUEST_CELLS:
        raise RciError(f"{cells} similarities over all pairs; at most {MAX_REQUEST_CELLS}")
    for video_id, emb, _ in candidates:
        if emb.shape[1] != query.shape[1]:
            raise RciError(
                f"candidate {quote(video_id)} has {emb.shape[1]} columns, "
                f"the query {query.shape[1]}"
            )
        if len(query) * len(emb) > MAX_PAIR_CELLS:
            raise RciError(
                f"{len(query)} query frames x {len(emb)} of candidate {quote(video_id)} exceed "
                f"{MAX_PAIR_CELLS} similarities per pair"
            )
    labels = [""] * len(candidates) if libraries is None else libraries
    matches = [
        dataclasses.replace(match(vid, views, query_times, emb, times, params), library=lib)
        for (vid, emb, times), lib in zip(candidates, labels, strict=True)
    ]
    recurring = None
    if views.recurrence is not None:

        def recurring(seg: Segment) -> float:
            inside = (query_times >= seg.query_start) & (query_times < seg.query_end)
            return float(np.median(views.recurrence[inside])) if inside.any() else 0.0

    return sorted(without_chrome(matches, params, recurring), key=lambda m: -m.score)


def without_chrome(matches: list[Match], params: AlignParams, recurring=None) -> list[Match]:
    """`matches` less their chrome segments (AlignParams.chrome_seconds), rescored.

    A short segment counts as shared when at least chrome_videos matches (itself included)
    have a segment covering half or more of its query span, or when `recurring(segment)`
    (the library videos holding its query frames, median over them) reaches chrome_videos.
    Long segments always stay: a video copied many times is still copied.
    """
    if not params.chrome_videos:
        return matches

    def shared(seg: Segment) -> bool:
        span = seg.query_end - seg.query_start
        if span > params.chrome_seconds:
            return False
        if recurring is not None and recurring(seg) >= params.chrome_videos:
            return True
        holders = sum(
            any(
                intersection_length(
                    [(seg.query_start, seg.query_end)], [(o.query_start, o.query_end)]
                )
                >= 0.5 * span
                for o in m.segments
            )
            for m in matches
        )
        return holders >= params.chrome_videos

    out = []
    for m in matches:
        kept = [seg for seg in m.segments if not shared(seg)]
        if len(kept) == len(m.segments):
            out.append(m)
            continue
        score = max((seg.score for seg in kept), default=0.0)
        out.append(
            dataclasses.replace(m, segments=kept, score=score, reproduced=score >= params.threshold)
        )
    return out


def pack_matches(matches: list[Match]) -> dict[str, np.ndarray]:
    """Matches as tensors: VIDEO_IDS (N,) bytes, VIDEO_LIBRARIES (N,) bytes, SCORES (N,)
    float32, REPRODUCED (N,) bool, SEGMENTS (S, 5) float32 [query_start, query_end,
    ref_start, ref_end, score] in seconds, SEGMENT_VIDEO (S,) int32, the row in VIDEO_IDS
    each segment belongs to."""
    rows = [seg.as_row() for m in matches for seg in m.segments]
    owner = [n for n, m in enumerate(matches) for _ in m.segments]
    return {
        "VIDEO_IDS": np.array([m.video_id.encode() for m in matches], dtype=object),
        "VIDEO_LIBRARIES": np.array([m.library.encode() for m in matches], dtype=object),
        "SCORES": np.array([m.score for m in matches], dtype=np.float32),
        "REPRODUCED": np.array([m.reproduced for m in matches], dtype=bool),
        "SEGMENTS": np.array(rows, dtype=np.float32).reshape(-1, 5),
        "SEGMENT_VIDEO": np.array(owner, dtype=np.int32),
    }


def unpack_matches(tensors: dict[str, np.ndarray]) -> list[Match]:
    """Inverse of pack_matches (segment match counts are not carried and read as 0)."""
    ids = tensors["VIDEO_IDS"].reshape(-1)
    libraries = tensors.get("VIDEO_LIBRARIES")
    libraries = [b""] * len(ids) if libraries is None else libraries.reshape(-1)
    segments: dict[int, list[Segment]] = {}
    for row, owner in zip(
        tensors["SEGMENTS"].reshape(-1, 5), tensors["SEGMENT_VIDEO"].reshape(-1), strict=True
    ):
        q0, q1, r0, r1, score = (float(x) for x in row)
        segments.setdefault(int(owner), []).append(Segment(q0, q1, r0, r1, score, matches=0))
    return [
        Match(
            video_id=_text(raw),
            score=float(score),
            reproduced=bool(flag),
            segments=segments.get(n, []),
            library=_text(library),
        )
        for n, (raw, score, flag, library) in enumerate(
            zip(
                ids,
                tensors["SCORES"].reshape(-1),
                tensors["REPRODUCED"].reshape(-1),
                libraries,
                strict=True,
            )
        )
    ]


def _text(raw) -> str:
    return raw.decode() if isinstance(raw, bytes) else str(raw)
