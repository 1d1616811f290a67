"""Find a picture set into blur-filled padding: the video shrunk onto a blurred, enlarged
copy of itself. The padding has almost no fine detail while the picture has plenty, so the
picture is the region where sharpness stays; it is accepted only when the padding looks
like a blurred enlargement of it and sharpness drops right at its sides."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image
from scipy import ndimage

from rci.preprocess.analysis import analysis_grey, window_median


@dataclass(frozen=True)
class BlurPadParams:
    """Thresholds on 0-255 grey at the inset search's analysis width; sizes in its pixels."""

    window: int = 2  # sampled frames each side that are judged together
    detail_sigma: float = 1.0  # fine detail = |grey - gaussian(grey, detail_sigma)|
    smooth: int = 7  # box size over which detail is averaged before thresholding
    floor_factor: float = 3.0  # detailed = over floor_factor x the frame's 10th percentile ...
    floor_margin: float = 0.3  # ... and over it by this much
    min_share: float = 0.1  # a row or column of the picture has this share detailed
    snap: int = 6  # sides move to the strongest step within this many pixels
    min_area: float = 0.08  # picture area as a fraction of the frame (inside bars)
    max_area: float = 0.9
    max_detail_ratio: float = 0.3  # padding detail / picture detail
    # Sharpness just outside a side / just inside it (median over inner sides): padding
    # starts at the side, where a natural picture's detail fades gradually.
    max_side_ratio: float = 0.25
    compare_sigma: float = 3.0  # blur applied before comparing padding with the picture
    zooms: tuple = (1.0, 1.2, 1.4, 1.7)  # enlargements beyond "cover" that tools use
    min_correlation: float = 0.5  # padding against the enlarged, blurred picture
    min_padding_std: float = 2.0  # flatter padding is bars, left to border removal
    band: int = 6  # pixels of the bands either side of a side


def detail(grey: np.ndarray, params: BlurPadParams = BlurPadParams()) -> np.ndarray:
    """(T, h, w) float32 grey -> (T, h, w) fine-detail energy per pixel."""
    return np.stack([np.abs(g - ndimage.gaussian_filter(g, params.detail_sigma)) for g in grey])


def _span(profile: np.ndarray, share: float, gap: int = 10) -> tuple[int, int] | None:
    """[start, stop) of the longest run where the profile exceeds share, gaps of up to
    `gap` positions bridged (flat parts of the picture); isolated spikes in the padding
    (a frame's outermost line, a logo) stay apart."""
    above = np.pad(ndimage.uniform_filter1d(profile, 5) > share, gap, mode="edge")
    on = ndimage.binary_closing(above, structure=np.ones(gap + 1, bool))[gap:-gap]
    labels, count = ndimage.label(on)
    if count == 0:
        return None
    sizes = ndimage.sum(on, labels, index=range(1, count + 1))
    run = np.flatnonzero(labels == 1 + int(np.argmax(sizes)))
    return int(run[0]), int(run[-1]) + 1


def _snap(steps: np.ndarray, pos: int, reach: int) -> int:
    """The boundary within reach of pos with the largest mean step (steps[k]: k -> k + 1)."""
    lo, hi = max(1, pos - reach), min(len(steps), pos + reach)
    if lo > hi:
        return pos
    return lo + int(np.argmax(steps[lo - 1 : hi]))


def _enlargements(picture: np.ndarray, size: tuple[int, int], zooms: tuple) -> list[np.ndarray]:
    """The picture stretched to size (w, h), and scaled to cover it times each zoom, centred."""
    w, h = size
    image = Image.fromarray(picture)
    out = [np.asarray(image.resize((w, h), Image.Resampling.BILINEAR), dtype=np.float32)]
    cover = max(w / picture.shape[1], h / picture.shape[0])
    for zoom in zooms:
        big_w = max(w, round(picture.shape[1] * cover * zoom))
        big_h = max(h, round(picture.shape[0] * cover * zoom))
        big = np.asarray(image.resize((big_w, big_h), Image.Resampling.BILINEAR))
        top, left = (big_h - h) // 2, (big_w - w) // 2
        out.append(big[top : top + h, left : left + w].astype(np.float32))
    return out


def find_blur_pad(
    grey: np.ndarray, sharp: np.ndarray, params: BlurPadParams = BlurPadParams()
) -> tuple[int, int, int, int] | None:
    """(x0, y0, x1, y1) analysis pixels of a picture in blur-filled padding, or None.

    grey, sharp: (T, h, w) grey frames of one window (inside any bars) and their detail().
    """
    mean_detail = sharp.mean(axis=0)
    smooth = ndimage.uniform_filter(mean_detail, params.smooth)
    floor = np.percentile(smooth, 10)
    detailed = (smooth > max(params.floor_factor * floor, floor + params.floor_margin)).astype(
        np.float32
    )
    # Columns, then rows within them, then columns again within those rows.
    x = _span(detailed.mean(axis=0), params.min_share)
    y = x and _span(detailed[:, x[0] : x[1]].mean(axis=1), params.min_share)
    x = y and _span(detailed[y[0] : y[1]].mean(axis=0), params.min_share)
    if not (x and y):
        return None
    h, w = mean_detail.shape
    col_steps = np.abs(np.diff(grey, axis=2)).mean(axis=0)  # (h, w-1)
    row_steps = np.abs(np.diff(grey, axis=1)).mean(axis=0)  # (h-1, w)
    # The averaging boxes widen the detailed region by about half their sizes: undo that
    # before snapping each inner side to its step.
    grow = params.smooth // 2 + 2
    (x0, x1), (y0, y1) = x, y
    x0, y0 = (x0 + grow if x0 > 0 else 0), (y0 + grow if y0 > 0 else 0)
    x1, y1 = (x1 - grow if x1 < w else w), (y1 - grow if y1 < h else h)
    if x1 - x0 < 8 or y1 - y0 < 8:
        return None
    if x0 > 0:
        x0 = _snap(col_steps[y0:y1].mean(axis=0), x0, params.snap)
    if x1 < w:
        x1 = _snap(col_steps[y0:y1].mean(axis=0), x1, params.snap)
    if x1 - x0 < 8:
        return None
    if y0 > 0:
        y0 = _snap(row_steps[:, x0:x1].mean(axis=1), y0, params.snap)
    if y1 < h:
        y1 = _snap(row_steps[:, x0:x1].mean(axis=1), y1, params.snap)
    if x1 - x0 < 8 or y1 - y0 < 8:
        return None
    area = (x1 - x0) * (y1 - y0) / (w * h)
    if not params.min_area <= area <= params.max_area:
        return None
    # Padding surrounds the picture or flanks it on two opposite sides; one padded side
    # alone is more likely a picture's own soft edge (sky, a wall).
    left_right, top_bottom = (x0 > 0) + (x1 < w), (y0 > 0) + (y1 < h)
    if left_right + top_bottom < 2 or (
        left_right + top_bottom == 2 and 1 in (left_right, top_bottom)
    ):
        return None
    inside = np.zeros((h, w), dtype=bool)
    inside[y0:y1, x0:x1] = True
    picture_detail = mean_detail[inside].mean()
    if mean_detail[~inside].mean() > params.max_detail_ratio * picture_detail:
        return None
    if _side_ratio(mean_detail, (x0, y0, x1, y1), params.band) > params.max_side_ratio:
        return None
    if grey[:, ~inside].std() < params.min_padding_std:
        return None
    correlation, margin = _padding_evidence(grey, inside, (x0, y0, x1, y1), params)
    if correlation < params.min_correlation or margin <= 0:
        return None
    return x0, y0, x1, y1


def _side_ratio(mean_detail: np.ndarray, box: tuple[int, int, int, int], band: int) -> float:
    """Median over inner sides of detail just outside the side / just inside it."""
    x0, y0, x1, y1 = box
    h, w = mean_detail.shape
    ratios = []

    def ratio(outside: np.ndarray, inside: np.ndarray) -> float:
        # A side too near the frame's edge for an outside band tells nothing: left out.
        if outside.size == 0 or inside.size == 0:
            return np.nan
        return float(outside.mean() / max(inside.mean(), 1e-3))

    if x0 > 0:
        ratios.append(ratio(mean_detail[y0:y1, max(0, x0 - band - 2) : max(0, x0 - 2)],
                            mean_detail[y0:y1, x0 + 1 : x0 + band + 1]))  # fmt: skip
    if x1 < w:
        ratios.append(ratio(mean_detail[y0:y1, x1 + 2 : x1 + band + 2],
                            mean_detail[y0:y1, max(0, x1 - band - 1) : x1 - 1]))  # fmt: skip
    if y0 > 0:
        ratios.append(ratio(mean_detail[max(0, y0 - band - 2) : max(0, y0 - 2), x0:x1],
                            mean_detail[y0 + 1 : y0 + band + 1, x0:x1]))  # fmt: skip
    if y1 < h:
        ratios.append(ratio(mean_detail[y1 + 2 : y1 + band + 2, x0:x1],
                            mean_detail[max(0, y1 - band - 1) : y1 - 1, x0:x1]))  # fmt: skip
    ratios = [r for r in ratios if not np.isnan(r)]
    return float(np.median(ratios)) if ratios else np.inf


def _corr(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson correlation; -1 when either side is flat (nothing to compare)."""
    if a.std() < 1e-3 or b.std() < 1e-3:
        return -1.0
    return float(np.corrcoef(a.ravel(), b.ravel())[0, 1])


def _strips(image: np.ndarray, box: tuple[int, int, int, int], band: int) -> list:
    """Per inner side of box: (the line `band` pixels outside it, the line `band` pixels
    inside it), each a 1-D profile along the side."""
    x0, y0, x1, y1 = box
    h, w = image.shape
    pairs = []
    if x0 - band >= 0:
        pairs.append((image[y0:y1, x0 - band], image[y0:y1, x0 + band]))
    if x1 + band < w:
        pairs.append((image[y0:y1, x1 + band], image[y0:y1, x1 - band - 1]))
    if y0 - band >= 0:
        pairs.append((image[y0 - band, x0:x1], image[y0 + band, x0:x1]))
    if y1 + band < h:
        pairs.append((image[y1 + band, x0:x1], image[y1 - band - 1, x0:x1]))
    return pairs


def _padding_evidence(
    grey: np.ndarray, inside: np.ndarray, box: tuple[int, int, int, int], params: BlurPadParams
) -> tuple[float, float]:
    """Medians over frames of (the best correlation between the blurred padding and the
    blurred picture enlarged to the frame, stretched or covering it at each zoom; how much
    better that enlargement explains the padding along the picture's sides than the
    picture continued across them does). A picture blurred in place around a sharp region
    (depth of field) continues across the sides; padding made from an enlargement does not.
    """
    x0, y0, x1, y1 = box
    h, w = inside.shape
    scores, margins = [], []
    for frame in grey:
        seen_all = ndimage.gaussian_filter(frame, params.compare_sigma)
        seen = seen_all[~inside]
        best, best_guess = -1.0, None
        picture = frame[y0:y1, x0:x1].astype(np.uint8)
        for guess in _enlargements(picture, (w, h), params.zooms):
            expected = ndimage.gaussian_filter(guess, params.compare_sigma)
            score = _corr(expected[~inside], seen)
            if score > best:
                best, best_guess = score, expected
        scores.append(best)
        if best_guess is None:
            margins.append(-1.0)
            continue
        sides = _strips(seen_all, box, params.band)
        guessed = _strips(best_guess, box, params.band)
        margins.append(
            float(np.mean([_corr(out, g_out) - _corr(out, cont)
                           for (out, cont), (g_out, _) in zip(sides, guessed, strict=True)]))
            if sides else 1.0
        )  # fmt: skip
    return float(np.median(scores)), float(np.median(margins))


def blur_pad_boxes(
    frames: np.ndarray,
    bounds: np.ndarray,
    params: BlurPadParams = BlurPadParams(),
    grey: np.ndarray | None = None,
) -> list[tuple[int, int, int, int] | None]:
    """(T, H, W, 3) uint8 and (T, 4) pixel boxes inside bars -> per frame the picture's
    pixel box (x0, y0, x1, y1), or None. Each frame is judged on the frames within `window`
    of it; the answers are median-filtered over the same window. `grey`:
    analysis_grey(frames), if already computed (no median filter: it would erase the
    detail measured here)."""
    t, h, w, _ = frames.shape
    grey = analysis_grey(frames) if grey is None else grey
    sharp = detail(grey, params)
    scale = np.array([w / grey.shape[2], h / grey.shape[1]] * 2)
    base = np.round(np.asarray(bounds) / scale).astype(int)
    found = base.astype(np.float64)
    for f in range(t):
        lo, hi = max(0, f - params.window), min(t, f + params.window + 1)
        bx0, by0, bx1, by1 = (int(v) for v in base[f])
        if min(bx1 - bx0, by1 - by0) < 16:  # too small a picture to judge
            continue
        box = find_blur_pad(grey[lo:hi, by0:by1, bx0:bx1], sharp[lo:hi, by0:by1, bx0:bx1], params)
        if box is not None:
            found[f] = (box[0] + bx0, box[1] + by0, box[2] + bx0, box[3] + by0)
    return window_median(found, base, params.window, scale)
