"""Border boxes (black and white bars removed per frame), the antialiased crop-resize,
preprocess."""

from __future__ import annotations

import numpy as np
import pytest

from rci.bench import samples
from rci.preprocess.frames import MODEL_SIZE, BorderParams, border_boxes, crop_resize
from rci.preprocess.pipeline import Preprocessed, preprocess

T, H, W = 12, 60, 80


def noise(seed: int, t: int = T, h: int = H, w: int = W) -> np.ndarray:
    """Uniform noise frames: every row and column has intensity std ~42, far above 8."""
    return np.random.default_rng(seed).integers(0, 256, size=(t, h, w, 3), dtype=np.uint8)


def test_letterbox_black_bars_found_exactly() -> None:
    frames = noise(0)
    frames[:, :9] = 0  # rows 0-8
    frames[:, 51:] = 0  # rows 51-59
    boxes = border_boxes(frames)
    assert boxes.shape == (T, 4) and boxes.dtype == np.int64
    # [x0, y0, x1, y1]: columns untouched (each column crosses the noise), rows 9..50 kept.
    assert (boxes == [0, 9, W, 51]).all()


def test_white_pillarbox_found_exactly() -> None:
    frames = noise(1)
    frames[:, :, :12] = 255
    frames[:, :, 70:] = 255
    assert (border_boxes(frames) == [12, 0, 70, H]).all()


def test_flat_bars_of_another_colour_are_not_bars() -> None:
    # A flat red band (grey 66.7) is as often a wall or flat artwork: only black and white
    # lines are bars; a coloured frame is left to the inset search.
    frames = noise(2)
    red = np.array([200, 0, 0], dtype=np.uint8)
    frames[:, :5] = red
    frames[:, :, :3] = red
    assert (border_boxes(frames) == [0, 0, W, H]).all()


def test_no_bars_keeps_the_full_frame() -> None:
    assert (border_boxes(noise(3)) == [0, 0, W, H]).all()


def test_slightly_noisy_bars_still_count() -> None:
    # Compression leaves bars near-black, not black: noise of std 3 (< max_std 8).
    frames = noise(4)
    rng = np.random.default_rng(5)
    frames[:, :10] = np.clip(16 + rng.normal(0, 3, size=(T, 10, W, 3)), 0, 255).astype(np.uint8)
    assert (border_boxes(frames) == [0, 10, W, H]).all()


def test_dark_video_is_not_cropped_to_nothing() -> None:
    # Every frame near-black (std 2): every line is flat, so nothing is cropped at all.
    rng = np.random.default_rng(6)
    dark = np.clip(8 + rng.normal(0, 2, size=(T, H, W, 3)), 0, 255).astype(np.uint8)
    assert (border_boxes(dark) == [0, 0, W, H]).all()


def test_min_keep_refuses_a_tiny_content_box() -> None:
    # A dark video with a bright 6 x 6 patch: only 6 of 60 rows (10 %) and 6 of 80 columns
    # are not flat, below min_keep (30 %), so the whole frame is kept.
    frames = np.full((T, H, W, 3), 5, dtype=np.uint8)
    frames[:, 27:33, 37:43] = 250
    assert (border_boxes(frames) == [0, 0, W, H]).all()
    # A 20-row band (33 %) is enough: rows 20..39 and all columns (each crosses the band).
    frames = np.full((T, H, W, 3), 5, dtype=np.uint8)
    frames[:, 20:40] = noise(7, h=20)
    assert (border_boxes(frames) == [0, 20, W, 40]).all()
    # With min_keep 0.05 the patch alone is kept.
    frames = np.full((T, H, W, 3), 5, dtype=np.uint8)
    frames[:, 27:33, 37:43] = 250
    assert (border_boxes(frames, BorderParams(min_keep=0.05)) == [37, 27, 43, 33]).all()


def test_bars_in_a_middle_span_are_found_only_there() -> None:
    # Frames 4..13 of 18 carry a letterbox (an inserted clip): a run of 10 >= min_run 3
    # barred frames, so all of 4..13 (first and last included) are cropped to rows 10..49
    # and no frame outside them is.
    frames = noise(8, t=18)
    frames[4:14, :10] = 0
    frames[4:14, 50:] = 0
    boxes = border_boxes(frames)
    assert (boxes[4:14] == [0, 10, W, 50]).all()
    outside = np.r_[0:4, 14:18]
    assert (boxes[outside] == [0, 0, W, H]).all()


def test_bars_shorter_than_min_run_are_left() -> None:
    # Two barred frames (a run of 2 < min_run 3) are not trusted as a letterbox.
    frames = noise(8, t=18)
    frames[4:6, :10] = 0
    assert (border_boxes(frames) == [0, 0, W, H]).all()


def test_one_dark_frame_is_never_cropped() -> None:
    # Frame 6 alone has a black top half (a cut to a dark shot): its neighbours disagree,
    # so nothing is cropped anywhere.
    frames = noise(9)
    frames[6, :30] = 0
    assert (border_boxes(frames) == [0, 0, W, H]).all()


def test_fading_band_is_not_a_border() -> None:
    # Top rows uniform in every frame but brightening by 20 per frame: each step drifts by
    # 20 > max_drift 12, so runs never exceed one frame: content (a fade), not bars.
    frames = noise(10)
    for f in range(T):
        frames[f, :10] = 20 * f
    assert (border_boxes(frames) == [0, 0, W, H]).all()
    # Drifting by 2 per frame (< 12 per step) they are bars.
    for f in range(T):
        frames[f, :10] = 2 * f
    assert (border_boxes(frames) == [0, 10, W, H]).all()


def test_short_video_uses_the_frames_it_has() -> None:
    # min_run is capped at the video's length: a 1-frame video with bars is cropped.
    frames = noise(11, t=1)
    frames[:, :8] = 0
    assert (border_boxes(frames) == [0, 8, W, H]).all()


def test_crop_resize_shape_and_crop() -> None:
    # Quadrants of four colours; each frame's box selects one quadrant.
    frame = np.zeros((H, W, 3), dtype=np.uint8)
    colours = {(0, 0): (255, 0, 0), (1, 0): (0, 255, 0), (0, 1): (0, 0, 255), (1, 1): (9, 99, 199)}
    for (qx, qy), colour in colours.items():
        frame[qy * 30 : (qy + 1) * 30, qx * 40 : (qx + 1) * 40] = colour
    frames = np.repeat(frame[None], 4, axis=0)
    boxes = np.array([[0, 0, 40, 30], [40, 0, 80, 30], [0, 30, 40, 60], [40, 30, 80, 60]])
    out = crop_resize(frames, boxes)
    assert out.shape == (4, MODEL_SIZE, MODEL_SIZE, 3) and out.dtype == np.uint8
    for n, (qx, qy) in enumerate([(0, 0), (1, 0), (0, 1), (1, 1)]):
        assert (out[n] == colours[qx, qy]).all()
    assert crop_resize(frames, boxes, size=32).shape == (4, 32, 32, 3)
    assert crop_resize(frames[:0], boxes[:0]).shape == (0, MODEL_SIZE, MODEL_SIZE, 3)


@pytest.mark.parametrize("box", [[0, 0, 448, 448], [10, 20, 410, 320]])
def test_crop_resize_is_antialiased(box) -> None:
    # A one-pixel checkerboard of 0 and 255 shrunk to 224 x 224 (by 2, and by 1.79 x 1.34):
    # an antialiased filter averages it to uniform gray ~127.5. Point sampling would give
    # all 0 or all 255 at exactly 2x, and moire stripes at the uneven scales.
    y, x = np.mgrid[:448, :448]
    board = (((y + x) % 2) * 255).astype(np.uint8)
    frames = np.repeat(board[None, :, :, None], 3, axis=3)
    out = crop_resize(frames, np.array([box]))
    assert abs(out.mean() - 127.5) < 2
    assert out.std() < 2


@pytest.fixture(scope="module")
def letterboxed_video(tmp_path_factory) -> bytes:
    # 4 s of a real photograph panned, letterboxed by samples.letterbox_crop_mirror: the
    # picture fills rows 45..314 of 360 (inner height int(360 * 0.75) // 2 * 2 = 270,
    # top (360 - 270) / 2 = 45).
    frames = [
        samples.letterbox_crop_mirror(f)
        for f in samples.pan_zoom(samples.photo("astronaut"), 4.0, seed=0)
    ]
    path = tmp_path_factory.mktemp("frames") / "letterbox.mp4"
    return samples.write_video(path, frames).read_bytes()


def test_preprocess_removes_a_letterbox(letterboxed_video) -> None:
    result = preprocess(letterboxed_video)
    assert result.frames.shape == (4, MODEL_SIZE, MODEL_SIZE, 3)
    assert result.timestamps.tolist() == [0, 1, 2, 3]
    assert result.duration == pytest.approx(4.0)
    # Fractions of the frame: x 0..1, y 45/360 = 0.125 .. 315/360 = 0.875, within 2 pixels
    # of H.264 ringing at the bar edge.
    np.testing.assert_array_equal(result.content_boxes[:, [0, 2]], [[0, 1]] * 4)
    np.testing.assert_allclose(result.content_boxes[:, 1], 0.125, atol=2 / 360)
    np.testing.assert_allclose(result.content_boxes[:, 3], 0.875, atol=2 / 360)
    assert result.content_boxes.dtype == np.float32
    # No bar left in the model input: the top and bottom rows show the picture, not a flat
    # line (intensity std across the row above max_std 8).
    gray = result.frames.astype(np.float32).mean(axis=3)
    assert (gray[:, 0].std(axis=1) > 8).all() and (gray[:, -1].std(axis=1) > 8).all()


def test_preprocessed_validation() -> None:
    with pytest.raises(ValueError, match="frames"):
        Preprocessed(np.zeros((1, 32, 32, 3), np.uint8), np.zeros(1, np.float32), 1.0, *[None] * 5)
    with pytest.raises(ValueError, match="timestamps"):
        Preprocessed(
            np.zeros((1, 224, 224, 3), np.uint8), np.zeros(2, np.float32), 1.0, *[None] * 5
        )


def test_tinted_flat_band_is_content() -> None:
    # A pale blue sky (grey 226, bright) is flat line by line, but padding is grey: its
    # colour cast, mean |channel - grey| = 8, exceeds max_chroma 2, so it stays.
    frames = noise(12)
    frames[:, :15] = np.array([214, 226, 238], dtype=np.uint8)
    assert (border_boxes(frames) == [0, 0, W, H]).all()
    # The same band in neutral 226 is a white bar.
    frames[:, :15] = 226
    assert (border_boxes(frames) == [0, 15, W, H]).all()


def test_gradient_backdrop_is_content() -> None:
    # Columns 0-39 a flat grey ramp 220 -> 254 (a vignetted backdrop): the lines within
    # max_shade_spread 16 of the edge column end at column 19, but columns 19-22 are as
    # flat, each within min_step 4 of the one before: no step, so no bar.
    frames = noise(13)
    ramp = np.linspace(220, 254, 40).round().astype(np.uint8)
    frames[:, :, :40] = ramp[None, None, :, None]
    assert (border_boxes(frames) == [0, 0, W, H]).all()


def test_black_bar_against_flat_dark_content_is_found() -> None:
    # Rows 0-9 black, rows 10-19 a flat navy sky (grey 13, tinted), then detail: the bar
    # ends in a step of 13 >= min_step, so rows 0-9 go and the sky stays.
    frames = noise(14)
    frames[:, :10] = 0
    frames[:, 10:20] = np.array([0, 0, 40], dtype=np.uint8)
    assert (border_boxes(frames) == [0, 10, W, H]).all()


def test_dark_scene_fading_to_black_is_content() -> None:
    # The bottom rows of a night shot fade to near-black: rows 40-59 neutral and dark, rows
    # 20-39 as flat and dark but tinted. The neutral rows end without a step (< 4) into the
    # tinted ones (uniform for fade_lines 4 and more), so nothing is cut.
    frames = noise(15)
    frames[:, 20:40] = np.array([2, 4, 12], dtype=np.uint8)
    frames[:, 40:] = 5
    assert (border_boxes(frames) == [0, 0, W, H]).all()


def test_tinted_last_bar_line_goes_with_the_bar() -> None:
    # Chroma subsampling tints the bar's last line before the picture (decoders differ by
    # a line here): one flat line of the bar's shade right before the picture is bar.
    frames = noise(16)
    frames[:, :10] = 0
    frames[:, 10] = np.array([0, 0, 10], dtype=np.uint8)
    assert (border_boxes(frames) == [0, 11, W, H]).all()


def test_odd_outermost_line_does_not_decide_the_bar_shade() -> None:
    # A bar of grey 20 whose outermost row is 0 (an encoder's edge line): the bar's shade is
    # the median of its first lines, so all 10 rows go, not just the first.
    frames = noise(17)
    frames[:, :10] = 20
    frames[:, 0] = 0
    assert (border_boxes(frames) == [0, 10, W, H]).all()
