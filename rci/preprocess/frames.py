"""Frame preparation for the descriptor: each frame's content box (black or white bars
removed, then an inset picture or a tilted screen found), crop (or rectify), antialiased
resize."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image

from rci.preprocess.analysis import analysis_grey
from rci.preprocess.blurpad import BlurPadParams, blur_pad_boxes
from rci.preprocess.inset import InsetParams, inset_boxes
from rci.preprocess.screen import ScreenParams, rectify, screen_quads

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
    # Padding is grey: a pale sky or a dark night scene is tinted, so it is never a bar.
    max_chroma: float = 2.0  # the line's colour cast, see _cast
    # A bar is one shade from the frame's edge inward; a smooth gradient (vignette, studio
    # backdrop) that stays flat line by line is content.
    max_shade_spread: float = 16.0  # |line mean - the bar's shade|
    # ... and ends in a step: a bar whose next fade_lines lines stay as uniform, each within
    # min_step of the one before, fades into content. Several lines, as the bar's last line
    # can pick up the picture's colour (chroma subsampling) and fail as a bar line itself.
    min_step: float = 4.0
    fade_lines: int = 4
    min_run: int = 3  # consecutive sampled frames (seconds at 1 fps) a bar must last
    min_keep: float = 0.3  # never keep less than this fraction of a dimension


def _flat_lines(
    std: np.ndarray, mean: np.ndarray, chroma: np.ndarray, params: BorderParams
) -> np.ndarray:
    """(T, L) bool: grey lines that are uniform in a run of >= min_run frames with a steady
    mean.

    std, mean, chroma: (T, L) per-frame statistics along each row (or column). Runs rather than a
    centred window, so the first and last frames of an inserted letterboxed clip count too.
    """
    extreme = (mean <= params.dark) | (mean >= params.bright)
    uniform = (std < params.max_std) & extreme & (chroma <= params.max_chroma)
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


def _cast(rgb: np.ndarray) -> np.ndarray:
    """(L, 3) mean colour per line -> (L,) mean |channel - grey|: a tint, which pixel noise
    (averaged out along the line) does not give."""
    return np.abs(rgb - rgb.mean(axis=1, keepdims=True)).mean(axis=1)


def _bar_width(flat: np.ndarray, mean: np.ndarray, std: np.ndarray, params: BorderParams) -> int:
    """Lines from index 0 inward that are flat and within max_shade_spread of the bar's
    shade, or 0 when they fade on without a step: the next fade_lines lines as uniform (of
    any colour) and each within min_step of the one before."""
    # The shade is the median of the first few flat lines: an odd outermost line (encoder
    # edge, a 1-pixel frame) must not decide it.
    lead = int(np.argmin(flat)) if not flat.all() else len(flat)
    shade = np.median(mean[: max(1, min(lead, 8))])
    bar = flat & (np.abs(mean - shade) <= params.max_shade_spread)
    bar[0] = flat[0]
    if bar.all():
        return len(bar)
    width = int(np.argmin(bar))
    after = slice(width, min(width + params.fade_lines, len(bar)))
    steps = np.abs(np.diff(mean[max(width - 1, 0) : after.stop]))
    if width and (std[after] < params.max_std).all() and (steps < params.min_step).all():
        return 0
    # The bar's last line picks up the picture's colour (chroma subsampling, ringing), more
    # or less by decoder: a flat line of the bar's shade right before the picture is bar.
    before_picture = width + 1 < len(bar) and std[width + 1] >= params.max_std
    if width and before_picture and std[width] < params.max_std:
        if abs(mean[width] - shade) <= params.max_shade_spread:
            return width + 1
    return width


def _keep_span(
    flat: np.ndarray, mean: np.ndarray, std: np.ndarray, params: BorderParams
) -> tuple[int, int]:
    """[start, stop) without the bars at both ends; everything if too little is left.

    flat, mean, std: (L,) one frame's flat lines, line means and spreads along the lines."""
    n = len(flat)
    start = _bar_width(flat, mean, std, params)
    stop = n - _bar_width(flat[::-1], mean[::-1], std[::-1], params)
    if stop - start < params.min_keep * n:
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
    row_std, row_mean, row_chroma = (np.empty((t, h), np.float32) for _ in range(3))
    col_std, col_mean, col_chroma = (np.empty((t, w), np.float32) for _ in range(3))
    third = np.float32(1 / 3)
    for f, frame in enumerate(frames):  # one frame at a time: no float copy of the video
        rgb = frame.astype(np.float32)
        # Channel by channel: numpy reduces over a length-3 innermost axis ten times slower.
        gray = (rgb[..., 0] + rgb[..., 1] + rgb[..., 2]) * third
        across = np.stack([rgb[..., c].mean(1) for c in range(3)], axis=1)
        row_std[f], row_mean[f], row_chroma[f] = gray.std(1), gray.mean(1), _cast(across)
        col_std[f], col_mean[f], col_chroma[f] = gray.std(0), gray.mean(0), _cast(rgb.mean(0))
    rows = _flat_lines(row_std, row_mean, row_chroma, params)
    cols = _flat_lines(col_std, col_mean, col_chroma, params)
    boxes = np.empty((len(frames), 4), dtype=np.int64)
    for f in range(len(frames)):
        y0, y1 = _keep_span(rows[f], row_mean[f], row_std[f], params)
        x0, x1 = _keep_span(cols[f], col_mean[f], col_std[f], params)
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
    return framed_boxes(frames, params, inset, blur_pad).boxes


@dataclass(frozen=True)
class Framing:
    """Where each frame's content is: boxes (T, 4) int [x0, y0, x1, y1] pixels (content_boxes);
    outer (T, 4) int, the picture around it where an inset was found (the frame inside its
    bars: a picture-in-picture's host video, a template), else the box itself; quads
    (T, 4, 2) float32 corners (top left, top right, bottom right, bottom left; x, y pixels)
    of a tilted screen, NaN where none (its bounding box is then the box)."""

    boxes: np.ndarray
    outer: np.ndarray
    quads: np.ndarray


def framed_boxes(
    frames: np.ndarray,
    params: BorderParams = BorderParams(),
    inset: InsetParams | None = InsetParams(),
    blur_pad: BlurPadParams = BlurPadParams(),
    screen: ScreenParams | None = ScreenParams(),
) -> Framing:
    """Each frame's content box as content_boxes finds it, the picture around it, and a
    tilted screen's corners where one is found (`screen` None skips that search); a
    screen wins over an inset or padding, since it is found only when all four of its
    sides are long straight lines."""
    t, h, w, _ = frames.shape
    boxes = border_boxes(frames, params)
    outer = boxes.copy()
    quads = np.full((t, 4, 2), np.nan, dtype=np.float32)
    if inset is None:
        return Framing(boxes, outer, quads)
    grey = analysis_grey(frames)  # once for every search
    padded = blur_pad_boxes(frames, boxes, blur_pad, grey)
    insets = inset_boxes(frames, inset, boxes, grey)
    screens = [None] * t if screen is None else screen_quads(grey, screen)
    scale = np.array([w / grey.shape[2], h / grey.shape[1]], dtype=np.float32)
    for f, (pad, framed, quad) in enumerate(zip(padded, insets, screens, strict=True)):
        if quad is not None:
            quads[f] = quad * scale
            x0, y0 = np.floor(quads[f].min(axis=0)).astype(int)
            x1, y1 = np.ceil(quads[f].max(axis=0)).astype(int)
            boxes[f] = outer[f] = (max(x0, 0), max(y0, 0), min(x1, w), min(y1, h))
            continue
        # Blur padding is verified against the picture itself; it wins over edge evidence.
        found = pad if pad is not None else framed
        if found is None:
            continue
        x0, y0 = max(found[0], boxes[f, 0]), max(found[1], boxes[f, 1])
        x1, y1 = min(found[2], boxes[f, 2]), min(found[3], boxes[f, 3])
        if x1 > x0 and y1 > y0:
            boxes[f] = (x0, y0, x1, y1)
            if pad is not None:  # the padding is the picture again, blurred: nothing else
                outer[f] = boxes[f]
    return Framing(boxes, outer, quads)


def crop_resize(
    frames: np.ndarray, boxes: np.ndarray, size: int = MODEL_SIZE, quads: np.ndarray | None = None
) -> np.ndarray:
    """(T, H, W, 3) uint8 -> (T, size, size, 3) uint8: crop each frame to its (T, 4) box,
    then a Pillow bicubic resize; a frame with a (4, 2) quad in `quads` (T, 4, 2), NaN for
    none, is rectified from it instead (screen.rectify).

    Pillow widens its filter support by the scale factor when shrinking, so the resize is
    antialiased (the "Pillow-quality" resize the descriptor was trained with).
    """
    out = np.empty((len(frames), size, size, 3), dtype=np.uint8)
    for i, (frame, (x0, y0, x1, y1)) in enumerate(zip(frames, boxes, strict=True)):
        if quads is not None and not np.isnan(quads[i]).any():
            out[i] = rectify(frame, quads[i], size)
            continue
        image = Image.fromarray(frame[y0:y1, x0:x1])
        out[i] = np.asarray(image.resize((size, size), Image.Resampling.BICUBIC))
    return out
