"""Video decoding: sample frames at a fixed rate by presentation timestamp with PyAV."""

from __future__ import annotations

import io
import math
from dataclasses import dataclass

import av
import numpy as np

from rci.errors import MediaError

MAX_PIXELS = 8192 * 8192  # larger frames are refused before any decoding


@dataclass(frozen=True)
class DecodeLimits:
    """What the decoder accepts. Durations in seconds, sizes in pixels."""

    fps: float = 1.0
    max_height: int = 720
    max_duration: float = 1800.0
    min_frames: int = 1
    # "fps": one frame every 1/fps seconds of the whole video. "spread": spread_frames
    # evenly spaced frames from the first spread_window seconds, for when a fixed cost per
    # video matters more than coverage (long videos are then accepted, only their start read).
    sampling: str = "fps"
    spread_frames: int = 30
    spread_window: float = 300.0

    def __post_init__(self) -> None:
        if self.sampling not in ("fps", "spread"):
            raise ValueError(f"sampling must be 'fps' or 'spread', got {self.sampling!r}")
        if self.spread_frames < 1 or self.spread_window <= 0:
            raise ValueError("spread_frames must be >= 1 and spread_window > 0 seconds")
        if not (0 < self.fps <= 30):
            raise ValueError(f"fps must be in (0, 30], got {self.fps}")
        if self.max_height < 32:
            raise ValueError(f"max_height must be >= 32 pixels, got {self.max_height}")
        if self.max_duration <= 0:
            raise ValueError(f"max_duration must be > 0 seconds, got {self.max_duration}")


@dataclass
class SampledVideo:
    """Frames sampled from one video."""

    frames: np.ndarray  # (T, H, W, 3) uint8 RGB
    timestamps: np.ndarray  # (T,) float32, seconds from the first frame
    duration: float  # seconds
    has_audio: bool

    def __post_init__(self) -> None:
        if self.frames.ndim != 4 or self.frames.shape[3] != 3 or self.frames.dtype != np.uint8:
            raise ValueError(f"frames must be (T, H, W, 3) uint8, got {self.frames.shape}")
        if self.timestamps.shape != (len(self.frames),):
            raise ValueError(
                f"timestamps must be ({len(self.frames)},), got {self.timestamps.shape}"
            )


def _output_size(width: int, height: int, max_height: int) -> tuple[int, int]:
    """Even (width, height) no taller than max_height, aspect kept."""
    if height <= max_height:
        return width - width % 2, height - height % 2
    scale = max_height / height
    out_w = max(2, int(round(width * scale / 2)) * 2)
    return out_w, max_height - max_height % 2


def _declared_durations(
    container: av.container.InputContainer, stream: av.VideoStream
) -> tuple[float, float]:
    """(video stream, whole container) durations in seconds from the headers; nan if unsaid.

    Matroska and WebM declare no per-stream duration, and a container's duration covers its
    longest stream (audio may outlast the video), so only the first can prove truncation.
    """
    video = math.nan
    if stream.duration is not None and stream.time_base is not None:
        video = float(stream.duration * stream.time_base)
    whole = container.duration / av.time_base if container.duration is not None else math.nan
    return video, whole


def sample_video(data: bytes, limits: DecodeLimits = DecodeLimits()) -> SampledVideo:
    """Decode `data` and keep the first frame at or after each multiple of 1/fps seconds.

    Frames are chosen by presentation timestamp, so variable frame rate is handled.
    Raises MediaError with a reason for anything that is not a whole, decodable video.
    """
    if len(data) == 0:
        raise MediaError("empty input: 0 bytes")
    try:
        container = av.open(io.BytesIO(data), mode="r")
    except (av.error.FFmpegError, UnicodeDecodeError) as exc:
        raise MediaError(f"not a decodable media container ({exc})") from exc
    with container:
        if not container.streams.video:
            raise MediaError("no video stream in the container")
        stream = container.streams.video[0]
        width, height = stream.codec_context.width, stream.codec_context.height
        if width <= 0 or height <= 0:
            raise MediaError(f"video stream has no frame size ({width}x{height})")
        if width * height > MAX_PIXELS:
            raise MediaError(f"frame size {width}x{height} exceeds {MAX_PIXELS} pixels")
        declared, whole = _declared_durations(container, stream)
        length = declared if not math.isnan(declared) else whole
        if limits.sampling == "spread":
            # An unknown length spreads over the whole window and stops where the video does.
            span = limits.spread_window if math.isnan(length) else min(length, limits.spread_window)
            period, stop_at = span / limits.spread_frames, span
        else:
            if length > limits.max_duration:
                raise MediaError(
                    f"video is {length:.1f} s long; the maximum is {limits.max_duration:.0f} s"
                )
            period, stop_at = 1.0 / limits.fps, limits.max_duration
        out_w, out_h = _output_size(width, height, limits.max_height)
        stream.thread_type = "AUTO"
        frames, times, last, stopped = _decode_sampled(
            container, stream, period, stop_at, limits.sampling == "fps", (out_w, out_h)
        )
        has_audio = bool(container.streams.audio)
    if len(frames) < limits.min_frames:
        raise MediaError("no decodable video frames")
    frame_time = 1.0 / float(stream.average_rate) if stream.average_rate else 1.0 / limits.fps
    decoded_span = last + frame_time
    # Where only the spread window was read, its end says nothing about truncation.
    truncated = not math.isnan(declared) and declared - decoded_span > max(2.0, 0.1 * declared)
    if truncated and not stopped:
        raise MediaError(
            f"truncated video: frames stop at {last:.1f} s of a declared {declared:.1f} s"
        )
    duration = declared if not math.isnan(declared) else decoded_span
    return SampledVideo(
        frames=np.stack(frames),
        timestamps=np.asarray(times, dtype=np.float32),
        duration=float(duration),
        has_audio=has_audio,
    )


def _decode_sampled(
    container: av.container.InputContainer,
    stream: av.VideoStream,
    period: float,
    stop_at: float,
    refuse_longer: bool,
    size: tuple[int, int],
) -> tuple[list[np.ndarray], list[float], float, bool]:
    """Decode frames, keep the first at or after each multiple of period seconds before
    stop_at, as (H, W, 3) uint8 at size (width, height).

    Past stop_at, refuse_longer raises MediaError (the video is over its maximum duration);
    otherwise decoding stops there. Returns the kept frames, their times, the time of the
    last decoded frame (seconds) and whether decoding stopped before the video's end.
    """
    frames: list[np.ndarray] = []
    times: list[float] = []
    start: float | None = None
    next_time = 0.0
    t = 0.0
    try:
        rate = float(stream.average_rate or stream.guessed_rate or 25)
        for count, frame in enumerate(container.decode(stream)):
            # Raw elementary streams (.h264) carry no timestamps: count at the nominal rate.
            when = frame.time if frame.time is not None else count / rate
            if start is None:
                start = when
            t = when - start
            if t > stop_at or (not refuse_longer and t + 0.02 >= stop_at and frames):
                if refuse_longer:
                    raise MediaError(f"video runs past {stop_at:.0f} s, the maximum duration")
                return frames, times, t, True
            # A half-frame tolerance keeps 29.97 fps sources on whole seconds.
            if t + 0.02 < next_time:
                continue
            rgb = frame.reformat(
                width=size[0], height=size[1], format="rgb24", interpolation="AREA"
            )
            frames.append(rgb.to_ndarray())
            times.append(round(t, 3))
            next_time = (math.floor(t / period + 0.02) + 1) * period
    except av.error.FFmpegError as exc:
        raise MediaError(
            f"corrupt video: decoding failed after {len(frames)} frames ({exc})"
        ) from exc
    return frames, times, t, False
