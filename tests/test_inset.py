"""The inset search on real photographs panned like video: a template, picture-in-picture,
blur-filled padding and a player page are found; unedited and noisy frames keep the whole
frame."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFilter
from scipy import ndimage

from rci.bench import samples
from rci.bench.metrics import box_iou
from rci.preprocess.frames import content_boxes
from rci.preprocess.inset import _close_along, _denoised, _longest_run, find_inset, inset_boxes

W, H = samples.SIZE
SECONDS = 8  # sampled at 1 fps: 8 frames


def shots(name: str, seed: int) -> np.ndarray:
    """(8, 360, 640, 3): one frame per second of a slow pan and zoom over a photograph."""
    frames = list(samples.pan_zoom(samples.photo(name), SECONDS, seed=seed))
    return np.stack(frames[:: samples.FPS])


def inset(content: np.ndarray, background: np.ndarray, box: tuple[int, int, int, int]):
    """Each content frame shrunk into box (x0, y0, x1, y1) over the background frame(s)."""
    x0, y0, x1, y1 = box
    out = np.array(np.broadcast_to(background, content.shape))
    for f, frame in enumerate(content):
        small = Image.fromarray(frame).resize((x1 - x0, y1 - y0), Image.Resampling.BILINEAR)
        out[f, y0:y1, x0:x1] = np.asarray(small)
    return out


@pytest.fixture(scope="module")
def astronaut() -> np.ndarray:
    return shots("astronaut", seed=1)


def _template() -> np.ndarray:
    canvas = Image.new("RGB", (W, H), (30, 120, 200))
    draw = ImageDraw.Draw(canvas)
    for y in range(0, H, 6):
        draw.line([(0, y), (W, y)], fill=(30 + y % 50, 120, 200))
    draw.rectangle([0, H - 40, W, H], fill=(20, 20, 20))
    draw.text((20, 10), "MUST WATCH", fill=(255, 255, 255))
    return np.asarray(canvas)


def _close(found, box) -> bool:
    """IoU >= 0.9, the issue's target for insets."""
    return found is not None and box_iou(tuple(found), box) >= 0.9


def test_template_frame_is_found(astronaut):
    box = (64, 60, 576, 300)
    frames = inset(astronaut, _template(), box)
    found = inset_boxes(frames)
    assert all(_close(f, box) for f in found), found


def test_picture_in_picture_over_another_video_is_found(astronaut):
    box = (16, 16, 304, 178)  # 45 % of the width, top left corner, as uploaders place it
    frames = inset(astronaut, shots("coffee", seed=2), box)
    found = content_boxes(frames)
    assert all(_close(tuple(f), box) for f in found), found


def test_blur_filled_padding_is_found(astronaut):
    box = (112, 62, 528, 298)
    blurred = np.stack(
        [np.asarray(Image.fromarray(f).filter(ImageFilter.BoxBlur(20))) for f in astronaut]
    )
    frames = inset(astronaut, blurred, box)
    found = content_boxes(frames)
    assert all(_close(tuple(f), box) for f in found), found


def test_unedited_video_keeps_the_whole_frame(astronaut):
    assert all(f is None for f in inset_boxes(astronaut))
    assert (content_boxes(shots("chelsea", seed=3)) == [0, 0, W, H]).all()


def test_noise_has_no_inset():
    # Pure noise has edges everywhere and in every frame; none is a line.
    rng = np.random.default_rng(0)
    grey = rng.uniform(0, 255, size=(5, 90, 160)).astype(np.float32)
    assert find_inset(grey) is None


def test_a_still_tells_nothing():
    # Nothing moves: a frame's lines and a building's persist alike, so no inset is claimed
    # (the whole frame is kept; never crop real content).
    still = np.repeat(shots("astronaut", seed=4)[:1], 5, axis=0)
    assert inset_boxes(inset(still, _template(), (64, 60, 576, 300))) == [None] * 5


def _lines(t: int, h: int, w: int, box: tuple, share: float) -> tuple[np.ndarray, np.ndarray]:
    """Edge hits (as _edge_hits gives them) with the box's four sides present along the
    first `share` of their length in every frame."""
    x0, y0, x1, y1 = box
    col = np.zeros((t, h, w - 1), bool)
    row = np.zeros((t, h - 1, w), bool)
    col[:, y0 : y0 + int(share * (y1 - y0)), [x0 - 1, x1 - 1]] = True
    row[:, [y0 - 1, y1 - 1], x0 : x0 + int(share * (x1 - x0))] = True
    return col, row


@pytest.mark.parametrize("share, kept", [(0.5, True), (0.2, False)])
def test_a_found_rectangle_is_kept_while_its_sides_persist(share, kept):
    # Found in frames 0-2; in frames 3-5 the search found nothing (the picture's sides lost
    # contrast). Half-present sides keep the rectangle there; a fifth does not.
    from rci.preprocess.inset import InsetParams, _keep_found

    t, h, w, box = 6, 90, 160, (40, 20, 120, 70)
    base = np.tile([0, 0, w, h], (t, 1))
    found = base.astype(float)
    found[:3] = box
    col, row = _lines(t, h, w, box, share)
    _keep_found(found, base, col, row, InsetParams())
    assert (found[3:] == box).all() == kept
    assert (found[:3] == box).all()


def test_window_median_never_averages_a_box_with_the_base():
    # Two frames, a box found in the first only: an even window would put the crop halfway
    # between the box and the whole frame in both.
    from rci.preprocess.inset import window_median

    base = np.array([[0, 0, 100, 50], [0, 0, 100, 50]])
    found = np.array([[10, 10, 60, 40], [0, 0, 100, 50]], dtype=float)
    assert window_median(found, base, 2, np.ones(4)) == [(10, 10, 60, 40), None]


def test_median_and_closing_are_scipy_s() -> None:
    # The 3x3 median and the closing along lines are hand-written for speed: they must give
    # exactly what scipy's median_filter and binary_closing give, on noise and on real
    # pictures, at sizes odd and even.
    rng = np.random.default_rng(0)
    photo = np.asarray(samples.photo("astronaut").convert("L"), np.float32)
    for grey in (rng.integers(0, 256, (2, 179, 320)).astype(np.float32), photo[None, :180, :319]):
        expected = np.stack([ndimage.median_filter(g, size=3) for g in grey])
        np.testing.assert_array_equal(_denoised(grey), expected)
    for shape, density in itertools.product([(180, 319), (179, 320)], [0.05, 0.3, 0.7]):
        edge = rng.random(shape) < density
        for across, line in ((1, (5, 1)), (0, (1, 5))):
            expected = ndimage.binary_closing(edge, structure=np.ones(line, bool))
            np.testing.assert_array_equal(_close_along(edge, across), expected)


def test_longest_run_per_column() -> None:
    mask = np.array([[1, 0, 1], [1, 1, 0], [0, 1, 1], [1, 1, 1], [1, 0, 1]], bool)
    assert _longest_run(mask).tolist() == [2, 3, 3]
    rng = np.random.default_rng(1)
    for _ in range(20):
        mask = rng.random((40, 7)) < rng.random()
        expected = [max((len(r) for r in "".join("1" if v else " " for v in col).split()),
                        default=0) for col in mask.T]  # fmt: skip
        assert _longest_run(mask).tolist() == expected
