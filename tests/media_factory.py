"""Small real videos for edge cases, encoded with PyAV into a folder (never committed)."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np

from rci.bench.samples import mux_audio


def encode(path: Path, frames: int, *, fps: int = 25, size=(128, 96), faststart=False) -> bytes:
    """An H.264 MP4 of `frames` seeded noise frames; returns its bytes."""
    rng = np.random.default_rng(frames)
    options = {"movflags": "faststart"} if faststart else {}
    with av.open(str(path), "w", options=options) as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height = size
        stream.pix_fmt = "yuv420p"
        stream.options = {"preset": "ultrafast"}
        base = rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
        for n in range(frames):
            image = np.roll(base, n, axis=1)
            container.mux(stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")))
        container.mux(stream.encode(None))
    return path.read_bytes()


def audio_only(path: Path, seconds: float = 2.0) -> bytes:
    """An M4A with one AAC track and no video stream."""
    with av.open(str(path), "w", format="mp4") as container:
        stream = container.add_stream("aac", rate=16000, layout="mono")
        samples = np.zeros((1, 1024), dtype=np.float32)
        for _ in range(int(seconds * 16000 / 1024)):
            frame = av.AudioFrame.from_ndarray(samples, format="flt", layout="mono")
            frame.sample_rate = 16000
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return path.read_bytes()


def melody(seconds: float, seed: int = 0, rate: int = 16000) -> np.ndarray:
    """(S,) float32 samples: random notes of 0.1-0.4 s with a harmonic, like a tune."""
    rng = np.random.default_rng(seed)
    out, total = [], 0
    while total < seconds * rate:
        n = int(rng.uniform(0.1, 0.4) * rate)
        f = 220.0 * 2 ** (rng.integers(0, 24) / 12)
        t = np.arange(n) / rate
        out.append(0.2 * (np.sin(2 * np.pi * f * t) + 0.5 * np.sin(4 * np.pi * f * t)))
        total += n
    return np.concatenate(out)[: int(seconds * rate)].astype(np.float32)


def encode_with_audio(
    path: Path, frames: np.ndarray, samples: np.ndarray | None, *, fps: int = 10, rate=16000
) -> bytes:
    """An MP4 of (T, H, W, 3) uint8 frames (H.264) and mono samples (AAC), or no audio
    stream when samples is None; returns its bytes."""
    with av.open(str(path), "w") as container:
        video = container.add_stream("libx264", rate=fps)
        video.height, video.width = frames.shape[1:3]
        video.pix_fmt, video.options = "yuv420p", {"preset": "ultrafast"}
        audio = None if samples is None else container.add_stream("aac", rate=rate, layout="mono")
        for image in frames:
            container.mux(video.encode(av.VideoFrame.from_ndarray(image, format="rgb24")))
        container.mux(video.encode(None))
        if audio is not None:
            mux_audio(container, audio, samples)
    return path.read_bytes()


def drifting(count: int, seed: int, size=(160, 120)) -> np.ndarray:
    """(count, H, W, 3) uint8: a smooth random picture drifting sideways, 1 pixel a frame."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (6, 8, 3)).astype(np.float32)
    ys, xs = np.linspace(0, 5, size[1]), np.linspace(0, 7, size[0] + count)
    y0, x0 = ys.astype(int).clip(max=4), xs.astype(int).clip(max=6)
    fy, fx = (ys - y0)[:, None, None], (xs - x0)[None, :, None]
    wide = (
        small[y0][:, x0] * (1 - fy) * (1 - fx) + small[y0 + 1][:, x0] * fy * (1 - fx)
        + small[y0][:, x0 + 1] * (1 - fy) * fx + small[y0 + 1][:, x0 + 1] * fy * fx
    )  # fmt: skip
    return np.stack([wide[:, n : n + size[0]] for n in range(count)]).astype(np.uint8)
