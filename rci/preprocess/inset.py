"""Find a picture set into the frame: a template, a video-player page, picture-in-picture,
blur-filled padding. Its sides are straight edges that stay put while the picture inside
changes, so the evidence is edges that persist over a few sampled frames, joined into the
rectangle best supported on every side that lies inside the frame."""

from __future__ import annotations

import functools
import itertools
from dataclasses import dataclass

import numpy as np

from rci.preprocess.analysis import analysis_grey, window_median

GAP = 3  # pixels between a line and the parallel lines it must stand out from


@dataclass(frozen=True)
class InsetParams:
    """Thresholds, on 0-255 grey at ANALYSIS_WIDTH; lengths as fractions of the frame."""

    window: int = 2  # sampled frames each side of a frame that must show the same edges
    edge: float = 8.0  # step in grey between neighbouring pixels that counts as an edge
    persist: float = 0.6  # fraction of the window's frames an edge pixel must be in
    min_side: float = 0.2  # a candidate line spans at least this much of the frame
    support: float = 0.6  # fraction of an inner side that must lie on a persistent edge
    contrast: float = 0.3  # ... more than on the emptier of the lines GAP pixels either side
    min_area: float = 0.08  # smallest inset, as a fraction of the frame
    max_area: float = 0.9  # larger rectangles are left to border removal
    candidates: int = 12  # strongest lines kept per axis
    min_inner: int = 3  # inner sides (not on the frame's edge), or 2 opposite ones (a band)
    band_area: float = 0.25  # a band is at least this much of the frame ...
    band_offset: float = 0.1  # ... and its margins differ by at most this much of the width
    # Mean change of a pixel between sampled frames (grey levels) below which a window is a
    # still: then real lines (buildings) persist like a frame's would, so it tells nothing.
    min_motion: float = 1.0
    # A rectangle found elsewhere in the video is kept in a window where each inner side
    # still lies on persistent edges along this fraction of its length (finding needs
    # `support` and `contrast`; keeping it, less: the picture in the inset may match its
    # surroundings for a while).
    keep_support: float = 0.4
    keep_min_windows: int = 3  # ... once exactly that rectangle was found in this many windows


# Paeth's exchange network for the median of 9 (Graphics Gems, 1990): after these 19
# min/max pairs, item 4 holds the median.
_MEDIAN_OF_9 = (
    (1, 2), (4, 5), (7, 8), (0, 1), (3, 4), (6, 7), (1, 2), (4, 5), (7, 8), (0, 3),
    (5, 8), (4, 7), (3, 6), (1, 4), (2, 5), (4, 7), (4, 2), (6, 4), (4, 2),
)  # fmt: skip


def _denoised(grey: np.ndarray) -> np.ndarray:
    """A 3x3 median per frame: keeps a boundary's step and drops grain and noise, whose
    edges would otherwise be everywhere. scipy's median_filter (edges reflected) by an
    exchange network over shifted copies: the same values, ten times faster."""
    _, h, w = grey.shape
    out = np.empty_like(grey)
    for f, frame in enumerate(grey):  # a frame at a time stays in cache
        padded = np.pad(frame, 1, mode="edge")  # = reflected, one pixel out
        v = [padded[i : i + h, j : j + w] for i in range(3) for j in range(3)]
        for a, b in _MEDIAN_OF_9:
            v[a], v[b] = np.minimum(v[a], v[b]), np.maximum(v[a], v[b])
        out[f] = v[4]
    return out


def _within(mask: np.ndarray, axis: int, reach: int, every: bool) -> np.ndarray:
    """Whether any (or with `every`, all) of the pixels within `reach` along `axis` are set;
    outside the array counts as unset."""
    n = mask.shape[axis]
    pad = [(0, 0)] * mask.ndim
    pad[axis] = (reach, reach)
    padded = np.pad(mask, pad)
    out = np.ones_like(mask) if every else np.zeros_like(mask)
    for k in range(2 * reach + 1):
        part = padded[(slice(None),) * axis + (slice(k, k + n),)]
        out = (out & part) if every else (out | part)
    return out


def _close_along(edge: np.ndarray, across: int) -> np.ndarray:
    """Close gaps of up to 4 pixels along lines (a boundary between two pictures fades
    where their colours meet). scipy's binary_closing with a 5-pixel line, by shifted ORs
    then ANDs: the same pixels, ten times faster."""
    axis = 0 if across == 1 else 1
    return _within(_within(edge, axis, 2, every=False), axis, 2, every=True)


def _thin(edge: np.ndarray, axis: int, gap: int = GAP) -> np.ndarray:
    """Drop edge pixels with edges `gap` pixels away on both sides across the line: texture
    and noise, not a line."""
    before = np.roll(edge, gap, axis=axis)
    after = np.roll(edge, -gap, axis=axis)
    return edge & ~(before & after)


def _runs_prefix(mask: np.ndarray, axis: int) -> np.ndarray:
    """Cumulative count of True along `axis` with a leading zero: any segment's count in
    O(1)."""
    counts = np.cumsum(mask, axis=axis, dtype=np.int32)
    pad = [(0, 0)] * mask.ndim
    pad[axis] = (1, 0)
    return np.pad(counts, pad)


def _longest_run(mask: np.ndarray) -> np.ndarray:
    """(L, N) bool -> (N,) the longest run of True along axis 0 of each column."""
    if len(mask) == 0:
        return np.zeros(mask.shape[1], dtype=np.int32)
    # The count of True so far, less its value at the last False: the run ending here.
    counts = np.cumsum(mask, axis=0, dtype=np.int32)
    at_last_false = np.maximum.accumulate(np.where(mask, 0, counts), axis=0)
    return (counts - at_last_false).max(axis=0)


def _candidates(run: np.ndarray, length: int, params: InsetParams) -> list[int]:
    """Positions whose longest persistent run spans min_side of `length`, strongest first,
    one per neighbourhood (a blurry line is one line)."""
    order = np.argsort(-run, kind="stable")
    chosen: list[int] = []
    for pos in order:
        if run[pos] < params.min_side * length or len(chosen) >= params.candidates:
            break
        if all(abs(int(pos) - c) > 2 for c in chosen):
            chosen.append(int(pos))
    return chosen


def _edge_hits(grey: np.ndarray, params: InsetParams) -> tuple[np.ndarray, np.ndarray]:
    """(T, h, w) grey -> per frame, where the step to the next pixel is an edge: (T, h, w-1)
    across columns (vertical lines at x = i + 1) and (T, h-1, w) across rows."""
    col = np.abs(np.diff(grey, axis=2)) >= params.edge
    row = np.abs(np.diff(grey, axis=1)) >= params.edge
    return col, row


def _motion(grey: np.ndarray) -> np.ndarray:
    """(T, h, w) grey -> (T-1,) mean change of a pixel from each frame to the next."""
    return np.abs(np.diff(grey, axis=0)).mean(axis=(1, 2))


def find_inset(
    grey: np.ndarray, params: InsetParams = InsetParams(), bounds: tuple | None = None
) -> tuple | None:
    """(T, h, w) float32 grey frames of one window -> (x0, y0, x1, y1) analysis pixels of the
    inset, or None when no rectangle is supported on all its inner sides. `bounds` (x0, y0,
    x1, y1), where bars were found, stands for the frame: its sides need no support."""
    col, row = _edge_hits(grey, params)
    return _search(col, row, _motion(grey), params, bounds)


def _search(
    col_hits: np.ndarray,
    row_hits: np.ndarray,
    motion: np.ndarray,
    params: InsetParams,
    bounds: tuple | None,
) -> tuple | None:
    """find_inset() on one window's edge hits and frame-to-frame motion."""
    t, h = col_hits.shape[:2]
    w = row_hits.shape[2]
    bx0, by0, bx1, by1 = bounds or (0, 0, w, h)
    if t < 2 or motion.mean() < params.min_motion:
        return None
    # Edges that persist over the window: col (h, w-1) are vertical lines at x = i + 1,
    # row (h-1, w) horizontal lines at y = i + 1.
    col = _close_along(col_hits.mean(axis=0) >= params.persist, across=1)
    row = _close_along(row_hits.mean(axis=0) >= params.persist, across=0)
    # Candidates: long runs of line pixels (texture thinned out, the gaps it leaves closed).
    xs = [x + 1 for x in _candidates(_longest_run(_close_along(_thin(col, 1), 1)), h, params)]
    ys = [y + 1 for y in _candidates(_longest_run(_close_along(_thin(row, 0), 0).T), w, params)]
    if not xs and not ys:
        return None
    col_sum = _runs_prefix(col, axis=0)  # (h+1, w-1): counts down each column
    row_sum = _runs_prefix(row.T, axis=0)  # (w+1, h-1): counts along each row

    def line(sums: np.ndarray, i: int, lo: int, hi: int, size: int) -> tuple[float, float]:
        """(share of persistent edge pixels, its excess over the emptier parallel line GAP
        pixels away) for the edge index i from lo to hi."""

        def share(k: int) -> float:
            inside = 0 <= k < size - 1
            return (sums[hi, k] - sums[lo, k]) / max(1, hi - lo) if inside else 0.0

        return share(i), share(i) - min(share(i - GAP), share(i + GAP))

    def side(sums: np.ndarray, pos: int, lo: int, hi: int, size: int) -> float:
        """How well the line at `pos` (from `lo` to `hi`) is supported: 1 on the frame's
        edge, else its share of persistent edge pixels (an edge may sit a pixel either side
        of the boundary), 0 unless it stands out from the lines beside it by `contrast`
        (a line, not texture)."""
        if pos in free[sums is col_sum]:
            return 1.0
        scores = [line(sums, i, lo, hi, size) for i in (pos - 2, pos - 1, pos)]
        return max((s for s, c in scores if c >= params.contrast), default=0.0)

    def snap(sums: np.ndarray, pos: int, lo: int, hi: int, size: int) -> int:
        """The boundary within 3 pixels of `pos` whose line stands out most (candidates are
        one per neighbourhood, and texture beside a boundary can win its neighbourhood)."""
        if pos in free[sums is col_sum]:
            return pos
        near = range(max(1, pos - 3), min(size - 1, pos + 3) + 1)
        return max(near, key=lambda b: line(sums, b - 1, lo, hi, size)[1])

    @functools.cache
    def supported(vertical: bool, pos: int, lo: int, hi: int) -> float:
        """side(), once per distinct side: rectangles share most of theirs."""
        return side(col_sum, pos, lo, hi, w) if vertical else side(row_sum, pos, lo, hi, h)

    best, best_key = None, None
    free = {True: (bx0, bx1), False: (by0, by1)}  # keyed by "is a vertical side"
    xs_all = sorted({x for x in xs if bx0 + 2 < x < bx1 - 2} | {bx0, bx1})
    ys_all = sorted({y for y in ys if by0 + 2 < y < by1 - 2} | {by0, by1})
    bw, bh = bx1 - bx0, by1 - by0
    for (x0, x1), (y0, y1) in itertools.product(
        itertools.combinations(xs_all, 2), itertools.combinations(ys_all, 2)
    ):
        area = (x1 - x0) * (y1 - y0) / (bw * bh)
        inner = (x0 > bx0) + (x1 < bx1) + (y0 > by0) + (y1 < by1)
        # Two opposite inner sides: a band, accepted when centred and wide enough to be the
        # picture (a letterbox of bars that are not flat).
        band = (
            inner == 2
            and (x0 > bx0) == (x1 < bx1)
            and abs(x0 - bx0 - (bx1 - x1)) + abs(y0 - by0 - (by1 - y1)) <= params.band_offset * bw
            and area >= params.band_area
        )
        if (inner < params.min_inner and not band) or not (
            params.min_area <= area <= params.max_area
        ):
            continue
        sides = []
        for args in ((True, x0, y0, y1), (True, x1, y0, y1),
                     (False, y0, x0, x1), (False, y1, x0, x1)):  # fmt: skip
            sides.append(supported(*args))
            if sides[-1] < params.support:
                break
        if min(sides) < params.support:
            continue
        # Most inner sides first (a rectangle closed on all sides beats a band cut by one
        # line), then the best support, then the larger.
        key = (inner, round(float(np.mean(sides)), 2), area)
        if best_key is None or key > best_key:
            best, best_key = (x0, y0, x1, y1), key
    if best is None:
        return None
    x0, y0, x1, y1 = best
    return (
        snap(col_sum, x0, y0, y1, w), snap(row_sum, y0, x0, x1, h),
        snap(col_sum, x1, y0, y1, w), snap(row_sum, y1, x0, x1, h),
    )  # fmt: skip


def inset_boxes(
    frames: np.ndarray,
    params: InsetParams = InsetParams(),
    bounds: np.ndarray | None = None,
    grey: np.ndarray | None = None,
) -> list[tuple | None]:
    """(T, H, W, 3) uint8 -> per frame an inset box (x0, y0, x1, y1) in the frames' pixels,
    or None. `bounds` (T, 4) pixel boxes inside bars, if any, stand for each frame. Each
    frame's search sees the frames within `window` of it; the answers are then
    median-filtered over the same window (a side missed in one window does not flicker the
    crop, and a cut stays sharp). `grey`: analysis_grey(frames), if already computed."""
    t, h, w, _ = frames.shape
    grey = _denoised(analysis_grey(frames) if grey is None else grey)
    # Once per video: each frame is in up to 2 * window + 1 windows.
    col_hits, row_hits = _edge_hits(grey, params)
    motion = _motion(grey)
    scale = np.array([w / grey.shape[2], h / grey.shape[1]] * 2)
    whole = np.array([0, 0, grey.shape[2], grey.shape[1]])
    base = np.tile(whole, (t, 1)) if bounds is None else np.round(bounds / scale).astype(int)
    found = np.empty((t, 4))
    for f in range(t):
        lo, hi = max(0, f - params.window), min(t, f + params.window + 1)
        box = _search(
            col_hits[lo:hi], row_hits[lo:hi], motion[lo : hi - 1], params,
            tuple(int(v) for v in base[f]),
        )  # fmt: skip
        found[f] = base[f] if box is None else box
    _keep_found(found, base, col_hits, row_hits, params)
    return window_median(found, base, params.window, scale)


def _keep_found(
    found: np.ndarray,
    base: np.ndarray,
    col_hits: np.ndarray,
    row_hits: np.ndarray,
    params: InsetParams,
) -> None:
    """Where a window found nothing, put the video's most often found rectangle (found in at
    least keep_min_windows windows) if its inner sides still lie on persistent edges there
    (`keep_support`), in place in `found`."""
    hits = (found != base).any(axis=1)
    if not hits.any():
        return
    boxes, counts = np.unique(found[hits].astype(int), axis=0, return_counts=True)
    if counts.max() < params.keep_min_windows:
        return  # a rectangle seen once or twice is as likely a coincidence of lines
    x0, y0, x1, y1 = boxes[int(np.argmax(counts))]
    t = len(found)
    for f in np.flatnonzero(~hits):
        bx0, by0, bx1, by1 = base[f]
        if not (bx0 <= x0 < x1 <= bx1 and by0 <= y0 < y1 <= by1):
            continue
        lo, hi = max(0, f - params.window), min(t, f + params.window + 1)
        col = col_hits[lo:hi].mean(axis=0) >= params.persist  # (h, w-1): line at x = i + 1
        row = row_hits[lo:hi].mean(axis=0) >= params.persist  # (h-1, w): line at y = i + 1
        sides = []
        for x in (x0, x1):
            if bx0 < x < bx1:  # an edge may sit a pixel either side of the boundary
                near = [i for i in (x - 2, x - 1, x) if 0 <= i < col.shape[1]]
                sides.append(max(col[y0:y1, i].mean() for i in near))
        for y in (y0, y1):
            if by0 < y < by1:
                near = [i for i in (y - 2, y - 1, y) if 0 <= i < row.shape[0]]
                sides.append(max(row[i, x0:x1].mean() for i in near))
        if sides and min(sides) >= params.keep_support:
            found[f] = (x0, y0, x1, y1)
