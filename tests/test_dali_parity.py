"""The gpu target's DALI operator chains (rci.preprocess.dali_ops) against the cpu target's
numpy and Pillow code, run here on DALI's CPU backend: the same operators the gpu target runs on the
GPU (docs/gpu.md has the GPU-against-CPU figures of the same chains)."""

from __future__ import annotations

import numpy as np
import pytest

from rci.bench.samples import clip_path
from rci.describe.descriptor import Descriptor
from rci.preprocess import dali_ops
from rci.preprocess.audio import audio_features
from rci.preprocess.frames import crop_resize
from rci.preprocess.media import sample_video


def speechlike(seconds: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * 16000)) / 16000
    tone = 0.3 * np.sin(2 * np.pi * 300 * t * (1 + t))
    return (tone + 0.05 * rng.standard_normal(len(t))).astype(np.float32)


def test_audio_chain_equals_numpy() -> None:
    clips = [speechlike(3.0, 1), speechlike(1.3, 2)]
    fbanks, mfccs = dali_ops.run_once(dali_ops.audio_features, clips)
    for clip, fbank, mfcc in zip(clips, fbanks, mfccs, strict=True):
        ours = audio_features(clip)
        assert fbank.shape == ours.fbank.shape and mfcc.shape == ours.mfcc.shape
        np.testing.assert_allclose(fbank, ours.fbank, atol=2e-3)  # dB
        np.testing.assert_allclose(mfcc, ours.mfcc, atol=1e-3)  # unit variance


@pytest.fixture(scope="module")
def bunny_frames() -> np.ndarray:
    return sample_video(clip_path("bigbuckbunny").read_bytes()).frames  # (6, 720, 1280, 3)


def test_crop_resize_equals_pillow(bunny_frames) -> None:
    t, h, w, _ = bunny_frames.shape
    boxes = np.array(
        [[0, 0, w, h], [10, 24, w - 30, h - 6], [w // 4, h // 5, 3 * w // 4, 3 * h // 4]] * 2
    )[:t]
    pillow = crop_resize(bunny_frames, boxes)
    (dali,) = dali_ops.run_once(
        dali_ops.crop_resize, list(bunny_frames), list(boxes.astype(np.float32))
    )
    dali = np.stack(dali)
    assert dali.shape == pillow.shape and dali.dtype == np.uint8
    diff = np.abs(dali.astype(np.int16) - pillow.astype(np.int16))
    # Both are antialiased bicubic; they round and clamp their kernels differently.
    assert diff.mean() < 0.5 and np.percentile(diff, 99) <= 2
    # What matters downstream: the descriptor hardly tells the two apart (measured cosine
    # 0.996-0.997 on these frames).
    a, b = Descriptor().embed(dali), Descriptor().embed(pillow)
    assert (a * b).sum(axis=1).min() > 0.99


def test_crop_resize_follows_each_frames_box(bunny_frames) -> None:
    # The left and right halves of one frame must come out as different pictures.
    frame = bunny_frames[2]
    h, w, _ = frame.shape
    boxes = np.array([[0, 0, w // 2, h], [w // 2, 0, w, h]], dtype=np.float32)
    (out,) = dali_ops.run_once(dali_ops.crop_resize, [frame, frame], list(boxes))
    expected = crop_resize(np.stack([frame, frame]), boxes.astype(np.int64))
    for got, want in zip(out, expected, strict=True):
        assert np.abs(got.astype(np.int16) - want.astype(np.int16)).mean() < 0.5
    assert np.abs(out[0].astype(np.int16) - out[1].astype(np.int16)).mean() > 10
