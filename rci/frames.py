"""Frame preparation for the descriptor: each frame's content box (black or white bars
removed, then an inset picture found), crop, antialiased resize."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image

from rci.blurpad import BlurPadParams, blur_pad_boxes
from rci.inset import InsetParams, analysis_grey, inset_boxes

MODEL_SIZE = 224  # pixels, square descriptor input


@dataclass(frozen=True)
class BorderParams:
    """How flat a row or column must be to count as border. Intensities on a 0-255 scale."""

    max_std: float = 8.0  # spread of intensities along the line within one frame
    max_drift: float = 12.0  # change of the line's mean from one sampled frame to the next
    # Bars are black or white: a flat line of any other colour is more often content (sky,
    # a wall, flat artwork); coloured frames are found as insets.
    dark: float = 40.0  # a bar line's mean is at most this ...
    bright: float = 215.0  # ... or at least this
    min_run: int = 3  # consecutive sampled frames (seconds at 1 fps) a bar must last
    min_keep: float = 0.3  # never keep less than this fraction of a dimension


def _flat_lines(std: np.ndarray, mean: np.ndarray, params: BorderParams) -> np.ndarray:
    """(T, L) bool: lines that are uniform in a run of >= min_run frames with a steady mean.

    std, mean: (T, L) per-frame statistics along each row (or column). Runs rather than a
    centred window, so the first and last frames of an inserted letterboxed clip count too.
    """
    uniform = (std < params.max_std) & ((mean <= params.dark) | (mean >= params.bright))
    joins = np.zeros_like(uniform)
    joins[1:] = uniform[1:] & uniform[:-1] & (np.abs(mean[1:] - mean[:-1]) < params.max_drift)
    forward = np.zeros(uniform.shape, dtype=np.int32)
    backward = np.zeros(uniform.shape, dtype=np.int32)
    t = len(uniform)
    forward[0], backward[t - 1] = uniform[0], uniform[t - 1]
    for f in range(1, t):
        forward[f] = np.where(joins[f], forward[f - 1] + 1, uniform[f])
    for f in range(t - 2, -1, -1):
        backward[f] = np.where(joins[f + 1], backward[f + 1] + 1, uniform[f])
    # A video shorter than min_run frames needs its bars in all of its frames.
    return uniform & (forward + backward - 1 >= min(params.min_run, t))


def _keep_span(flat: np.ndarray, min_keep: float) -> tuple[int, int]:
    """[start, stop) without the flat lines at both ends; everything if too little is left."""
    n = len(flat)
    if flat.all():
        return 0, n
    start = int(np.argmin(flat))
    stop = n - int(np.argmin(flat[::-1]))
    if stop - start < min_keep * n:
        return 0, n
    return start, stop


def border_boxes(frames: np.ndarray, params: BorderParams = BorderParams()) -> np.ndarray:
    """(T, 4) int [x0, y0, x1, y1] pixel boxes that drop black or white bars around the
    content.

    frames: (T, H, W, 3) uint8. A row or column is border when it is flat and black or
    white for at least min_run consecutive frames, so bars that come and go with an
    inserted clip are found while one dark frame is never cropped.
    """
    t, h, w, _ = frames.shape
    row_std, row_mean = np.empty((t, h), np.float32), np.empty((t, h), np.float32)
    col_std, col_mean = np.empty((t, w), np.float32), np.empty((t, w), np.float32)
    for f, frame in enumerate(frames):  # one frame at a time: no float copy of the video
        gray = frame.astype(np.float32).mean(axis=2)
        row_std[f], row_mean[f] = gray.std(axis=1), gray.mean(axis=1)
        col_std[f], col_mean[f] = gray.std(axis=0), gray.mean(axis=0)
    rows = _flat_lines(row_std, row_mean, params)
    cols = _flat_lines(col_std, col_mean, params)
    boxes = np.empty((len(frames), 4), dtype=np.int64)
    for f in range(len(frames)):
        y0, y1 = _keep_span(rows[f], params.min_keep)
        x0, x1 = _keep_span(cols[f], params.min_keep)
        boxes[f] = (x0, y0, x1, y1)
    return boxes


def content_boxes(
    frames: np.ndarray,
    params: BorderParams = BorderParams(),
    inset: InsetParams | None = InsetParams(),
    blur_pad: BlurPadParams = BlurPadParams(),
) -> np.ndarray:
    """(T, 4) int [x0, y0, x1, y1] pixel boxes of the content: inside any black or white
    bars, then inside blur-filled padding or else an inset picture (template, player page,
    picture-in-picture) where one is found (`inset` None skips both searches)."""
    boxes = border_boxes(frames, params)
    if inset is None:
        return boxes
    grey = analysis_grey(frames)  # once for both searches
    padded = blur_pad_boxes(frames, boxes, blur_pad, grey)
    insets = inset_boxes(frames, inset, boxes, grey)
    for f, (pad, framed) in enumerate(zip(padded, insets, strict=True)):
        # Blur padding is verified against the picture itself; it wins over edge evidence.
        found = pad if pad is not None else framed
        if found is None:
            continue
        x0, y0 = max(found[0], boxes[f, 0]), max(found[1], boxes[f, 1])
        x1, y1 = min(found[2], boxes[f, 2]), min(found[3], boxes[f, 3])
        if x1 > x0 and y1 > y0:
            boxes[f] = (x0, y0, x1, y1)
    return boxes


def crop_resize(frames: np.ndarray, boxes: np.ndarray, size: int = MODEL_SIZE) -> np.ndarray:
    """(T, H, W, 3) uint8 -> (T, size, size, 3) uint8: crop each frame to its (T, 4) box,
    then a Pillow bicubic resize.

    Pillow widens its filter support by the scale factor when shrinking, so the resize is
    antialiased (the "Pillow-quality" resize the descriptor was trained with).
    """
    out = np.empty((len(frames), size, size, 3), dtype=np.uint8)
    for i, (frame, (x0, y0, x1, y1)) in enumerate(zip(frames, boxes, strict=True)):
        image = Image.fromarray(frame[y0:y1, x0:x1])
        out[i] = np.asarray(image.resize((size, size), Image.Resampling.BICUBIC))
    return out
