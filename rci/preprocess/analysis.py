"""What the inset and blur-padding searches share: the small grey picture they examine, and
the per-frame median of the boxes they find."""

from __future__ import annotations

import numpy as np
from PIL import Image

ANALYSIS_WIDTH = 320  # pixels: frames are examined at this width (height keeps the aspect)


def analysis_grey(frames: np.ndarray) -> np.ndarray:
    """(T, H, W, 3) uint8 -> (T, h, w) float32 grey, area-averaged to ANALYSIS_WIDTH; the
    inset and blur-padding searches share it."""
    _, h, w, _ = frames.shape
    width = min(ANALYSIS_WIDTH, w)  # never upsampled: replicated pixels would fake edges
    size = (width, max(2, round(h * width / w)))
    grey = [
        np.asarray(Image.fromarray(f).convert("L").resize(size, Image.Resampling.BOX))
        for f in frames
    ]
    return np.stack(grey).astype(np.float32)


def window_median(
    found: np.ndarray, base: np.ndarray, window: int, scale: np.ndarray
) -> list[tuple | None]:
    """Per frame, the coordinate-wise median of the (T, 4) analysis-pixel boxes within
    `window` frames of it (the base box where nothing was found), scaled to frame pixels;
    None where nothing was found nearby or the median is the frame's base box. A side
    missed in one window does not flicker the crop, and a cut between an inserted clip and
    its host stays sharp."""
    hits = (found != base).any(axis=1)
    out: list[tuple | None] = []
    for f in range(len(found)):
        lo, hi = max(0, f - window), min(len(found), f + window + 1)
        # An odd count (the farther end dropped near the video's ends): an even one would
        # average a found box with the base into a crop between them.
        if (hi - lo) % 2 == 0:
            lo, hi = (lo, hi - 1) if f - lo < hi - 1 - f else (lo + 1, hi)
        near = slice(lo, hi)
        box = np.median(found[near], axis=0)
        if not hits[near].any() or np.array_equal(box, base[f]):
            out.append(None)
        else:
            out.append(tuple(int(v) for v in np.round(box * scale)))
    return out
