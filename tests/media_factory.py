"""Small real videos for edge cases, encoded with PyAV into a folder (never committed)."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np


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
