"""Blur-filled padding on real photographs panned like video: the picture is found however
the padding was enlarged; a picture whose own surroundings are blurred in place (depth of
field), flat padding and unedited frames are never cropped by it."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image, ImageFilter

from rci.bench import samples
from rci.bench.metrics import box_iou
from rci.preprocess.blurpad import blur_pad_boxes
from rci.preprocess.frames import content_boxes
from tests.test_inset import H, W, inset, shots


def padded(pictures: np.ndarray, box: tuple[int, int, int, int], zoom: float, radius: float):
    """A W x H video: each picture shrunk into box over itself scaled to cover the frame
    times zoom, centred and Gaussian-blurred by radius pixels (what editing tools do)."""
    x0, y0, x1, y1 = box
    out = []
    for picture in pictures:
        image = Image.fromarray(picture)
        cover = max(W / image.width, H / image.height) * zoom
        big = image.resize((round(image.width * cover), round(image.height * cover)))
        left, top = (big.width - W) // 2, (big.height - H) // 2
        frame = np.array(
            big.crop((left, top, left + W, top + H)).filter(ImageFilter.GaussianBlur(radius))
        )
        frame[y0:y1, x0:x1] = np.asarray(
            image.resize((x1 - x0, y1 - y0), Image.Resampling.BILINEAR)
        )
        out.append(frame)
    return np.stack(out)


@pytest.fixture(scope="module")
def coffee() -> np.ndarray:
    return shots("coffee", seed=5)


@pytest.fixture(scope="module")
def astronaut() -> np.ndarray:
    return shots("astronaut", seed=1)


@pytest.mark.parametrize(
    "box, zoom, crop, radius",
    [
        ((112, 62, 528, 298), 1.0, None, 10),  # covering enlargement, centred picture
        ((160, 90, 480, 270), 1.4, None, 12),  # enlarged past covering, a smaller picture
        ((80, 0, 560, 360), 1.0, (80, 560), 12),  # a 4:3 picture at full height
    ],
)
def test_picture_in_blur_padding_is_found(astronaut, box, zoom, crop, radius):
    pictures = astronaut if crop is None else astronaut[:, :, crop[0] : crop[1]]
    frames = padded(pictures, box, zoom, radius)
    found = blur_pad_boxes(frames, np.tile([0, 0, W, H], (len(frames), 1)))
    assert all(f is not None and box_iou(f, box) >= 0.9 for f in found), found
    assert all(box_iou(tuple(b), box) >= 0.9 for b in content_boxes(frames))


def test_depth_of_field_is_not_cropped(coffee):
    # Sharp in a rectangle, blurred in place around it: no smaller copy of the picture, so
    # the padding does not look like its enlargement.
    frames = coffee.copy()
    for f, frame in enumerate(coffee):
        blurred = np.asarray(Image.fromarray(frame).filter(ImageFilter.GaussianBlur(10)))
        frames[f] = blurred
        frames[f, 62:298, 112:528] = frame[62:298, 112:528]
    assert blur_pad_boxes(frames, np.tile([0, 0, W, H], (len(frames), 1))) == [None] * len(frames)


def test_flat_padding_is_left_to_the_other_searches(coffee):
    frames = inset(coffee, np.full((H, W, 3), 90, np.uint8), (112, 62, 528, 298))
    assert blur_pad_boxes(frames, np.tile([0, 0, W, H], (len(frames), 1))) == [None] * len(frames)


@pytest.mark.parametrize("name, seed", [("astronaut", 1), ("chelsea", 3), ("coffee", 5)])
def test_unedited_video_is_not_cropped(name, seed):
    frames = shots(name, seed)
    assert blur_pad_boxes(frames, np.tile([0, 0, W, H], (len(frames), 1))) == [None] * len(frames)


def test_padding_inside_bars(astronaut):
    # Blur padding letterboxed by black bars: found within the bars' box.
    inner = padded(astronaut, (112, 62, 528, 298), 1.0, 10)
    frames = np.zeros_like(inner)
    small = [np.asarray(Image.fromarray(f).resize((W, H - 80))) for f in inner]
    frames[:, 40 : H - 40] = np.stack(small)
    boxes = content_boxes(frames)
    truth = (112, 40 + round(62 * (H - 80) / H), 528, 40 + round(298 * (H - 80) / H))
    assert all(box_iou(tuple(b), truth) >= 0.9 for b in boxes), boxes


def test_samples_sizes_are_the_benchmarks():
    assert (W, H) == samples.SIZE == (640, 360)


def test_a_side_at_the_frame_edge_is_no_evidence():
    # A side 1 pixel from the edge has no band outside it: it must not count as padding
    # that starts right at the side.
    from rci.preprocess.blurpad import _side_ratio

    detail = np.ones((90, 160), np.float32)
    assert _side_ratio(detail, (1, 0, 160, 90), band=6) == np.inf
    assert _side_ratio(detail, (20, 0, 160, 90), band=6) == pytest.approx(1.0)
