"""The tilted-screen search on real photographs panned like video: a monitor filmed at an
angle is found and rectified; upright insets, plain video and stills are left alone."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image, ImageDraw

from rci.bench import samples
from rci.describe.descriptor import Descriptor
from rci.preprocess.analysis import analysis_grey
from rci.preprocess.frames import MODEL_SIZE, crop_resize, framed_boxes
from rci.preprocess.screen import find_screen, rectify, screen_quads
from tests.test_inset import inset, shots

W, H = samples.SIZE
# A monitor seen from below and to the left: keystone and a 4-degree turn (x, y pixels).
CORNERS = np.array([[92.0, 40.0], [566.0, 66.0], [548.0, 318.0], [70.0, 300.0]])


def filmed(content: np.ndarray, corners: np.ndarray = CORNERS) -> np.ndarray:
    """Each frame of `content` shown on a bezelled screen at `corners` in a dim room."""
    room = Image.new("RGB", (W, H), (40, 36, 48))
    ImageDraw.Draw(room).polygon([tuple(c) for c in corners * 1.0], fill=(15, 15, 17))
    out = []
    for frame in content:
        # Pillow maps output pixels to input ones: solve for the map from the quad to the
        # picture's rectangle (the test's own solve, not the code under test's).
        src = np.array([[0, 0], [W, 0], [W, H], [0, H]], dtype=float)
        rows, rhs = [], []
        for (x, y), (u, v) in zip(corners, src, strict=True):
            rows += [[x, y, 1, 0, 0, 0, -u * x, -u * y], [0, 0, 0, x, y, 1, -v * x, -v * y]]
            rhs += [u, v]
        coeffs = tuple(np.linalg.solve(np.array(rows), np.array(rhs)))
        screen = Image.fromarray(frame).transform(
            (W, H), Image.Transform.PERSPECTIVE, coeffs, Image.Resampling.BICUBIC
        )
        mask = Image.new("L", (W, H), 0)
        ImageDraw.Draw(mask).polygon([tuple(c) for c in corners], fill=255)
        shown = room.copy()
        shown.paste(screen, (0, 0), mask)
        out.append(np.asarray(shown))
    return np.stack(out)


@pytest.fixture(scope="module")
def astronaut() -> np.ndarray:
    return shots("astronaut", seed=1)


def test_a_screen_filmed_at_an_angle_is_found(astronaut):
    frames = filmed(astronaut)
    grey = analysis_grey(frames)
    corners = find_screen(grey)
    assert corners is not None
    scale = W / grey.shape[2]
    assert np.abs(corners * scale - CORNERS).max() <= 2 * scale  # within 2 analysis pixels
    found = framed_boxes(frames)
    assert np.abs(found.quads - CORNERS).max() <= 2 * scale
    # The box is the quadrilateral's bounding box; no whole view (nothing around it to find).
    assert np.abs(found.boxes - [70, 40, 566, 318]).max() <= 2 * scale
    assert (found.outer == found.boxes).all()


def test_rectified_screen_looks_like_the_picture_shown(astronaut):
    frames = filmed(astronaut)
    found = framed_boxes(frames)
    rectified = crop_resize(frames, found.boxes, quads=found.quads)
    boxed = crop_resize(frames, found.boxes)
    original = crop_resize(astronaut, np.tile([0, 0, W, H], (len(astronaut), 1)))
    descriptor = Descriptor()
    plain = descriptor.embed(original)
    straight = np.sum(descriptor.embed(rectified) * plain, axis=1)
    tilted = np.sum(descriptor.embed(boxed) * plain, axis=1)
    assert straight.min() > 0.8 and (straight > tilted + 0.05).all(), (straight, tilted)
    assert rectify(frames[0], CORNERS, MODEL_SIZE).shape == (MODEL_SIZE, MODEL_SIZE, 3)


def test_upright_insets_plain_video_and_stills_have_no_screen(astronaut):
    # An upright picture inside a frame is a box, for the inset search.
    upright = inset(astronaut, np.full((H, W, 3), 20, np.uint8), (64, 40, 576, 320))
    assert screen_quads(analysis_grey(upright)) == [None] * len(upright)
    assert screen_quads(analysis_grey(astronaut)) == [None] * len(astronaut)
    still = np.stack([astronaut[0]] * 8)
    assert screen_quads(analysis_grey(still)) == [None] * 8
    assert np.isnan(framed_boxes(astronaut).quads).all()
