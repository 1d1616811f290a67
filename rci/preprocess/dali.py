"""The preprocess stage in DALI: the same outputs as rci.preprocess.pipeline, with DALI decoding the
planned frames (NVDEC on "gpu"), resizing them and computing the audio features.

"gpu" is the gpu target's path. "cpu" runs the same pipelines on DALI's CPU backend, whose
decoder here takes VP8, VP9 and MJPEG but not H.264: that is how CI checks the pipelines
against the cpu target's code without a GPU.

Frame numbers come from packet timestamps (rci.preprocess.media.plan_frames), so sampling follows
presentation time as on the cpu target; the content box is found on the decoded frames with
the cpu target's code. Audio is decoded by PyAV (DALI's decoders take no AAC) and its
features computed by rci.preprocess.dali_ops.
"""

from __future__ import annotations

import numpy as np
from nvidia.dali import fn, pipeline_def, types

from rci.errors import MediaError
from rci.preprocess import dali_ops
from rci.preprocess.audio import AudioParams, decode_audio
from rci.preprocess.audio_prints import fingerprint_audio
from rci.preprocess.frames import MODEL_SIZE, BorderParams, framed_boxes
from rci.preprocess.frames import crop_resize as host_crop_resize
from rci.preprocess.media import DecodeLimits, plan_frames
from rci.preprocess.pipeline import Preprocessed
from rci.preprocess.screen import ScreenParams

CROP_BATCH = 64  # frames per crop-and-resize run on the GPU
DECODE_BATCH = 64  # planned frames per decoder run: bounds GPU memory (64 at 4K is 1.6 GB)


class DaliPreprocessor:
    """Callable bytes -> Preprocessed; build once per model instance."""

    def __init__(
        self,
        limits: DecodeLimits = DecodeLimits(),
        device: str = "gpu",
        device_id: int = 0,
        borders: BorderParams = BorderParams(),
        audio: AudioParams = AudioParams(),
        screen: ScreenParams | None = ScreenParams(),
    ) -> None:
        self.limits, self.borders, self.audio, self.screen = limits, borders, audio, screen
        if device not in ("gpu", "cpu"):
            raise ValueError(f"device must be 'gpu' or 'cpu', got {device!r}")
        gpu = device == "gpu"
        # One request in, one result out: no prefetching ahead of inputs that are not there yet.
        common = {
            "num_threads": 2, "device_id": device_id if gpu else None,
            "exec_dynamic": True, "prefetch_queue_depth": 1,
        }  # fmt: skip
        self._factories = {
            "decode": lambda: _decode_pipeline(gpu, batch_size=1, **common),
            "crop": lambda: _crop_pipeline(gpu, batch_size=CROP_BATCH, **common),
            "audio": lambda: _audio_pipeline(gpu, audio, batch_size=1, **common),
        }
        self._pipes = {name: self._fresh(name) for name in self._factories}

    def _fresh(self, name: str):
        pipe = self._factories[name]()
        pipe.build()
        return pipe

    def _run(self, name: str, feeds: dict[str, list]) -> tuple:
        """Feed one batch to pipeline `name` and run it. After any failure the pipeline is
        rebuilt, so no input of the failed request lingers for the next one."""
        pipe = self._pipes[name]
        try:
            for source, batch in feeds.items():
                pipe.feed_input(source, batch)
            return pipe.run()
        except Exception:
            self._pipes[name] = self._fresh(name)
            raise

    def __call__(
        self,
        data: bytes,
        cancelled=None,
        whole: bool = True,
        query_audio: bool = False,
        limits: DecodeLimits | None = None,
    ) -> Preprocessed:
        """The video's frames, boxes and audio features; with `whole`, its frames with an
        inset also resized whole (Preprocessed.whole_frames); with `query_audio`, the
        audio's query views; `limits` for this call (default: the instance's). The
        fingerprints are the cpu target's code on the same samples."""
        # `cancelled` is not polled: the GPU decodes the planned frames in one call.
        limits = limits or self.limits
        plan = plan_frames(data, limits)
        frames = self.decode_frames(data, plan.indices, plan.size)
        found = framed_boxes(frames, self.borders, screen=self.screen)
        boxes, outer = found.boxes, found.outer
        _, h, w, _ = frames.shape
        samples = decode_audio(data, self.audio, limits.span)
        fbank, mfcc = self.audio_features(samples)
        prints, views = fingerprint_audio(samples, self.audio.sample_rate, query_audio)
        rows = np.flatnonzero((outer != boxes).any(axis=1)) if whole else np.zeros(0, int)
        cropped = self.crop_resize(frames, boxes)
        screens = np.flatnonzero(~np.isnan(found.quads).any(axis=(1, 2)))
        # A tilted screen is rectified on the host (Pillow, as the cpu target): such frames
        # are few, and DALI's warp would need its own parity tests.
        quads = found.quads[screens]
        cropped[screens] = host_crop_resize(frames[screens], boxes[screens], quads=quads)
        return Preprocessed(
            frames=cropped,
            whole_frames=self.crop_resize(frames[rows], outer[rows]),
            whole_rows=rows,
            timestamps=plan.timestamps,
            duration=plan.duration,
            content_boxes=(boxes / np.array([w, h, w, h])).astype(np.float32),
            audio_fbank=fbank,
            audio_mfcc=mfcc,
            audio_prints=prints,
            audio_views=views,
        )

    def decode_frames(self, data: bytes, indices: np.ndarray, size: tuple[int, int]) -> np.ndarray:
        """(T, H, W, 3) uint8 host copies of the planned frames at size (width, height),
        decoded DECODE_BATCH frames per run."""
        encoded = np.frombuffer(data, dtype=np.uint8)
        shape = np.array(size[::-1], dtype=np.float32)
        parts = []
        for start in range(0, len(indices), DECODE_BATCH):
            chunk = indices[start : start + DECODE_BATCH]
            feeds = {"encoded": [encoded], "frames": [chunk], "size": [shape]}
            try:
                (frames,) = self._run("decode", feeds)
            except RuntimeError as exc:
                raise MediaError(f"corrupt video: DALI decoding failed ({exc})") from exc
            parts.append(np.array(_host(frames)[0]))
            if len(parts[-1]) != len(chunk):
                raise MediaError(
                    f"corrupt video: {len(parts[-1])} of {len(chunk)} planned frames decoded"
                )
        return np.concatenate(parts)

    def crop_resize(self, frames: np.ndarray, boxes: np.ndarray) -> np.ndarray:
        """(T, 224, 224, 3) uint8: each frame's box cut out and resized on the GPU."""
        parts = [np.zeros((0, MODEL_SIZE, MODEL_SIZE, 3), np.uint8)]
        for start in range(0, len(frames), CROP_BATCH):
            chunk = slice(start, start + CROP_BATCH)
            feeds = {"frames": list(frames[chunk]), "boxes": list(boxes[chunk].astype(np.float32))}
            (out,) = self._run("crop", feeds)
            parts.append(np.stack([np.array(x) for x in _host(out)]))
        return np.concatenate(parts)

    def audio_features(self, samples: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(fbank (F, n_mels), mfcc (F, 3 * n_mfcc)) float32 of (S,) samples, on the GPU."""
        if samples.size < self.audio.frame_length:
            return (
                np.zeros((0, self.audio.n_mels), np.float32),
                np.zeros((0, self.audio.mfcc_width), np.float32),
            )
        fbank, mfcc = self._run("audio", {"samples": [samples]})
        return np.array(_host(fbank)[0]), np.array(_host(mfcc)[0])


def _host(batch):
    """A pipeline output batch in host memory."""
    return batch.as_cpu() if hasattr(batch, "as_cpu") else batch


def _decode_pipeline(gpu: bool, **kwargs):
    @pipeline_def(**kwargs)
    def pipeline():
        encoded = fn.external_source(name="encoded", dtype=types.UINT8)
        frames = fn.external_source(name="frames", dtype=types.INT32)
        size = fn.external_source(name="size", dtype=types.FLOAT)
        # pad_mode "none": a frame the decoder cannot deliver is an error, never a black
        # frame (decode_frames also checks the count).
        video = fn.decoders.video(
            encoded, device="mixed" if gpu else "cpu", frames=frames, pad_mode="none"
        )
        # The cpu target decodes with an area filter; an antialiased linear resize is its match.
        return fn.resize(video, size=size, antialias=True, dtype=types.UINT8)

    return pipeline()


def _crop_pipeline(gpu: bool, **kwargs):
    @pipeline_def(**kwargs)
    def pipeline():
        frames = fn.external_source(name="frames", dtype=types.UINT8, layout="HWC")
        boxes = fn.external_source(name="boxes", dtype=types.FLOAT)
        return dali_ops.crop_resize(frames.gpu() if gpu else frames, boxes)

    return pipeline()


def _audio_pipeline(gpu: bool, params: AudioParams, **kwargs):
    @pipeline_def(**kwargs)
    def pipeline():
        samples = fn.external_source(name="samples", dtype=types.FLOAT)
        return dali_ops.audio_features(samples.gpu() if gpu else samples, params)

    return pipeline()
