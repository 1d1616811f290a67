"""Video decoding: sample frames at a fixed rate by presentation timestamp with PyAV.

One pass over the packets (no decoding) plans which frames to keep; only the groups of
pictures that hold one are decoded, each up to its last kept frame. A kept frame moves to a
keyframe within DecodeLimits.keyframe_snap of its moment (a quarter of the sampling period
at most), so where keyframes fall near the sampling grid only keyframes are decoded."""

from __future__ import annotations

import copy
import dataclasses
import functools
import io
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import av
import numpy as np

from rci.errors import CancelledError, MediaError

MAX_PIXELS = 8192 * 8192  # larger frames are refused, by the header and frame by frame
MIB = 1 << 20


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
    # Bounds on one request, whatever its headers say (docs/security.md): its size, the
    # frames decoded (sampled or not: 1.8M tiny frames took 155 s), the wall time spent.
    max_bytes: int = 512 * MIB
    max_decoded_frames: int = 216_000  # 1800 s at 120 fps
    max_seconds: float = 600.0
    max_pixels: int = MAX_PIXELS  # per frame, by the header and every decoded frame
    # Seconds a kept frame may move to a keyframe (at most a quarter of the sampling period);
    # 0 keeps the first frame at or after each moment, and decodes every frame before it.
    keyframe_snap: float = 0.5

    def __post_init__(self) -> None:
        if min(
            self.max_bytes, self.max_decoded_frames, self.max_pixels, self.min_frames
        ) < 1 or not (self.max_seconds > 0):
            raise ValueError(
                "max_bytes, max_decoded_frames, max_pixels, min_frames, max_seconds must be > 0"
            )
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
        if not (0 <= self.keyframe_snap <= 5):
            raise ValueError(f"keyframe_snap must be 0-5 seconds, got {self.keyframe_snap}")

    def every(self, seconds: float) -> DecodeLimits:
        """These limits sampling one frame every `seconds` where that is sparser than fps
        (a library that keeps one fingerprint per interval); spread sampling is kept."""
        if self.sampling != "fps" or seconds <= 1.0 / self.fps:
            return self
        return dataclasses.replace(self, fps=1.0 / seconds)

    @property
    def span(self) -> float:
        """Seconds from the start that sampling reads at most (audio is read as far)."""
        return self.spread_window if self.sampling == "spread" else self.max_duration


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
    """Even (width, height) no taller than max_height and no wider than 32:9 of it (2560 at
    720: a 65535x720 stream would otherwise hold 141 MB a frame), aspect kept."""
    max_width = round(max_height * 32 / 9)
    if width > max_width and width * max_height > height * max_width:
        scale = max_width / width
        return max_width - max_width % 2, max(2, int(round(height * scale / 2)) * 2)
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


@dataclass
class FramePlan:
    """Which frames to decode, found from the container's packets alone (no decoding)."""

    indices: np.ndarray  # (T,) int32 frame numbers in presentation order
    timestamps: np.ndarray  # (T,) float32, seconds from the first frame
    duration: float  # seconds
    size: tuple[int, int]  # (width, height) to decode at, pixels
    path: str = "all"  # what is decoded: "keyframes", "gops" (part of them) or "all" frames


class _Picker:
    """The sampling rule over presentation times (seconds from the first frame), one call per
    frame in presentation order: keep the first frame at or after each multiple of period."""

    def __init__(self, period: float, stop_at: float, refuse_longer: bool) -> None:
        self.period, self.stop_at, self.refuse_longer = period, stop_at, refuse_longer
        self.next_time = 0.0
        self.kept = 0

    def pick(self, t: float) -> bool | None:
        """True to keep the frame at t, False to skip it, None to stop reading here."""
        # A half-frame tolerance keeps 29.97 fps sources on whole seconds; at most a quarter
        # period, so that sampling near a source's own rate never keeps every frame.
        slack = min(0.02, self.period / 4)
        if t > self.stop_at or (not self.refuse_longer and self.kept and t + slack >= self.stop_at):
            if self.refuse_longer:
                raise MediaError(f"video runs past {self.stop_at:.0f} s, the maximum duration")
            return None
        if t + slack < self.next_time:
            return False
        self.next_time = (math.floor(t / self.period + slack / self.period) + 1) * self.period
        self.kept += 1
        return True


@dataclass
class _Header:
    """What the headers say about a video stream, checked against the limits."""

    declared: float  # the video stream's duration, seconds; nan if unsaid
    length: float  # declared, else the container's; nan if neither
    size: tuple[int, int]  # output (width, height), pixels
    picker: _Picker
    frame_time: float  # seconds per frame at the nominal rate
    rate: float  # nominal frames per second, for streams without timestamps


class BufferFile(io.RawIOBase):
    """A read-only, seekable file over any bytes-like buffer (bytes, a uint8 array), without
    copying it: a request's video is read where it arrived. io.BytesIO copies all but bytes."""

    def __init__(self, data) -> None:
        super().__init__()
        self._view = memoryview(data).cast("B")
        self._pos = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        chunk = self._view[self._pos : self._pos + len(buffer)]
        buffer[: len(chunk)] = chunk
        self._pos += len(chunk)
        return len(chunk)

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: len(self._view)}[whence]
        self._pos = max(0, base + offset)
        return self._pos

    def tell(self) -> int:
        return self._pos


def check_size(size: int, limits: DecodeLimits) -> None:
    """Refuse an empty or oversized request before anything reads it (sizes in bytes)."""
    if size == 0:
        raise MediaError("empty input: 0 bytes")
    if size > limits.max_bytes:
        raise MediaError(
            f"input is {size / MIB:.1f} MiB; the maximum is {limits.max_bytes / MIB:.0f} MiB"
        )


def _open(data: bytes, limits: DecodeLimits = DecodeLimits()) -> av.container.InputContainer:
    check_size(len(data), limits)
    try:
        return av.open(BufferFile(data), mode="r")
    except (av.error.FFmpegError, UnicodeDecodeError) as exc:
        raise MediaError(f"not a decodable media container ({exc})") from exc


def _read_header(container: av.container.InputContainer, limits: DecodeLimits) -> _Header:
    """Refuse what the headers already show to be unusable; choose the sampling period."""
    if not container.streams.video:
        raise MediaError("no video stream in the container")
    stream = container.streams.video[0]
    width, height = stream.codec_context.width, stream.codec_context.height
    if width <= 0 or height <= 0:
        raise MediaError(f"video stream has no frame size ({width}x{height})")
    if width * height > limits.max_pixels:
        raise MediaError(f"frame size {width}x{height} exceeds {limits.max_pixels} pixels")
    declared, whole = _declared_durations(container, stream)
    length = declared if not math.isnan(declared) else whole
    if limits.sampling == "spread":
        # An unknown length spreads over the whole window and stops where the video does.
        known = not math.isnan(length) and length > 0
        span = min(length, limits.spread_window) if known else limits.spread_window
        picker = _Picker(span / limits.spread_frames, span, refuse_longer=False)
    else:
        if length > limits.max_duration:
            raise MediaError(
                f"video is {length:.1f} s long; the maximum is {limits.max_duration:.0f} s"
            )
        picker = _Picker(1.0 / limits.fps, limits.max_duration, refuse_longer=True)
    rate = float(stream.average_rate or stream.guessed_rate or 25)
    return _Header(
        declared=declared,
        length=length,
        size=_output_size(width, height, limits.max_height),
        picker=picker,
        frame_time=1.0 / float(stream.average_rate) if stream.average_rate else 1.0 / limits.fps,
        rate=rate,
    )


def _duration(header: _Header, last: float, stopped: bool) -> float:
    """The video's duration in seconds; refuses a video whose frames end well before its
    declared duration (unless reading stopped early on purpose)."""
    decoded_span = last + header.frame_time
    declared = header.declared
    truncated = not math.isnan(declared) and declared - decoded_span > max(2.0, 0.1 * declared)
    if truncated and not stopped:
        raise MediaError(
            f"truncated video: frames stop at {last:.1f} s of a declared {declared:.1f} s"
        )
    if not math.isnan(declared):
        return declared
    if stopped and not math.isnan(header.length):
        return header.length  # only the spread window was read; the container knows more
    return decoded_span


class FrameStream:
    """The sampled frames of one video, decoded one at a time: iterate for (frame (H, W, 3)
    uint8 RGB, seconds from the first frame); afterwards `duration` and `has_audio` hold.

    Frames are chosen by presentation timestamp, so variable frame rate is handled. Raises
    MediaError with a reason for anything that is not a whole, decodable video within the
    limits, and when `cancelled()` turns true (the client is gone).
    """

    def __init__(
        self,
        data: bytes,
        limits: DecodeLimits = DecodeLimits(),
        cancelled: Callable[[], bool] | None = None,
    ) -> None:
        self.data, self.limits, self.cancelled = data, limits, cancelled
        self.duration = math.nan
        self.has_audio = False
        self.count = 0  # frames yielded
        self.expected = 0  # frames the header says will be yielded (a guess when it is silent)
        self.path = ""  # what was decoded (FramePlan.path), once iteration has begun
        self.began = 0.0  # time.monotonic() when reading began: max_seconds counts from it

    def __iter__(self) -> Iterator[tuple[np.ndarray, float]]:
        self.began = time.monotonic()  # one budget for planning, decoding and any fallback
        with _open(self.data, self.limits) as container:
            header = _read_header(container, self.limits)
            stream = container.streams.video[0]
            self.has_audio = bool(container.streams.audio)
            self.expected = _expected_frames(header, self.limits)
            packets = _read_packets(container, stream, self.limits, header, self)
        # Without timestamps (raw elementary streams) nothing can be planned: every frame is
        # decoded and kept by the sampling rule as it comes.
        plan = _plan(packets, header, self.limits) if packets.timed else None
        self.path = plan.path if plan is not None else "all"
        if plan is not None:
            self.expected = len(plan.timestamps)
            yield from self._counted(lambda c, s: _decode_planned(c, s, plan, header, self))
            if self.count == 0:  # no decoded frame carried its packet's stamp: decode all
                plan, self.path = None, "all"
        if plan is None:
            state = [0.0, False]  # time of the last decoded frame, stopped early
            yield from self._counted(lambda c, s: _decode_sampled(c, s, header, self, state))
        if self.count < self.limits.min_frames:
            raise MediaError("no decodable video frames")
        if plan is not None:
            self.duration = plan.duration
        else:
            self.duration = float(_duration(header, state[0], state[1]))

    def _counted(self, decode: Callable) -> Iterator[tuple[np.ndarray, float]]:
        """decode(container, video stream)'s frames from a fresh opening, counted."""
        with _open(self.data, self.limits) as container:
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            for frame, t in decode(container, stream):
                self.count += 1
                yield frame, t


def _expected_frames(header: _Header, limits: DecodeLimits) -> int:
    """Sampled frames to expect from the header's length: sizes the output buffer once."""
    if limits.sampling == "spread":
        return limits.spread_frames
    if math.isnan(header.length) or header.length <= 0:
        return 64
    return int(min(header.length, limits.max_duration) * limits.fps) + 2


def sample_video(data: bytes, limits: DecodeLimits = DecodeLimits()) -> SampledVideo:
    """Every sampled frame of `data` at once (FrameStream's rule); for short clips and tests:
    the served path streams them (rci.preprocess.pipeline)."""
    stream = FrameStream(data, limits)
    frames, times = [], []
    for frame, t in stream:
        frames.append(frame)
        times.append(t)
    return SampledVideo(
        frames=np.stack(frames),
        timestamps=np.asarray(times, dtype=np.float32),
        duration=stream.duration,
        has_audio=stream.has_audio,
    )


def _check_budget(source: FrameStream | None, began: float, limits: DecodeLimits) -> None:
    """Refuse once decoding has taken longer than max_seconds or the client has gone."""
    if time.monotonic() - began > limits.max_seconds:
        raise MediaError(f"decoding took over {limits.max_seconds:.0f} s, the limit per request")
    if source is not None and source.cancelled is not None and source.cancelled():
        raise CancelledError("request cancelled by the client")


def _decode_sampled(
    container: av.container.InputContainer,
    stream: av.VideoStream,
    header: _Header,
    source: FrameStream,
    state: list,
) -> Iterator[tuple[np.ndarray, float]]:
    """Decode frames and yield those header.picker picks, as (H, W, 3) uint8 at header.size
    with their time; state gets [time of the last decoded frame, stopped before the end]."""
    limits = source.limits
    start: float | None = None
    began = source.began
    count = -1
    try:
        # Checked per packet, not per frame: a stream whose packets decode to no frame at all
        # must hit the limits too.
        for packets, packet in enumerate(container.demux(stream)):
            if packets % 32 == 0:
                _check_budget(source, began, limits)
            if packets > limits.max_decoded_frames + 64:  # a flush packet or a few more is fine
                raise MediaError(f"video has over {limits.max_decoded_frames} packets")
            for frame in packet.decode():
                count += 1
                if frame.width * frame.height > limits.max_pixels:  # sizes may change midway
                    raise MediaError(
                        f"frame {count} is {frame.width}x{frame.height}, "
                        f"over {limits.max_pixels} pixels"
                    )
                if count >= limits.max_decoded_frames:
                    raise MediaError(
                        f"video has over {limits.max_decoded_frames} frames, the maximum decoded"
                    )
                # Raw elementary streams (.h264) carry no timestamps: count at the nominal rate.
                when = frame.time if frame.time is not None else count / header.rate
                start = when if start is None else start
                t = when - start
                state[0] = t
                keep = header.picker.pick(t)
                if keep is None:
                    state[1] = True
                    return
                if keep:
                    width, height = header.size
                    rgb = frame.reformat(
                        width=width, height=height, format="rgb24", interpolation="AREA"
                    )
                    yield rgb.to_ndarray(), round(t, 3)
    except av.error.FFmpegError as exc:
        raise MediaError(
            f"corrupt video: decoding failed after {source.count} frames ({exc})"
        ) from exc


@dataclass
class _Packets:
    """The video stream's packets in decode order, read without decoding them."""

    pts: list[int | None]  # presentation stamps in the stream's time base
    seconds: np.ndarray  # (P,) float64: pts (else dts) in seconds; nan where unsaid
    keyframe: np.ndarray  # (P,) bool: decoding can start here
    discard: np.ndarray  # (P,) bool: an edit list drops the frame (before a cut's start)
    reordered: bool  # the codec shows frames in another order than it decodes them

    @functools.cached_property
    def timed(self) -> bool:
        """Every packet has a presentation stamp a decoded frame can be matched by, and
        decoding can start at a keyframe."""
        if any(p is None for p in self.pts) or np.isnan(self.seconds).any():
            return False
        if not self.keyframe.any():
            return False
        # Reordered frames whose stamps only ever grow in decode order: the container's
        # stamps count packets (B-frames in AVI), not the moments frames are shown.
        growing = bool(np.all(np.diff(self.seconds) > 0))
        return not (self.reordered and growing and len(self.pts) > 2)


def _read_packets(
    container: av.container.InputContainer,
    stream: av.VideoStream,
    limits: DecodeLimits,
    header: _Header,
    source: FrameStream | None = None,
) -> _Packets:
    """Demux the video stream (no decoding) until the end or well past where sampling stops."""
    time_base = float(stream.time_base) if stream.time_base is not None else math.nan
    pts, seconds, keyframe, discard = [], [], [], []
    # Decode order runs at most a few frames ahead of presentation: 10 s past the sampling
    # span reaches every frame the rule can keep (and one past it, for the refusal).
    stop_after = header.picker.stop_at + 10.0
    began = source.began if source is not None else time.monotonic()
    origin = math.nan  # the first shown packet's time
    try:
        for n, packet in enumerate(container.demux(stream)):
            if n % 256 == 0:
                _check_budget(source, began, limits)
            if packet.size == 0:  # the demuxer's flush packet carries no frame
                continue
            if len(pts) >= limits.max_decoded_frames:
                raise MediaError(f"video has over {limits.max_decoded_frames} packets")
            stamp = packet.pts if packet.pts is not None else packet.dts
            pts.append(packet.pts)
            seconds.append(math.nan if stamp is None else stamp * time_base)
            keyframe.append(bool(packet.is_keyframe))
            discard.append(bool(packet.is_discard))
            if math.isnan(origin) and not discard[-1]:
                origin = seconds[-1]
            if seconds[-1] - origin > stop_after:
                break
    except av.error.FFmpegError as exc:
        raise MediaError(f"corrupt video: demuxing failed ({exc})") from exc
    reordered = bool(stream.codec_context.has_b_frames)
    return _Packets(
        pts, np.asarray(seconds, np.float64), np.array(keyframe, bool), np.array(discard, bool),
        reordered,
    )  # fmt: skip


@dataclass
class _Plan(FramePlan):
    """A FramePlan with what decoding it takes, in decode order."""

    pts: list[int] = field(default_factory=list)  # (T,) the kept frames' presentation stamps
    send: np.ndarray = field(default_factory=lambda: np.zeros(0, bool))  # (P,) bool: the
    # packets to decode, decode order


def _plan(packets: _Packets, header: _Header, limits: DecodeLimits) -> _Plan:
    """The sampling rule over the packets' presentation times, with keyframe snapping; then
    the packets to decode: each group of pictures that holds a kept frame, up to it."""
    count = len(packets.pts)
    timed = packets.timed
    if timed:
        order = np.argsort(packets.seconds, kind="stable")  # presentation -> decode number
        times = packets.seconds[order]
    else:  # raw streams: the nominal rate, in packet order
        order = np.arange(count)
        times = order / header.rate
    shown = ~packets.discard[order]
    if timed:
        # Nothing before the first keyframe decodes, nor what is shown before it (an open
        # group's leading pictures): a stream cut without re-encoding starts like that.
        first = int(np.argmax(packets.keyframe))
        shown &= (order >= first) & (times >= packets.seconds[first])
    shown = np.flatnonzero(shown)
    if len(shown) < limits.min_frames:
        raise MediaError("no decodable video frames")
    start = times[shown[0]]
    picker = copy.copy(header.picker)  # the header's stays unused, for a fallback decode
    snap = min(limits.keyframe_snap, picker.period / 4) if timed else 0.0
    keys = shown[packets.keyframe[order[shown]]]  # presentation numbers of shown keyframes
    key_times = times[keys] - start
    kept: list[int] = []
    stopped, last = False, 0.0
    for number in shown:
        last = t = times[number] - start
        keep = picker.pick(t)
        if keep is None:
            stopped = True
            break
        if keep and snap > 0:
            moment = math.floor((t + min(0.02, picker.period / 4)) / picker.period) * picker.period
            near = int(np.argmin(np.abs(key_times - moment))) if len(keys) else -1
            after = not kept or key_times[near] > times[kept[-1]] - start
            if near >= 0 and abs(key_times[near] - moment) <= snap and after:
                number = keys[near]
        if keep and (not kept or number != kept[-1]):
            kept.append(number)
    decode = order[kept]
    send = np.zeros(count, bool)
    if timed:
        # The group of pictures of each packet: from the last keyframe at or before it.
        gop = np.maximum.accumulate(np.where(packets.keyframe, np.arange(count), 0))
        for d in decode:
            send[gop[d] : d + 1] = True
            # An open group's leading pictures (shown before its keyframe) refer back to the
            # group before: that one is decoded whole, with no flush between them.
            if gop[d] > 0 and packets.seconds[d] < packets.seconds[gop[d]]:
                send[gop[gop[d] - 1] : gop[d]] = True
    else:
        send[:] = True
    if send.all():
        path = "all"
    elif send.sum() == len(kept) and packets.keyframe[decode].all():
        path = "keyframes"
    else:
        path = "gops"
    return _Plan(
        indices=np.asarray(kept, dtype=np.int32),
        timestamps=np.round(times[kept] - start, 3).astype(np.float32),
        duration=float(_duration(header, last, stopped)),
        size=header.size,
        path=path,
        pts=[packets.pts[d] for d in decode] if timed else [],
        send=send,
    )


def _decode_planned(
    container: av.container.InputContainer,
    stream: av.VideoStream,
    plan: _Plan,
    header: _Header,
    source: FrameStream,
) -> Iterator[tuple[np.ndarray, float]]:
    """Decode the packets plan.send marks, draining and flushing the decoder at each skip,
    and yield the kept frames as (H, W, 3) uint8 at header.size with their time."""
    limits = source.limits
    wanted = dict(zip(plan.pts, plan.timestamps.tolist(), strict=True))
    context = stream.codec_context
    began = source.began
    number, decoded = -1, 0
    floor = None  # pts of the keyframe the current run of decoding began at

    def kept(frames) -> Iterator[tuple[np.ndarray, float]]:
        nonlocal decoded
        for frame in frames:
            decoded += 1
            if frame.width * frame.height > limits.max_pixels:  # sizes may change midway
                raise MediaError(
                    f"frame {decoded} is {frame.width}x{frame.height}, "
                    f"over {limits.max_pixels} pixels"
                )
            # Before the run's keyframe are an open group's leading pictures, whose
            # references were not decoded.
            if frame.pts in wanted and frame.pts >= floor:
                width, height = header.size
                rgb = frame.reformat(
                    width=width, height=height, format="rgb24", interpolation="AREA"
                )
                yield rgb.to_ndarray(), round(wanted.pop(frame.pts), 3)

    try:
        for packets, packet in enumerate(container.demux(stream)):
            if packets % 32 == 0:
                _check_budget(source, began, limits)
            if packet.size == 0:
                continue
            number += 1
            if number >= len(plan.send) or not wanted:
                break
            if plan.send[number]:
                if floor is None:
                    floor = packet.pts
                yield from kept(context.decode(packet))
            elif floor is not None:  # a skip: drain what is in flight, start afresh later
                yield from kept(context.decode(None))
                context.flush_buffers()
                floor = None
        if floor is not None:
            yield from kept(context.decode(None))
    except av.error.FFmpegError as exc:
        raise MediaError(
            f"corrupt video: decoding failed after {source.count} frames ({exc})"
        ) from exc


def plan_frames(data: bytes, limits: DecodeLimits = DecodeLimits()) -> FramePlan:
    """The frames sample_video keeps, found by reading packets only, for a decoder that
    takes frame numbers (NVDEC through DALI). Same refusals as sample_video, except
    corruption inside the coded pictures, which only decoding finds.

    Frames are numbered over every packet in presentation order, as DALI's index does;
    packets an edit list marks to discard (before a cut's start) are numbered but never
    picked, and time starts at the first shown frame, as decoding sees it.
    """
    with _open(data, limits) as container:
        header = _read_header(container, limits)
        packets = _read_packets(container, container.streams.video[0], limits, header)
    plan = _plan(packets, header, limits)
    return FramePlan(plan.indices, plan.timestamps, plan.duration, plan.size, plan.path)
