"""The preprocess stage: video bytes -> descriptor-ready frames, timestamps, content box,
audio features."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rci.audio import AudioParams, audio_features, decode_audio
from rci.frames import MODEL_SIZE, BorderParams, content_boxes, crop_resize
from rci.media import DecodeLimits, sample_video


@dataclass
class Preprocessed:
    """Descriptor input for one video."""

    frames: np.ndarray  # (T, 224, 224, 3) uint8 RGB
    timestamps: np.ndarray  # (T,) float32 seconds
    duration: float  # seconds
    content_boxes: np.ndarray  # (T, 4) float32 [x0, y0, x1, y1], fractions of the frame
    audio_fbank: np.ndarray  # (F, 64) float32 log-mel dB, 100 frames/s; F = 0 without audio
    audio_mfcc: np.ndarray  # (F, 39) float32 MFCC with deltas, normalized over the clip

    def __post_init__(self) -> None:
        if self.frames.shape[1:] != (MODEL_SIZE, MODEL_SIZE, 3):
            raise ValueError(
                f"frames must be (T, {MODEL_SIZE}, {MODEL_SIZE}, 3), got {self.frames.shape}"
            )
        if self.timestamps.shape != (len(self.frames),):
            raise ValueError(
                f"timestamps must be ({len(self.frames)},), got {self.timestamps.shape}"
            )


def preprocess(
    data: bytes,
    limits: DecodeLimits = DecodeLimits(),
    borders: BorderParams = BorderParams(),
    audio: AudioParams = AudioParams(),
) -> Preprocessed:
    """Sample frames as limits say, find each frame's content box, crop and resize; audio
    features over the same span (the first spread_window seconds in spread sampling)."""
    video = sample_video(data, limits)
    features = audio_features(decode_audio(data, audio, limits.span), audio)
    boxes = content_boxes(video.frames, borders)
    _, h, w, _ = video.frames.shape
    return Preprocessed(
        frames=crop_resize(video.frames, boxes),
        timestamps=video.timestamps,
        duration=video.duration,
        content_boxes=(boxes / np.array([w, h, w, h])).astype(np.float32),
        audio_fbank=features.fbank,
        audio_mfcc=features.mfcc,
    )
