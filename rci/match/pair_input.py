"""What the learned pair scorer (MatchLite: rci.match.matchlite, trained by rci.train) reads
of one (query, candidate) pair: maps on a grid of query x reference time, and a few numbers
the alignment found.

Maps (C, H, W), each cell the best over the frames it covers (a grid is at most MAX_SIDE a
side; longer videos put several frames in a cell):
    visual   the frames' similarity (normalized, best query view; rci.match.views)
    audio    the similarity of the audio windows nearest each cell's middle moment on either
             side (1 - 2 x bit errors / bits, best query tempo and phase), 0 where either
             side has no sound
    path     1 on the cell each grid row's middle moment maps to along a kept segment
             (visual, audio or both)
Side (F,): SIDE_FEATURES, in that order.
All of it is cheap at query time: matching has every input at hand.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rci.match.intervals import union_length
from rci.preprocess.audio_prints import unpack_signs

MAX_SIDE = 128  # cells per axis: 2 min of query at 1 fps, 4 min of reference at 0.5 fps
CHANNELS = ("visual", "audio", "path")
SIDE_FEATURES = (
    "score",  # the heuristic verdict's score (rci.match.verdict.decide)
    "visual_score",
    "audio_score",
    "support",  # the pictures' best agreement along an audio segment
    "query_covered",  # fraction of the query's duration the segments cover
    "ref_covered",  # ... of the reference's
    "query_minutes",  # log1p of the query's duration in minutes
    "ref_minutes",
    "query_sound",  # 1 when the query has audio windows, else 0
    "ref_sound",
    "segments",  # how many segments were kept, over 8
    "recurring",  # the query's frames' median recurrence in the library, over 10
)


@dataclass(frozen=True)
class PairGrid:
    """A pair's grid before its segments are known: maps (2, H, W) float32 (visual, audio)
    with each row's query time span and each column's reference span in seconds."""

    maps: np.ndarray  # (2, H, W) float32
    row_times: np.ndarray  # (H, 2) float32 seconds: first and last query frame of each row
    col_times: np.ndarray  # (W, 2) float32 seconds: first and last reference frame
    query_sound: bool
    ref_sound: bool
    query_seconds: float  # how long each video lasts, from its frame times
    ref_seconds: float

    def __post_init__(self) -> None:
        _, h, w = self.maps.shape
        if self.maps.shape[0] != 2 or self.row_times.shape != (h, 2):
            raise ValueError(f"maps must be (2, H, W) with row_times (H, 2), got {self}")
        if self.col_times.shape != (w, 2):
            raise ValueError(f"col_times must be ({w}, 2), got {self.col_times.shape}")


@dataclass(frozen=True)
class PairInput:
    """The scorer's input: maps (len(CHANNELS), H, W) float32, side (len(SIDE_FEATURES),)."""

    maps: np.ndarray
    side: np.ndarray

    def __post_init__(self) -> None:
        if self.maps.ndim != 3 or self.maps.shape[0] != len(CHANNELS):
            raise ValueError(f"maps must be ({len(CHANNELS)}, H, W), got {self.maps.shape}")
        if self.side.shape != (len(SIDE_FEATURES),):
            raise ValueError(f"side must be ({len(SIDE_FEATURES)},), got {self.side.shape}")


def grid_cells(count: int) -> np.ndarray:
    """(count,) the cell of each of count frames: consecutive runs, at most MAX_SIDE cells."""
    per = max(1, -(-count // MAX_SIDE))
    return np.arange(count) // per


def _binned_max(S: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    out = np.maximum.reduceat(S, np.flatnonzero(np.r_[True, rows[1:] != rows[:-1]]), axis=0)
    return np.maximum.reduceat(out, np.flatnonzero(np.r_[True, cols[1:] != cols[:-1]]), axis=1)


def _spans(times: np.ndarray, cells: np.ndarray) -> np.ndarray:
    starts = np.flatnonzero(np.r_[True, cells[1:] != cells[:-1]])
    stops = np.r_[starts[1:], len(times)] - 1
    return np.stack([times[starts], times[stops]], axis=1).astype(np.float32)


def _nearest(times: np.ndarray, at: np.ndarray) -> np.ndarray:
    right = np.clip(np.searchsorted(times, at), 0, len(times) - 1)
    left = np.maximum(right - 1, 0)
    return np.where(np.abs(at - times[left]) <= np.abs(times[right] - at), left, right)


def pair_grid(
    S: np.ndarray,
    query_times: np.ndarray,
    ref_times: np.ndarray,
    query_audio: np.ndarray | None = None,
    query_audio_times: np.ndarray | None = None,
    ref_audio: np.ndarray | None = None,
    ref_audio_times: np.ndarray | None = None,
) -> PairGrid:
    """The grid of a (Tq, Tr) similarity matrix S at query_times (Tq,) and ref_times (Tr,)
    seconds, with the audio: query (V, A, B) uint8 views at (A,) s, reference (R, B) uint8
    windows at (R,) s (None or empty: no sound). Tq and Tr must be at least 1."""
    tq, tr = S.shape
    if tq == 0 or tr == 0:
        raise ValueError(f"a pair grid needs a frame on each side, got {S.shape}")
    rows, cols = grid_cells(tq), grid_cells(tr)
    visual = _binned_max(S.astype(np.float32), rows, cols)
    row_times, col_times = _spans(query_times, rows), _spans(ref_times, cols)
    audio = np.zeros_like(visual)
    query_sound = query_audio is not None and query_audio.shape[1] > 0
    ref_sound = ref_audio is not None and len(ref_audio) > 0
    if query_sound and ref_sound:
        # The windows nearest each cell's middle moment: cells are 1-2 s, windows 0.5 s apart.
        iq = _nearest(query_audio_times, row_times.mean(axis=1))
        ir = _nearest(ref_audio_times, col_times.mean(axis=1))
        q = unpack_signs(query_audio[:, iq])  # (V, H, bits)
        r = unpack_signs(ref_audio[ir])  # (W, bits)
        audio = np.max(q @ r.T, axis=0).astype(np.float32)
    return PairGrid(
        np.stack([visual, audio]),
        row_times,
        col_times,
        query_sound,
        ref_sound,
        _extent(query_times),
        _extent(ref_times),
    )


def _extent(times: np.ndarray) -> float:
    """Seconds a video's frames at `times` stand for: its last time plus one frame period."""
    period = float(np.median(np.diff(times))) if len(times) > 1 else 1.0
    return float(times[-1]) + period


def path_map(grid: PairGrid, segments) -> np.ndarray:
    """(H, W) float32: along each segment (its query span mapped linearly to its reference
    span), 1 on the cell each of its rows' middle moment maps to."""
    h, w = grid.maps.shape[1:]
    out = np.zeros((h, w), np.float32)
    row_mid = grid.row_times.mean(axis=1)
    for seg in segments:
        inside = np.flatnonzero((row_mid >= seg.query_start) & (row_mid < seg.query_end))
        if not len(inside):  # a segment shorter than a cell still marks its cell
            inside = _nearest(row_mid, np.array([seg.query_start]))
        rate = (seg.ref_end - seg.ref_start) / max(seg.query_end - seg.query_start, 1e-6)
        mapped = seg.ref_start + (row_mid[inside] - seg.query_start) * rate
        out[inside, _nearest(grid.col_times.mean(axis=1), mapped)] = 1.0
    return out


def pair_input(grid: PairGrid, match, recurring: float = 0.0) -> PairInput:
    """The scorer's input for a decided match (rci.match.verdict.Match) on its grid;
    `recurring` is the median recurrence of the query's frames (0: unknown)."""
    segments = match.segments
    query_duration, ref_duration = grid.query_seconds, grid.ref_seconds
    query_spans = union_length([(s.query_start, s.query_end) for s in segments])
    ref_spans = union_length([(s.ref_start, s.ref_end) for s in segments])
    side = np.array(
        [
            match.score,
            match.visual_score,
            match.audio_score,
            max((s.support for s in segments), default=0.0),
            min(1.0, query_spans / max(query_duration, 1e-6)),
            min(1.0, ref_spans / max(ref_duration, 1e-6)),
            np.log1p(max(query_duration, 0.0) / 60.0),
            np.log1p(max(ref_duration, 0.0) / 60.0),
            float(grid.query_sound),
            float(grid.ref_sound),
            len(segments) / 8.0,
            recurring / 10.0,
        ],
        dtype=np.float32,
    )
    maps = np.concatenate([grid.maps, path_map(grid, segments)[None]])
    return PairInput(np.nan_to_num(maps, copy=False), np.nan_to_num(side))


def stack_inputs(inputs: list[PairInput]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pairs as one batch: MAPS (N, C, H, W) float32 zero-padded to the largest, MASK
    (N, 1, H, W) float32 (1 on each pair's own cells), SIDE (N, F) float32."""
    n = len(inputs)
    h = max((p.maps.shape[1] for p in inputs), default=1)
    w = max((p.maps.shape[2] for p in inputs), default=1)
    maps = np.zeros((n, len(CHANNELS), h, w), np.float32)
    mask = np.zeros((n, 1, h, w), np.float32)
    for k, p in enumerate(inputs):
        _, ph, pw = p.maps.shape
        maps[k, :, :ph, :pw] = p.maps
        mask[k, :, :ph, :pw] = 1.0
    side = np.stack([p.side for p in inputs]) if n else np.zeros((0, len(SIDE_FEATURES)))
    return maps, mask, side.astype(np.float32)


EMPTY_GRID = PairGrid(
    np.zeros((2, 1, 1), np.float32), np.zeros((1, 2), np.float32), np.zeros((1, 2), np.float32),
    False, False, 0.0, 0.0,
)  # fmt: skip  # a pair with no frame on one side: nothing to see


def match_inputs(
    matches: list, query_times: np.ndarray, recurrence: np.ndarray | None = None
) -> list[PairInput]:
    """The scorer's input for each decided match (rci.match.verdict.Match), in order; the
    query's frames at query_times (T,) s, each held by recurrence (T,) library videos."""
    out = []
    for m in matches:
        recurring = 0.0
        if recurrence is not None and len(recurrence):
            inside = np.zeros(len(query_times), bool)
            for s in m.segments:
                inside |= (query_times >= s.query_start) & (query_times < s.query_end)
            recurring = float(np.median(recurrence[inside])) if inside.any() else 0.0
        out.append(pair_input(m.grid if m.grid is not None else EMPTY_GRID, m, recurring))
    return out


def pack_inputs(inputs: list[PairInput]) -> dict[str, np.ndarray]:
    """PAIR_MAPS (N, C, H, W), PAIR_MASK (N, 1, H, W), PAIR_SIDE (N, F) float32 tensors."""
    maps, mask, side = stack_inputs(inputs)
    return {"PAIR_MAPS": maps, "PAIR_MASK": mask, "PAIR_SIDE": side}
