"""Match, step 1 (recall): per-query-frame nearest neighbours vote for library videos; the
query's mean descriptor adds the videos nearest as a whole; per query audio window, the
nearest library audio windows vote likewise; their union goes on to alignment."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from rci.errors import RciError
from rci.library.checks import check_embeddings, check_times
from rci.library.index import SearchableLibrary, video_keys
from rci.library.store import VideoFingerprints
from rci.match.views import QueryViews
from rci.preprocess.audio_prints import (
    AUDIO_PRINT,
    HOP,
    WINDOW_BYTES,
    AudioPrintParams,
    AudioPrints,
)


@dataclass(frozen=True)
class RecallParams:
    """k is per query frame; `candidates` videos by votes go on to alignment, and up to
    `video_candidates` more whose mean descriptor is within `video_min_similarity`."""

    k: int = 10
    candidates: int = 5
    min_similarity: float = 0.2  # neighbours below this cosine cast no vote
    video_candidates: int = 5  # 0 turns video-level recall off
    video_min_similarity: float = 0.5  # cosine between the query's and a video's mean
    # A frame recurs in every library video among its neighbours this close to its best
    # similarity (chrome: a bumper's frame is held by each video of its channel).
    recurrence_margin: float = 0.05
    # Audio: each query window's audio_k nearest library windows (in every tempo view, at
    # phases 0 and 2) vote for their videos when their cosine (1 - 2 x bit errors / 256)
    # reaches audio_min_similarity; the top audio_candidates videos join the candidates.
    audio_k: int = 10
    audio_candidates: int = 5  # 0 turns audio recall off
    audio_min_similarity: float = 0.7

    def __post_init__(self) -> None:
        if self.k < 1 or self.candidates < 1 or self.video_candidates < 0:
            raise ValueError(
                "k and candidates must be >= 1 and video_candidates >= 0, got "
                f"{self.k}, {self.candidates}, {self.video_candidates}"
            )
        if self.audio_k < 1 or self.audio_candidates < 0:
            raise ValueError(
                f"audio_k must be >= 1 and audio_candidates >= 0, got {self.audio_k}, "
                f"{self.audio_candidates}"
            )


def vote(D: np.ndarray, V: np.ndarray, params: RecallParams) -> list[int]:
    """Video numbers ranked by votes, at most params.candidates of them.

    D, V: (nq, k) similarities and the video number of each neighbour (-1 = none). Each
    query frame gives one vote to every video among its neighbours at or above
    min_similarity; ties are broken by the sum over query frames of the best similarity to
    that video, then by the lower video number.
    """
    valid = (V >= 0) & (D >= params.min_similarity)
    if not valid.any():
        return []
    frame = np.nonzero(valid)[0]
    numbers, video = np.unique(V[valid], return_inverse=True)
    sim = D[valid]
    # Best similarity per (query frame, video) pair, so each frame votes once per video.
    order = np.lexsort((-sim, video, frame))
    frame, video, sim = frame[order], video[order], sim[order]
    first = np.ones(len(frame), dtype=bool)
    first[1:] = (frame[1:] != frame[:-1]) | (video[1:] != video[:-1])
    video, sim = video[first], sim[first]
    votes = np.bincount(video)
    weight = np.bincount(video, weights=sim)
    ranked = np.lexsort((-weight, -votes))
    ranked = ranked[votes[ranked] > 0]
    return numbers[ranked[: params.candidates]].tolist()


def recurrence(D: np.ndarray, V: np.ndarray, params: RecallParams) -> np.ndarray:
    """(nq,) int32: per query frame, the distinct videos among its neighbours (D, V as in
    vote()) within recurrence_margin of its best similarity and at or above min_similarity."""
    valid = (V >= 0) & (D >= params.min_similarity)
    best = np.where(valid, D, -np.inf).max(axis=1, initial=-np.inf)
    near = valid & (D >= best[:, None] - params.recurrence_margin)
    return np.array([len(np.unique(v[m])) for v, m in zip(V, near, strict=True)], np.int32)


def recall(
    index: SearchableLibrary,
    query: np.ndarray | QueryViews,
    params: RecallParams = RecallParams(),
) -> list[VideoFingerprints]:
    """Candidate videos for a query's (T, D) float32 embeddings (or its QueryViews): by
    votes best first, then by whole-video similarity, each video once. With several views
    (a mirrored one), each frame's k neighbours in every view vote, once per video with the
    best similarity; similarities are less the view's penalty."""
    return recall_recurring(index, query, params)[0]


def recall_recurring(
    index: SearchableLibrary,
    query: np.ndarray | QueryViews,
    params: RecallParams = RecallParams(),
    audio: np.ndarray | None = None,
) -> tuple[list[VideoFingerprints], np.ndarray]:
    """recall() and, from the same search, each query frame's recurrence (T,) int32. With
    the query's (V, A, 32) uint8 `audio` views, the videos its audio windows vote for
    join the candidates (recall_audio), each video once."""
    views = QueryViews.of(query)
    if index.ntotal == 0 or len(views) == 0:
        return [], np.zeros(len(views), np.int32)
    k = min(params.k, index.ntotal)
    found = [(*index.search(x, k), p) for x, p in views.views()]
    D = np.hstack([d - p[:, None] for d, _, p in found])
    I = np.hstack([i for _, i, _ in found])  # (T, V k): vote() counts a video once per frame
    keys = vote(D, video_keys(I), params)
    recurring = recurrence(D, video_keys(I), params)
    if params.video_candidates:
        means, penalty = views.mean_views()
        Dm, Km = index.search_means(means, min(params.video_candidates, index.video_count()))
        Dm = Dm - penalty[:, None]
        order = np.argsort(-Dm, axis=None, kind="stable")  # best of the views first
        near = Km.reshape(-1)[order][Dm.reshape(-1)[order] >= params.video_min_similarity]
        near = [key for key in dict.fromkeys(near.tolist()) if key >= 0 and key not in keys]
        keys += near[: params.video_candidates]
    if audio is not None:
        keys += [key for key in recall_audio(index, audio, params) if key not in keys]
    candidates = [index.candidate(key) for key in keys]
    return [c for c in candidates if c is not None], recurring


AUDIO_RECALL_PHASES = (0, 2)  # of rci.preprocess.audio_prints.HOP: a window at most 1 item off


def recall_audio(index: SearchableLibrary, views: np.ndarray, params: RecallParams) -> list[int]:
    """Video keys for a query's (V, A, 32) uint8 audio views (query_prints), ranked by the
    votes of its windows (vote()), at most params.audio_candidates of them."""
    windows = index.audio_count()
    if not params.audio_candidates or windows == 0 or views.shape[1] == 0:
        return []
    k = min(params.audio_k, windows)
    chosen = [v for v in range(len(views)) if v % HOP in AUDIO_RECALL_PHASES]
    found = [index.search_audio(views[v], k) for v in chosen]
    D = np.hstack([1.0 - 2.0 * d / (WINDOW_BYTES * 8) for d, _ in found])
    I = np.hstack([i for _, i in found])  # (A, V k): a window votes once per video
    audio = dataclasses.replace(
        params, min_similarity=params.audio_min_similarity, candidates=params.audio_candidates
    )
    return vote(D, video_keys(I), audio)


def check_audio_views(audio: np.ndarray | None, limit: int) -> np.ndarray | None:
    """A client's QUERY_AUDIO_PRINTS: None when absent, else (V, A, 32) uint8 with one view
    per tempo and phase and at most `limit` windows; RciError otherwise."""
    if audio is None:
        return None
    views = len(AudioPrintParams().tempos) * HOP
    if audio.dtype != np.uint8 or audio.ndim != 3 or audio.shape[::2] != (views, WINDOW_BYTES):
        raise RciError(
            f"QUERY_AUDIO_PRINTS must be ({views}, A, {WINDOW_BYTES}) uint8, got "
            f"{audio.dtype} {list(audio.shape)}"
        )
    if audio.shape[1] > limit:
        raise RciError(f"{audio.shape[1]} query audio windows; at most {limit}")
    return audio


def pack_candidates(
    candidates: list[VideoFingerprints],
    dim: int,
    libraries: list[str] | None = None,
    audio: bool = False,
) -> dict[str, np.ndarray]:
    """Candidates as padded tensors: CANDIDATE_IDS (N,) bytes, CANDIDATE_LIBRARIES (N,)
    bytes, CANDIDATE_EMBEDDINGS (N, L, dim) float32, CANDIDATE_TIMESTAMPS (N, L) float32,
    CANDIDATE_LENGTHS (N,) int32, and their audio fingerprints (with `audio`, else none):
    CANDIDATE_AUDIO (N, La, WINDOW_BYTES) uint8, CANDIDATE_AUDIO_TIMES (N, La) float32,
    CANDIDATE_AUDIO_LENGTHS (N,) int32, 0 for a video without."""
    labels = [""] * len(candidates) if libraries is None else libraries
    longest = max((len(c.embeddings) for c in candidates), default=0)
    embeddings = np.zeros((len(candidates), longest, dim), dtype=np.float32)
    timestamps = np.zeros((len(candidates), longest), dtype=np.float32)
    for n, c in enumerate(candidates):
        embeddings[n, : len(c.embeddings)] = c.embeddings
        timestamps[n, : len(c.timestamps)] = c.timestamps
    sounds = [c.audio if audio and c.audio is not None else None for c in candidates]
    lengths = [0 if a is None else len(a.times) for a in sounds]
    windows = np.zeros((len(candidates), max(lengths, default=0), WINDOW_BYTES), np.uint8)
    times = np.zeros(windows.shape[:2], np.float32)
    for n, a in enumerate(sounds):
        if a is not None and a.bits.shape[1] == WINDOW_BYTES:
            windows[n, : lengths[n]] = a.bits
            times[n, : lengths[n]] = a.times
        else:  # another fingerprint's windows: not comparable with the query's
            lengths[n] = 0
    return {
        "CANDIDATE_IDS": np.array([c.video_id.encode() for c in candidates], dtype=object),
        "CANDIDATE_LIBRARIES": np.array([lib.encode() for lib in labels], dtype=object),
        "CANDIDATE_EMBEDDINGS": embeddings,
        "CANDIDATE_TIMESTAMPS": timestamps,
        "CANDIDATE_LENGTHS": np.array([len(c.embeddings) for c in candidates], dtype=np.int32),
        "CANDIDATE_AUDIO": windows,
        "CANDIDATE_AUDIO_TIMES": times,
        "CANDIDATE_AUDIO_LENGTHS": np.array(lengths, dtype=np.int32),
    }


def unpack_candidates(tensors: dict[str, np.ndarray]) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """Inverse of pack_candidates: (video_id, embeddings (T, D), timestamps (T,)) per
    candidate. The tensors may come from any client: shapes, lengths, values are checked."""
    ids = tensors["CANDIDATE_IDS"].reshape(-1)
    libraries = tensors["CANDIDATE_LIBRARIES"].reshape(-1)
    lengths = tensors["CANDIDATE_LENGTHS"].reshape(-1)
    embeddings, times = tensors["CANDIDATE_EMBEDDINGS"], tensors["CANDIDATE_TIMESTAMPS"]
    n = len(ids)
    if embeddings.ndim != 3 or times.ndim != 2:
        raise RciError("CANDIDATE_EMBEDDINGS must be (N, L, D) and CANDIDATE_TIMESTAMPS (N, L)")
    if not (len(libraries) == len(lengths) == len(embeddings) == len(times) == n):
        raise RciError(
            f"candidate tensors disagree on the number of candidates: {n} ids, "
            f"{len(libraries)} libraries, {len(lengths)} lengths, {len(embeddings)} and "
            f"{len(times)} rows of embeddings and timestamps"
        )
    longest = embeddings.shape[1]
    if times.shape[1] != longest:
        raise RciError(f"CANDIDATE_TIMESTAMPS must be (N, {longest}), got {list(times.shape)}")
    if n and (lengths.min() < 1 or lengths.max() > longest):
        raise RciError(f"CANDIDATE_LENGTHS must lie in [1, {longest}], got {lengths.tolist()[:8]}")
    unpacked = []
    for row, (raw, length) in enumerate(zip(ids, lengths, strict=True)):
        emb = check_embeddings(embeddings[row, :length], f"CANDIDATE_EMBEDDINGS[{row}]")
        t = check_times(times[row, :length], int(length), f"CANDIDATE_TIMESTAMPS[{row}]")
        unpacked.append((_text(raw, "CANDIDATE_IDS"), emb, t))
    return unpacked


def candidate_libraries(tensors: dict[str, np.ndarray]) -> list[str]:
    """The library of each packed candidate, in CANDIDATE_IDS order."""
    return [_text(raw, "CANDIDATE_LIBRARIES") for raw in tensors["CANDIDATE_LIBRARIES"].reshape(-1)]


def unpack_candidate_audio(tensors: dict[str, np.ndarray], count: int) -> list[AudioPrints | None]:
    """The audio fingerprints pack_candidates packed, one per candidate (None for none), or
    all None when the tensors are absent; shapes, lengths and times are checked."""
    names = ("CANDIDATE_AUDIO", "CANDIDATE_AUDIO_TIMES", "CANDIDATE_AUDIO_LENGTHS")
    given = [tensors.get(name) for name in names]
    if all(x is None for x in given):
        return [None] * count
    if any(x is None for x in given):
        raise RciError(f"{', '.join(names)} come together or not at all")
    windows, times, lengths = given
    lengths = lengths.reshape(-1)
    if windows.dtype != np.uint8 or windows.ndim != 3 or windows.shape[2] != WINDOW_BYTES:
        raise RciError(
            f"CANDIDATE_AUDIO must be (N, La, {WINDOW_BYTES}) uint8, got {windows.dtype} "
            f"{list(windows.shape)}"
        )
    if times.shape != windows.shape[:2] or len(lengths) != count or len(windows) != count:
        raise RciError(
            f"candidate audio tensors must be ({count}, La, {WINDOW_BYTES}), ({count}, La) and "
            f"({count},), got {list(windows.shape)}, {list(times.shape)}, {list(lengths.shape)}"
        )
    if count and (lengths.min() < 0 or lengths.max() > windows.shape[1]):
        raise RciError(f"CANDIDATE_AUDIO_LENGTHS must lie in [0, {windows.shape[1]}]")
    sounds: list[AudioPrints | None] = []
    for row, length in enumerate(lengths.tolist()):
        t = check_times(times[row, :length], length, f"CANDIDATE_AUDIO_TIMES[{row}]")
        sounds.append(AudioPrints(AUDIO_PRINT, t, windows[row, :length]) if length else None)
    return sounds


def _text(raw, name: str) -> str:
    """One TYPE_STRING element as text; RciError when it is not UTF-8."""
    if not isinstance(raw, bytes):
        return str(raw)
    try:
        return raw.decode()
    except UnicodeDecodeError as exc:
        raise RciError(f"{name} holds a value that is not valid UTF-8") from exc
