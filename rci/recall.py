"""Stage 1: per-query-frame nearest neighbours vote for library videos."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rci.library import LibraryIndex, VideoFingerprints


@dataclass(frozen=True)
class RecallParams:
    """k is per query frame; `candidates` videos go on to alignment."""

    k: int = 10
    candidates: int = 5
    min_similarity: float = 0.2  # neighbours below this cosine cast no vote

    def __post_init__(self) -> None:
        if self.k < 1 or self.candidates < 1:
            raise ValueError(f"k and candidates must be >= 1, got {self.k}, {self.candidates}")


def vote(D: np.ndarray, I: np.ndarray, row_video: np.ndarray, params: RecallParams) -> list[int]:
    """Video numbers ranked by votes, at most params.candidates of them.

    D, I: (nq, k) similarities and index rows (-1 = none). Each query frame gives one vote
    to every video among its neighbours at or above min_similarity; ties are broken by the
    sum over query frames of the best similarity to that video.
    """
    valid = (I >= 0) & (D >= params.min_similarity)
    if not valid.any():
        return []
    frame = np.nonzero(valid)[0]
    video = row_video[I[valid]]
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
    return ranked[: params.candidates].tolist()


def recall(
    index: LibraryIndex, embeddings: np.ndarray, params: RecallParams = RecallParams()
) -> list[VideoFingerprints]:
    """Candidate videos for a query's (T, D) float32 embeddings, best first."""
    if index.index.ntotal == 0 or len(embeddings) == 0:
        return []
    D, I = index.search(embeddings, min(params.k, index.index.ntotal))
    return [index.video(v) for v in vote(D, I, index.row_video, params)]


def pack_candidates(candidates: list[VideoFingerprints], dim: int) -> dict[str, np.ndarray]:
    """Candidates as padded tensors: CANDIDATE_IDS (N,) bytes, CANDIDATE_EMBEDDINGS
    (N, L, dim) float32, CANDIDATE_TIMESTAMPS (N, L) float32, CANDIDATE_LENGTHS (N,) int32."""
    longest = max((len(c.embeddings) for c in candidates), default=0)
    embeddings = np.zeros((len(candidates), longest, dim), dtype=np.float32)
    timestamps = np.zeros((len(candidates), longest), dtype=np.float32)
    for n, c in enumerate(candidates):
        embeddings[n, : len(c.embeddings)] = c.embeddings
        timestamps[n, : len(c.timestamps)] = c.timestamps
    return {
        "CANDIDATE_IDS": np.array([c.video_id.encode() for c in candidates], dtype=object),
        "CANDIDATE_EMBEDDINGS": embeddings,
        "CANDIDATE_TIMESTAMPS": timestamps,
        "CANDIDATE_LENGTHS": np.array([len(c.embeddings) for c in candidates], dtype=np.int32),
    }


def unpack_candidates(tensors: dict[str, np.ndarray]) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """Inverse of pack_candidates: (video_id, embeddings (T, D), timestamps (T,)) per candidate."""
    ids = tensors["CANDIDATE_IDS"].reshape(-1)
    lengths = tensors["CANDIDATE_LENGTHS"].reshape(-1)
    return [
        (
            raw.decode() if isinstance(raw, bytes) else str(raw),
            tensors["CANDIDATE_EMBEDDINGS"][n, :length],
            tensors["CANDIDATE_TIMESTAMPS"][n, :length],
        )
        for n, (raw, length) in enumerate(zip(ids, lengths, strict=True))
    ]
