"""Match, step 2 for sound: the query's audio views aligned with one candidate's audio
fingerprints, giving the segments where they play the same audio.

Each query window is read at every tempo and phase (rci.preprocess.audio_prints); its
nodes are the candidate's windows nearest to any of those views (faiss binary search,
similarity 1 - 2 x bit errors / bits), the best view each. The same temporal network as
the pictures' (rci.match.alignment.align_nodes) then links them into segments, which
survive tempo changes within the views' range and cuts.
"""

from __future__ import annotations

import faiss
import numpy as np

from rci.match.alignment import AlignParams, Segment, align_nodes
from rci.preprocess.audio_prints import HOP, ITEM_SECONDS, WINDOW_BYTES, WINDOW_SECONDS

WINDOW_PERIOD = HOP * ITEM_SECONDS  # seconds between a video's audio windows


def audio_nodes(
    views: np.ndarray, ref: np.ndarray, params: AlignParams
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(i, j, s) sorted by (i, j): each query window i's params.node_k nearest reference
    windows j over its (V, A, B) uint8 views, the best similarity s of each pair, those at
    or above params.min_similarity. ref: (R, B) uint8."""
    count, windows, width = views.shape
    if windows == 0 or len(ref) == 0:
        empty = np.zeros(0, np.int64)
        return empty, empty, np.zeros(0, np.float32)
    index = faiss.IndexBinaryFlat(width * 8)
    index.add(np.ascontiguousarray(ref))
    k = min(params.node_k, len(ref))
    D, I = index.search(np.ascontiguousarray(views.reshape(-1, width)), k)
    sim = 1.0 - 2.0 * D.astype(np.float32) / (width * 8)
    # (A, V k): every view's neighbours of a window side by side
    sim = sim.reshape(count, windows, k).transpose(1, 0, 2).reshape(windows, -1)
    col = I.reshape(count, windows, k).transpose(1, 0, 2).reshape(windows, -1)
    row = np.repeat(np.arange(windows), sim.shape[1])
    sim, col = sim.reshape(-1), col.reshape(-1)
    keep = (col >= 0) & (sim >= params.min_similarity)
    row, col, sim = row[keep], col[keep], sim[keep]
    # Best view per (window, reference window), then the node_k best per window.
    order = np.lexsort((-sim, col, row))
    row, col, sim = row[order], col[order], sim[order]
    first = np.ones(len(row), dtype=bool)
    first[1:] = (row[1:] != row[:-1]) | (col[1:] != col[:-1])
    row, col, sim = row[first], col[first], sim[first]
    order = np.lexsort((-sim, row))
    row, col, sim = row[order], col[order], sim[order]
    starts = np.searchsorted(row, row, side="left")
    top = np.arange(len(row)) - starts < params.node_k
    row, col, sim = row[top], col[top], sim[top]
    order = np.lexsort((col, row))
    return row[order], col[order], sim[order]


def align_audio(
    views: np.ndarray,
    query_times: np.ndarray,
    ref: np.ndarray,
    ref_times: np.ndarray,
    params: AlignParams,
) -> list[Segment]:
    """Segments where a query's (V, A, WINDOW_BYTES) uint8 audio views, windows at
    query_times (A,) s, play a candidate's (R, WINDOW_BYTES) windows at ref_times (R,) s;
    each segment's score is its windows' mean similarity, best first."""
    if views.shape[-1] != WINDOW_BYTES or ref.shape[-1] != WINDOW_BYTES:
        raise ValueError(f"audio windows must be {WINDOW_BYTES} bytes")
    i, j, s = audio_nodes(views, ref, params)
    if not len(s):
        return []
    shape = (views.shape[1], len(ref))
    # A segment ends where its last window's audio does (WINDOW_SECONDS after its start).
    return align_nodes(i, j, s, query_times, ref_times, params, WINDOW_SECONDS, shape)
