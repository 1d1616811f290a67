"""The gpu target's preprocessing (rci.preprocess.dali) run on DALI's CPU backend against the
cpu target's: frames picked by packet timestamp, decoded by DALI, boxes, crops and audio.

DALI's CPU decoder here takes VP9, not H.264, so these videos are VP9 with Opus audio; on a
GPU the same pipelines decode with NVDEC (docs/gpu.md)."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image

from rci.bench.samples import clip_path, read_frames
from rci.describe.descriptor import Descriptor
from rci.errors import MediaError
from rci.preprocess.dali import DaliPreprocessor
from rci.preprocess.media import DecodeLimits, plan_frames, sample_video
from rci.preprocess.pipeline import preprocess
from tests.test_media import number_of, numbered


def encode_vp9(path: Path, frames: list[np.ndarray], pts_ms: list[int] | None = None,
               audio_seconds: float = 0.0) -> bytes:  # fmt: skip
    """WebM: VP9 frames at 25 fps (or at pts_ms), and a 440 Hz tone over noise in Opus."""
    with av.open(str(path), "w") as container:
        video = container.add_stream("libvpx-vp9", rate=25)
        video.height, video.width = frames[0].shape[:2]
        video.pix_fmt = "yuv420p"
        video.options = {"crf": "20", "b": "0", "deadline": "realtime", "cpu-used": "8"}
        if pts_ms is not None:
            video.codec_context.time_base = Fraction(1, 1000)
        audio = (
            container.add_stream("libopus", rate=48000, layout="mono") if audio_seconds else None
        )
        for n, frame in enumerate(frames):
            picture = av.VideoFrame.from_ndarray(frame, format="rgb24")
            if pts_ms is not None:
                picture.pts, picture.time_base = pts_ms[n], Fraction(1, 1000)
            container.mux(video.encode(picture))
        container.mux(video.encode(None))
        if audio is not None:
            t = np.arange(int(audio_seconds * 48000)) / 48000
            rng = np.random.default_rng(0)
            wave = 0.3 * np.sin(2 * np.pi * 440 * t) + 0.02 * rng.standard_normal(len(t))
            for start in range(0, len(wave), 960):
                chunk = wave[None, start : start + 960].astype(np.float32)
                piece = av.AudioFrame.from_ndarray(chunk, format="flt", layout="mono")
                piece.sample_rate = 48000
                container.mux(audio.encode(piece))
            container.mux(audio.encode(None))
    return path.read_bytes()


@pytest.fixture(scope="module")
def dali_cpu() -> DaliPreprocessor:
    return DaliPreprocessor(device="cpu")


@pytest.fixture(scope="module")
def letterboxed(tmp_path_factory) -> bytes:
    """bigbuckbunny at 640x280 in black bars to 640x360, 5.3 s, with audio."""
    frames = []
    for frame in read_frames(clip_path("bigbuckbunny")):
        canvas = np.zeros((360, 640, 3), np.uint8)
        canvas[40:320] = np.asarray(Image.fromarray(frame).resize((640, 280)))
        frames.append(canvas)
    return encode_vp9(tmp_path_factory.mktemp("dali") / "bunny.webm", frames, audio_seconds=5.2)


@pytest.mark.parametrize("sampling", ["fps", "spread"])
def test_dali_decodes_the_planned_frames(tmp_path, dali_cpu, sampling) -> None:
    # Variable frame rate; each frame shows its number. DALI must return exactly the frames
    # the plan names, which are the frames the PyAV path keeps.
    pts = [0, 100, 900, 1300, 1350, 2000, 2500, 4200, 4300, 5100]
    data = encode_vp9(tmp_path / "vfr.webm", [numbered(n) for n in range(10)], pts_ms=pts)
    limits = DecodeLimits(sampling=sampling, spread_frames=4)
    plan = plan_frames(data, limits)
    frames = dali_cpu.decode_frames(data, plan.indices, plan.size)
    assert [number_of(f) for f in frames] == plan.indices.tolist()
    assert plan.indices.tolist() == [number_of(f) for f in sample_video(data, limits).frames]


def test_same_outputs_as_the_cpu_target(letterboxed, dali_cpu) -> None:
    ours, theirs = dali_cpu(letterboxed), preprocess(letterboxed)
    np.testing.assert_array_equal(ours.timestamps, theirs.timestamps)
    assert ours.duration == pytest.approx(theirs.duration)
    # Bars at rows 40 and 320 of 360: found the same way on both decodes, to a pixel.
    np.testing.assert_allclose(ours.content_boxes, theirs.content_boxes, atol=1.5 / 360)
    np.testing.assert_allclose(theirs.content_boxes[0], [0, 40 / 360, 1, 320 / 360], atol=2 / 360)
    # The decoders convert YUV to RGB with different rounding (measured mean |diff| 1.2).
    diff = np.abs(ours.frames.astype(np.int16) - theirs.frames.astype(np.int16))
    assert diff.mean() < 2.5
    a, b = Descriptor().embed(ours.frames), Descriptor().embed(theirs.frames)
    assert (a * b).sum(axis=1).min() > 0.99
    assert ours.audio_fbank.shape == theirs.audio_fbank.shape and len(ours.audio_fbank) > 500
    np.testing.assert_allclose(ours.audio_fbank, theirs.audio_fbank, atol=2e-3)  # dB
    np.testing.assert_allclose(ours.audio_mfcc, theirs.audio_mfcc, atol=1e-3)
    # The fingerprints come from the same samples by the same code: equal, bit for bit.
    assert len(theirs.audio_prints.bits) > 0
    np.testing.assert_array_equal(ours.audio_prints.bits, theirs.audio_prints.bits)
    np.testing.assert_array_equal(ours.audio_prints.times, theirs.audio_prints.times)


def test_video_without_audio(tmp_path, dali_cpu) -> None:
    data = encode_vp9(tmp_path / "silent.webm", [numbered(n) for n in range(30)])
    out = dali_cpu(data)
    assert out.audio_fbank.shape == (0, 64) and out.audio_mfcc.shape == (0, 39)
    assert out.frames.shape == (2, 224, 224, 3)


@pytest.mark.parametrize("data, message", [
    (b"", "empty input"),
    (b"this is not a video\n" * 100, "not a decodable media container"),
])  # fmt: skip
def test_bad_input_is_a_media_error(dali_cpu, data, message) -> None:
    with pytest.raises(MediaError, match=message):
        dali_cpu(data)


def test_corrupt_pictures_are_a_media_error(letterboxed, dali_cpu) -> None:
    # Packets intact (the plan reads fine), coded pictures overwritten with noise.
    corrupt = bytearray(letterboxed)
    rng = np.random.default_rng(3)
    middle = len(corrupt) // 2
    corrupt[middle : middle + 20_000] = rng.integers(0, 256, 20_000, dtype=np.uint8).tobytes()
    with pytest.raises(MediaError):
        dali_cpu(bytes(corrupt))
    assert dali_cpu(letterboxed).frames.shape[0] == 6  # the pipeline still works afterwards


def test_unknown_device() -> None:
    with pytest.raises(ValueError, match="device"):
        DaliPreprocessor(device="tpu")


def test_a_frame_the_decoder_cannot_deliver_is_an_error(tmp_path, dali_cpu) -> None:
    # Never a padded black frame; and the pipeline keeps working after the failure.
    data = encode_vp9(tmp_path / "short.webm", [numbered(n) for n in range(30)])
    plan = plan_frames(data)
    with pytest.raises(MediaError, match="DALI decoding failed"):
        dali_cpu.decode_frames(data, np.array([0, 99], np.int32), plan.size)
    assert [number_of(f) for f in dali_cpu.decode_frames(data, plan.indices, plan.size)] == [0, 25]


def test_long_plans_are_decoded_in_chunks(tmp_path, dali_cpu) -> None:
    # 100 planned frames: two decoder runs (DECODE_BATCH 64), still exactly those frames.
    data = encode_vp9(tmp_path / "all.webm", [numbered(n) for n in range(100)])
    plan = plan_frames(data, DecodeLimits(fps=25))
    assert len(plan.indices) == 100
    frames = dali_cpu.decode_frames(data, plan.indices, plan.size)
    assert [number_of(f) for f in frames] == list(range(100))
