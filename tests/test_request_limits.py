"""Bounds on one request, whatever its headers say: size, pixels of every frame, frames
decoded, wall time, a client that has gone; and the streamed preprocessing keeps the
whole-video answer while holding only a window of full frames."""

from __future__ import annotations

import io

import av
import numpy as np
import pytest

from rci.errors import MediaError
from rci.preprocess.frames import content_boxes, crop_resize
from rci.preprocess.media import MIB, BufferFile, DecodeLimits, FrameStream, sample_video
from rci.preprocess.pipeline import (
    CHUNK_FRAMES,
    CONTEXT_FRAMES,
    EMBED_FRAMES,
    Embedded,
    embed_video,
    preprocess,
)
from tests.test_media import encode


def h264_annexb(size: tuple[int, int], frames: int, seed: int) -> bytes:
    """A raw H.264 elementary stream (no container, no duration) of noise frames."""
    out = av.open(io.BytesIO(), "w", format="h264")
    stream = out.add_stream("libx264", rate=25)
    stream.width, stream.height = size
    stream.pix_fmt = "yuv420p"
    rng = np.random.default_rng(seed)
    packets = []
    for _ in range(frames):
        image = rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
        packets += stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24"))
    packets += stream.encode(None)
    data = b"".join(bytes(p) for p in packets)
    out.close()
    return data


def test_a_stream_that_grows_midway_is_refused_at_the_frame() -> None:
    # The header (first SPS) says 64x64; from frame 10 on the pictures are 256x256.
    data = h264_annexb((64, 64), 10, 1) + h264_annexb((256, 256), 10, 2)
    limits = DecodeLimits(max_pixels=128 * 128)
    assert len(sample_video(h264_annexb((64, 64), 10, 1), limits).frames) == 1
    with pytest.raises(MediaError, match="frame 10 is 256x256, over 16384 pixels"):
        sample_video(data, limits)


def test_frames_decoded_are_counted_sampled_or_not(tmp_path) -> None:
    data = encode(tmp_path / "v.mp4", 300)  # 12 s at 25 fps: 12 sampled, 300 decoded
    assert len(sample_video(data, DecodeLimits(max_decoded_frames=300)).frames) == 12
    with pytest.raises(MediaError, match="over 299 (packets|frames)"):
        sample_video(data, DecodeLimits(max_decoded_frames=299))


def test_raw_stream_without_duration_is_refused_as_it_passes_max_duration() -> None:
    data = h264_annexb((32, 32), 200, 3)  # 8 s at the nominal 25 fps, no duration anywhere
    with pytest.raises(MediaError, match="runs past 5 s"):
        sample_video(data, DecodeLimits(max_duration=5))


def test_wall_time_and_cancellation(tmp_path) -> None:
    data = encode(tmp_path / "v.mp4", 50)
    with pytest.raises(MediaError, match="decoding took over 0 s"):
        sample_video(data, DecodeLimits(max_seconds=1e-9))
    with pytest.raises(MediaError, match="cancelled"):
        list(FrameStream(data, cancelled=lambda: True))
    assert len(list(FrameStream(data, cancelled=lambda: False))) == 2


def test_request_size_cap(tmp_path) -> None:
    data = encode(tmp_path / "v.mp4", 25)
    with pytest.raises(MediaError, match=r"input is 0.0 MiB; the maximum is 0 MiB"):
        preprocess(data, DecodeLimits(max_bytes=len(data) - 1))
    assert len(preprocess(data, DecodeLimits(max_bytes=len(data))).frames) == 1
    assert DecodeLimits().max_bytes == 512 * MIB


def letterboxed_with_inset(path, seconds: int) -> bytes:
    """`seconds` s at 5 fps, 320x240: black bars top and bottom (40 px), a grey frame
    around a moving noise picture at x 80-240, y 70-170."""
    rng = np.random.default_rng(seconds)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=5)
        stream.width, stream.height, stream.pix_fmt = 320, 240, "yuv420p"
        for _ in range(seconds * 5):
            image = np.zeros((240, 320, 3), np.uint8)
            image[40:200] = 128 + (np.arange(320) // 40 % 2 * 40)[None, :, None]
            image[70:170, 80:240] = rng.integers(0, 256, (100, 160, 3), dtype=np.uint8)
            container.mux(stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")))
        container.mux(stream.encode(None))
    return path.read_bytes()


@pytest.mark.parametrize("seconds", [CHUNK_FRAMES // 2, 2 * CHUNK_FRAMES + CONTEXT_FRAMES + 3])
def test_streamed_preprocessing_matches_the_whole_video_search(tmp_path, seconds) -> None:
    data = letterboxed_with_inset(tmp_path / "v.mp4", seconds)
    video = sample_video(data)
    boxes = content_boxes(video.frames)
    result = preprocess(data)
    h, w = video.frames.shape[1:3]
    np.testing.assert_array_equal(np.round(result.content_boxes * [w, h, w, h]), boxes)
    np.testing.assert_array_equal(result.frames, crop_resize(video.frames, boxes))
    np.testing.assert_array_equal(result.timestamps, video.timestamps)
    assert result.duration == video.duration and len(result.frames) == seconds
    assert (boxes[:, 1] >= 40).all()  # the bars are found in every window ...
    assert (np.abs(boxes - [80, 70, 240, 170]) <= 3).all()  # ... and the inset in all


def test_a_request_array_is_decoded_in_place(tmp_path) -> None:
    data = encode(tmp_path / "v.mp4", 50)
    array = np.frombuffer(data, dtype=np.uint8)  # what the Python backend hands over
    assert preprocess(array).frames.tobytes() == preprocess(data).frames.tobytes()
    f = BufferFile(array)
    assert f.read(4) == data[:4] and f.seek(-3, io.SEEK_END) == len(data) - 3
    assert f.read() == data[-3:] and f.read(10) == b""


def test_very_wide_frames_are_scaled_to_32_by_9(tmp_path) -> None:
    # 4000x90 is under max_pixels; held at full width it would cost 1 MB a frame per row.
    data = encode(tmp_path / "wide.mp4", 25, size=(4000, 90))
    video = sample_video(data)
    assert video.frames.shape[1:] == (58, 2560, 3)  # 90 * 2560 / 4000 = 57.6 -> even 58
    assert sample_video(encode(tmp_path / "hd.mp4", 25, size=(1280, 720))).frames.shape[1:3] == (
        720,
        1280,
    )


def test_frames_are_embedded_as_they_are_ready(tmp_path) -> None:
    """embed_video hands the descriptor at most EMBED_FRAMES frames at a time, in order, and
    keeps everything else preprocess returns."""
    data = encode(tmp_path / "v.mp4", 2 * EMBED_FRAMES + 7, rate=1, size=(96, 64))
    sizes = []

    def embed(frames: np.ndarray) -> np.ndarray:  # a frame's "embedding": its pixel sums
        sizes.append(len(frames))
        return frames.reshape(len(frames), 512, -1).sum(axis=2, dtype=np.float32)

    video, whole = embed_video(data, embed), preprocess(data)
    assert sizes == [EMBED_FRAMES, EMBED_FRAMES, 7]
    np.testing.assert_array_equal(video.embeddings, embed(whole.frames))
    np.testing.assert_array_equal(video.timestamps, whole.timestamps)
    np.testing.assert_array_equal(video.content_boxes, whole.content_boxes)
    assert video.duration == whole.duration
    assert video.mirrored is None
    # With the mirror images: one call per window still, of twice the frames (the plan's
    # largest batch, 256, holds them), the second half flipped left to right.
    sizes.clear()
    both = embed_video(data, embed, mirror=True)
    assert sizes == [2 * EMBED_FRAMES, 2 * EMBED_FRAMES, 14]
    np.testing.assert_array_equal(both.embeddings, embed(whole.frames))
    np.testing.assert_array_equal(both.mirrored, embed(whole.frames[:, :, ::-1]))
    assert not np.array_equal(both.mirrored, both.embeddings)
    of = Embedded.of(whole, embed, mirror=True)
    np.testing.assert_array_equal(of.mirrored, both.mirrored)
