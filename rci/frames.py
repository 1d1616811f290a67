"""Frame preparation for the descriptor: a per-video content box, crop, antialiased resize."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image

MODEL_SIZE = 224  # pixels, square descriptor input


@dataclass(frozen=True)
class BorderParams:
    """How flat a row or column must be to count as border. Intensities on a 0-255 scale."""

    max_std: float = 8.0  # spread of intensities along the line, in each frame of the window
    max_drift: float = 12.0  # change of the line's mean across the window
    window: int = 2  # frames either side that must agree (sampled at 1 fps: seconds)
    min_keep: float = 0.3  # never keep less than this fraction of a dimension


def _flat_lines(std: np.ndarray, mean: np.ndarray, params: BorderParams) -> np.ndarray:
    """(T, L) bool: lines uniform in every frame of their window and steady across it.

    std, mean: (T, L) per-frame statistics along each row (or column).
    """
    t = len(std)
    flat = np.empty(std.shape, dtype=bool)
    for f in range(t):
        lo, hi = max(0, f - params.window), min(t, f + params.window + 1)
        win_std, win_mean = std[lo:hi], mean[lo:hi]
        uniform = (win_std < params.max_std).all(axis=0)
        steady = (win_mean.max(axis=0) - win_mean.min(axis=0)) < params.max_drift
        flat[f] = uniform & steady
    return flat


def _keep_span(flat: np.ndarray, min_keep: float) -> tuple[int, int]:
    """[start, stop) after dropping flat lines at both ends; the whole span if too little is left."""
    n = len(flat)
    if flat.all():
        return 0, n
    start = int(np.argmin(flat))
    stop = n - int(np.argmin(flat[::-1]))
    if stop - start < min_keep * n:
        return 0, n
    return start, stop


def content_boxes(frames: np.ndarray, params: BorderParams = BorderParams()) -> np.ndarray:
    """(T, 4) int [x0, y0, x1, y1] pixel boxes that drop uniform bars around the content.

    frames: (T, H, W, 3) uint8. A row or column is border when it is flat (black, white or
    any single colour) in its frame and the `window` frames either side, so bars that come
    and go with an inserted clip are found while one dark frame is never cropped.
    """
    gray = frames.astype(np.float32).mean(axis=3)  # (T, H, W)
    rows = _flat_lines(gray.std(axis=2), gray.mean(axis=2), params)
    cols = _flat_lines(gray.std(axis=1), gray.mean(axis=1), params)
    boxes = np.empty((len(frames), 4), dtype=np.int64)
    for f in range(len(frames)):
        y0, y1 = _keep_span(rows[f], params.min_keep)
        x0, x1 = _keep_span(cols[f], params.min_keep)
        boxes[f] = (x0, y0, x1, y1)
    return boxes


def crop_resize(frames: np.ndarray, boxes: np.ndarray, size: int = MODEL_SIZE) -> np.ndarray:
    """(T, H, W, 3) uint8 -> (T, size, size, 3) uint8: crop each frame to its (T, 4) box,
    then a Pillow bicubic resize.

    Pillow widens its filter support by the scale factor when shrinking, so the resize is
    antialiased (the "Pillow-quality" resize the descriptor was trained with).
    """
    out = np.empty((len(frames), size, size, 3), dtype=np.uint8)
    for i, (frame, (x0, y0, x1, y1)) in enumerate(zip(frames, boxes)):
        image = Image.fromarray(frame[y0:y1, x0:x1])
        out[i] = np.asarray(image.resize((size, size), Image.Resampling.BICUBIC))
    return out
