"""Find a screen filmed at an angle: a phone filming a monitor, a tilted crop. Its picture
is a quadrilateral (keystone, rotation) whose four sides are long straight lines that stay
put while the picture inside changes. Lines come from a Hough transform of the edges of the
window's mean picture (moving content blurs away there; the screen's border does not); the
innermost long line on each side of the centre is taken, and each side must be a step in
grey in most frames of the window. The quadrilateral is then rectified before resize
(`rectify`), so the descriptor sees the picture as it was shown.

Hough and Canny are scikit-image's (a pinned dependency): no library here fits a tilted
quadrilateral to persistent lines, so the joining of lines into one is ours.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image
from scipy import ndimage
from skimage.feature import canny
from skimage.transform import hough_line, hough_line_peaks


@dataclass(frozen=True)
class ScreenParams:
    """Grey levels 0-255 at ANALYSIS_WIDTH; lengths as fractions of the frame."""

    window: int = 4  # sampled frames each side of a frame whose mean picture is searched
    step: int = 4  # frames between searches; a frame takes its nearest search's answer
    max_tilt: float = 12.0  # degrees a side may lean from the frame's axes
    min_line: float = 0.35  # Hough votes of a side, as a fraction of the frame's side
    min_offset: float = 0.2  # a side lies at least this far from the centre
    edge: float = 10.0  # grey step across a side (2.5 pixels each way) ...
    along: float = 0.6  # ... along this fraction of its length ...
    frames: float = 0.75  # ... in this fraction of the window's frames
    # Only a tilted or keystoned quadrilateral is rectified: an upright one is a box, which
    # the border and inset searches find. Corners off their bounding box by at least this
    # fraction of the frame make it tilted.
    min_skew: float = 0.015
    min_area: float = 0.15  # of the frame


def _line(angle: float, dist: float, w: int, h: int) -> tuple[np.ndarray, np.ndarray]:
    """Two points on the Hough line x cos(angle) + y sin(angle) = dist, at the frame's edges."""
    c, s = np.cos(angle), np.sin(angle)
    if abs(s) > abs(c):  # nearer horizontal
        return np.array([0.0, dist / s]), np.array([w - 1.0, (dist - (w - 1) * c) / s])
    return np.array([dist / c, 0.0]), np.array([(dist - (h - 1) * s) / c, h - 1.0])


def _meet(a: tuple[np.ndarray, np.ndarray], b: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    da, db = a[1] - a[0], b[1] - b[0]
    t = np.linalg.solve(np.array([da, -db]).T, b[0] - a[0])
    return a[0] + t[0] * da


def _step_along(grey: np.ndarray, p: np.ndarray, q: np.ndarray, params: ScreenParams) -> float:
    """Fraction of the points along p-q where grey changes by `edge` across the line."""
    d = q - p
    normal = np.array([-d[1], d[0]]) / max(float(np.linalg.norm(d)), 1e-9)
    points = p + np.linspace(0.08, 0.92, 48)[:, None] * d
    inside, outside = points + 2.5 * normal, points - 2.5 * normal

    def at(xy: np.ndarray) -> np.ndarray:
        return ndimage.map_coordinates(grey, [xy[:, 1], xy[:, 0]], order=1, mode="nearest")

    return float(np.mean(np.abs(at(inside) - at(outside)) >= params.edge))


def find_screen(grey: np.ndarray, params: ScreenParams = ScreenParams()) -> np.ndarray | None:
    """(T, h, w) float32 analysis grey of a few frames -> (4, 2) corners (top left, top
    right, bottom right, bottom left; x, y analysis pixels) of a tilted screen, or None."""
    _, h, w = grey.shape
    mean = grey.mean(axis=0)
    edges = canny(mean, sigma=1.5, low_threshold=4, high_threshold=10)
    tilt = np.radians(params.max_tilt)
    lean = np.linspace(-tilt, tilt, 25)
    nearest: dict[str, tuple[float, tuple[np.ndarray, np.ndarray]]] = {}
    for axis, angles, span in ((1, np.pi / 2 + lean, w), (0, lean, h)):
        angles = np.where(angles > np.pi / 2, angles - np.pi, angles)  # skimage's range
        acc, theta, dist = hough_line(edges, theta=angles)
        peaks = hough_line_peaks(
            acc, theta, dist, min_distance=3, min_angle=3,
            threshold=params.min_line * span, num_peaks=12,
        )  # fmt: skip
        for angle, d in zip(peaks[1], peaks[2], strict=True):
            line = _line(angle, d, w, h)
            mid = (line[0] + line[1]) / 2
            offset = mid[axis] - (h if axis else w) / 2
            if abs(offset) < params.min_offset * (h if axis else w):
                continue
            after = int(offset > 0)
            side = ("top", "bottom")[after] if axis else ("left", "right")[after]
            if side not in nearest or abs(offset) < nearest[side][0]:
                nearest[side] = (abs(offset), line)  # innermost: a bezel's outer edge is not
    if len(nearest) < 4:
        return None
    top, right, bottom, left = (nearest[s][1] for s in ("top", "right", "bottom", "left"))
    try:
        corners = np.array([_meet(top, left), _meet(top, right), _meet(bottom, right),
                            _meet(bottom, left)])  # fmt: skip
    except np.linalg.LinAlgError:
        return None
    if (corners < -2).any() or (corners[:, 0] > w + 1).any() or (corners[:, 1] > h + 1).any():
        return None
    if _area(corners) < params.min_area * w * h or _skew(corners, w, h) < params.min_skew:
        return None
    for a in range(4):
        p, q = corners[a], corners[(a + 1) % 4]
        held = [_step_along(g, p, q, params) >= params.along for g in grey]
        if np.mean(held) < params.frames:
            return None
    return np.clip(corners, 0, [w, h])


def _area(c: np.ndarray) -> float:
    x, y = c[:, 0], c[:, 1]
    return 0.5 * abs(float(np.dot(x, np.roll(y, 1)) - np.dot(y, np.roll(x, 1))))


def _skew(c: np.ndarray, w: int, h: int) -> float:
    """Largest distance of a corner from its bounding box's corner, as a fraction of the
    frame's side."""
    x0, y0 = c.min(axis=0)
    x1, y1 = c.max(axis=0)
    box = np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]])
    return float((np.abs(c - box) / [w, h]).max())


def screen_quads(
    grey: np.ndarray, params: ScreenParams = ScreenParams()
) -> list[np.ndarray | None]:
    """(T, h, w) analysis grey -> per frame the (4, 2) corners of a tilted screen in
    analysis pixels, or None: searched every `step` frames over `window` frames each side;
    a frame takes the answer of the search centred nearest to it."""
    t = len(grey)
    centres = list(range(min(params.window, t - 1), t, params.step)) or [0]
    found = [
        find_screen(grey[max(0, c - params.window) : c + params.window + 1], params)
        for c in centres
    ]
    out = []
    for f in range(t):
        nearest = min(range(len(centres)), key=lambda k: abs(centres[k] - f))
        out.append(found[nearest])
    return out


def rectify(frame: np.ndarray, corners: np.ndarray, size: int) -> np.ndarray:
    """(H, W, 3) uint8 and (4, 2) corners in its pixels -> (size, size, 3) uint8: the
    quadrilateral mapped to a rectangle of its own mean side lengths (Pillow's perspective
    transform), then a bicubic antialiased resize, as crop_resize does for boxes."""
    tl, tr, br, bl = corners
    width = max(2, round((np.linalg.norm(tr - tl) + np.linalg.norm(br - bl)) / 2))
    height = max(2, round((np.linalg.norm(bl - tl) + np.linalg.norm(br - tr)) / 2))
    target = np.array([[0, 0], [width, 0], [width, height], [0, height]], dtype=np.float64)
    # Pillow maps each output pixel (x, y) to the input ((a x + b y + c) / (g x + h y + 1),
    # (d x + e y + f) / (g x + h y + 1)): eight unknowns from four corner pairs.
    rows, rhs = [], []
    for (x, y), (u, v) in zip(target, corners, strict=True):
        rows.append([x, y, 1, 0, 0, 0, -u * x, -u * y])
        rows.append([0, 0, 0, x, y, 1, -v * x, -v * y])
        rhs += [u, v]
    coeffs = np.linalg.solve(np.array(rows), np.array(rhs))
    image = Image.fromarray(frame).transform(
        (width, height), Image.Transform.PERSPECTIVE, tuple(coeffs), Image.Resampling.BICUBIC
    )
    return np.asarray(image.resize((size, size), Image.Resampling.BICUBIC))
