"""The preprocess stage: video bytes -> descriptor-ready frames (or their embeddings, a
batch at a time), timestamps, content boxes, audio features."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

import numpy as np

from rci.preprocess.audio import AudioParams, audio_features, decode_audio
from rci.preprocess.audio_prints import AudioPrints, fingerprint_audio
from rci.preprocess.frames import MODEL_SIZE, BorderParams, crop_resize, framed_boxes
from rci.preprocess.media import DecodeLimits, FrameStream
from rci.preprocess.screen import ScreenParams
from rci.preprocess.thumbnails import encode_thumbnails


@dataclass
class Preprocessed:
    """Descriptor input for one video."""

    frames: np.ndarray  # (T, 224, 224, 3) uint8 RGB
    timestamps: np.ndarray  # (T,) float32 seconds
    duration: float  # seconds
    content_boxes: np.ndarray  # (T, 4) float32 [x0, y0, x1, y1], fractions of the frame
    audio_fbank: np.ndarray  # (F, 64) float32 log-mel dB, 100 frames/s; F = 0 without audio
    audio_mfcc: np.ndarray  # (F, 39) float32 MFCC with deltas, normalized over the clip
    audio_prints: AudioPrints  # (A,) windows; none without audio or when it is quiet
    # (V, A, 32) uint8: the audio read as a query (rci.preprocess.audio_prints.query_prints); A = 0
    # when not asked for.
    audio_views: np.ndarray
    # Frames where an inset was found, resized whole (inside any bars): the video around the
    # picture, (W, 224, 224, 3) uint8, and which frames they are, (W,) int64.
    whole_frames: np.ndarray = field(default_factory=lambda: _no_frames())
    whole_rows: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))

    def __post_init__(self) -> None:
        if self.frames.shape[1:] != (MODEL_SIZE, MODEL_SIZE, 3):
            raise ValueError(
                f"frames must be (T, {MODEL_SIZE}, {MODEL_SIZE}, 3), got {self.frames.shape}"
            )
        if self.timestamps.shape != (len(self.frames),):
            raise ValueError(
                f"timestamps must be ({len(self.frames)},), got {self.timestamps.shape}"
            )


# Frames held at once: content boxes are found over windows of CHUNK_FRAMES sampled frames
# with CONTEXT_FRAMES more each side (every windowed test reaches at most 4 frames away, so
# boxes match the whole-video search's; only the inset search's most often found rectangle
# is per window). Full frames are never all held: 76 at 720p are 210 MB.
CHUNK_FRAMES = 60
CONTEXT_FRAMES = 8


Embed = Callable[[np.ndarray], np.ndarray]  # (n, 224, 224, 3) uint8 -> (n, 512) float32

# Frames per descriptor call: 9.6 MB crosses the process boundary at a time, whatever the
# video's length, and stays inside the TensorRT plan's largest batch (256).
EMBED_FRAMES = 64


@dataclass
class Embedded:
    """What the ensembles take from a video: its sampled frames as descriptor embeddings."""

    embeddings: np.ndarray  # (T, 512) float32, unit length
    timestamps: np.ndarray  # (T,) float32 seconds
    duration: float  # seconds
    content_boxes: np.ndarray  # (T, 4) float32 [x0, y0, x1, y1], fractions of the frame
    audio_fbank: np.ndarray  # (F, 64) float32, as Preprocessed
    audio_mfcc: np.ndarray  # (F, 39) float32, as Preprocessed
    audio_prints: AudioPrints  # as Preprocessed
    audio_views: np.ndarray  # (V, A, 32) uint8, as Preprocessed
    mirrored: np.ndarray | None = None  # (T, 512) float32: the frames flipped left to right
    # (T, 512) float32: each frame whole where an inset was found in it (the video around a
    # picture-in-picture), else its content as in `embeddings`; None when not asked for or
    # when no frame has an inset.
    whole: np.ndarray | None = None
    # (T,) JPEG pictures of the frames embedded (rci.preprocess.thumbnails); None when not
    # asked for.
    thumbnails: list[bytes] | None = None

    @classmethod
    def of(
        cls,
        video: Preprocessed,
        embed: Embed,
        mirror: bool = False,
        whole: bool = False,
        thumbnails: bool = False,
    ) -> Embedded:
        """`video` with its frames (with `mirror` their mirror images, with `whole` its
        whole_frames) embedded EMBED_FRAMES at a time; with `thumbnails` their pictures."""
        frames, views = video.frames, _Embedder(embed, mirror, whole, thumbnails)
        for i in range(0, len(frames), EMBED_FRAMES):
            rows = video.whole_rows
            inside = (rows >= i) & (rows < i + EMBED_FRAMES)
            views.take(frames[i : i + EMBED_FRAMES], video.whole_frames[inside], rows[inside] - i)
        return cls(
            **views.result(),  # a video has at least one frame (MediaError)
            timestamps=video.timestamps,
            duration=video.duration,
            content_boxes=video.content_boxes,
            audio_fbank=video.audio_fbank,
            audio_mfcc=video.audio_mfcc,
            audio_prints=video.audio_prints,
            audio_views=video.audio_views,
        )


def preprocess(
    data: bytes,
    limits: DecodeLimits = DecodeLimits(),
    borders: BorderParams = BorderParams(),
    audio: AudioParams = AudioParams(),
    cancelled: Callable[[], bool] | None = None,
    screen: ScreenParams | None = ScreenParams(),
    query_audio: bool = False,
) -> Preprocessed:
    """Sample frames as limits say, find each frame's content box, crop and resize; audio
    features over the same span (the first spread_window seconds in spread sampling).
    Decoded frames stream through in windows (CHUNK_FRAMES); memory does not grow with the
    video's length beyond the 224x224 output."""
    out = np.empty((0, MODEL_SIZE, MODEL_SIZE, 3), dtype=np.uint8)  # grown once, if at all
    count = 0
    whole_frames, whole_rows = [_no_frames()], [np.zeros(0, np.int64)]

    def take(frames: np.ndarray, expected: int, whole: np.ndarray, rows: np.ndarray) -> None:
        nonlocal out, count
        if count + len(frames) > len(out):
            out = _grown(out, max(expected, (count + len(frames)) * 3 // 2))
        out[count : count + len(frames)] = frames
        whole_frames.append(whole.copy())
        whole_rows.append(rows + count)
        count += len(frames)

    sampled = _sample(
        data, limits, borders, audio, cancelled, take, screen, whole=True, query_audio=query_audio
    )
    return Preprocessed(
        frames=out[:count],
        whole_frames=np.concatenate(whole_frames),
        whole_rows=np.concatenate(whole_rows),
        **sampled,
    )


def embed_video(
    data: bytes,
    embed: Embed,
    limits: DecodeLimits = DecodeLimits(),
    borders: BorderParams = BorderParams(),
    audio: AudioParams = AudioParams(),
    cancelled: Callable[[], bool] | None = None,
    mirror: bool = False,
    whole: bool = False,
    screen: ScreenParams | None = ScreenParams(),
    query_audio: bool = False,
    thumbnails: bool = False,
) -> Embedded:
    """As `preprocess`, with every EMBED_FRAMES frames embedded as soon as they are ready:
    at most EMBED_FRAMES 224x224 frames are held, so memory does not grow with the video's
    length beyond its (T, 512) embeddings. `mirror`: their mirror images too (a query's
    mirrored copy then matches; the library keeps one view). `whole`: frames with an inset
    also whole (a query showing library video A inside library video B finds both).
    `screen` None: no tilted-screen search (framed_boxes). `query_audio`: the audio's query
    views too (audio_views). `thumbnails`: a small JPEG of each frame embedded."""
    views = _Embedder(embed, mirror, whole, thumbnails)
    sampled = _sample(
        data, limits, borders, audio, cancelled, lambda f, _, w, r: views.take(f, w, r), screen,
        whole, query_audio,
    )  # fmt: skip
    return Embedded(**views.result(), **sampled)  # FrameStream gave >= 1 frame


def video_embedder(
    decoder: str, limits: DecodeLimits, screen: ScreenParams | None, device_id: int = 0
) -> Callable[..., Embedded]:
    """run(data, limits, embed, cancelled, mirror, whole, query_audio, thumbnails) -> Embedded
    for a served model: decoder "pyav" (cpu target: embed_video) or "nvdec" (gpu target:
    NVDEC and DALI on GPU `device_id`, its pipelines built once, here)."""
    if decoder == "nvdec":
        from rci.preprocess.dali import DaliPreprocessor  # needs DALI and a GPU

        dali = DaliPreprocessor(limits, device_id=device_id, screen=screen)

        def run(data, limits, embed, cancelled, mirror, whole, query_audio, thumbnails):
            video = dali(data.tobytes(), whole=whole, query_audio=query_audio, limits=limits)
            return Embedded.of(video, embed, mirror, whole, thumbnails)

        return run
    if decoder == "pyav":

        def run(data, limits, embed, cancelled, mirror, whole, query_audio, thumbnails):
            return embed_video(
                data, embed, limits, cancelled=cancelled, mirror=mirror, whole=whole,
                screen=screen, query_audio=query_audio, thumbnails=thumbnails,
            )  # fmt: skip

        return run
    raise ValueError(f"decoder must be 'pyav' or 'nvdec', got {decoder!r}")


class _Embedder:
    """Embeds batches of frames, with `mirror` their mirror images and with `whole` the
    whole frames given, in one call (at most 3 x EMBED_FRAMES = 192 frames, within the
    TensorRT plan's 256)."""

    def __init__(
        self, embed: Embed, mirror: bool, whole: bool = False, thumbnails: bool = False
    ) -> None:
        self.embed, self.mirror, self.whole = embed, mirror, whole
        self.pictures: list[bytes] | None = [] if thumbnails else None
        self.plain: list[np.ndarray] = []
        self.flipped: list[np.ndarray] = []
        self.around: list[np.ndarray] = []
        self.insets = 0  # frames embedded whole

    def take(
        self, frames: np.ndarray, whole: np.ndarray | None = None, rows: np.ndarray | None = None
    ) -> None:
        """frames (n, 224, 224, 3) uint8; whole (m, 224, 224, 3), frames `rows` (m,) whole."""
        n = len(frames)
        if self.pictures is not None:
            self.pictures += encode_thumbnails(frames)
        wanted = self.whole and whole is not None and len(whole) > 0
        parts = [frames] + ([frames[:, :, ::-1]] if self.mirror else [])
        embedded = self.embed(np.concatenate(parts + ([whole] if wanted else [])))
        self.plain.append(embedded[:n])
        if self.mirror:
            self.flipped.append(embedded[n : 2 * n])
        if self.whole:
            around = embedded[:n].copy()
            if wanted:
                around[rows] = embedded[len(parts) * n :]
                self.insets += len(rows)
            self.around.append(around)

    def result(self) -> dict:
        out = {"embeddings": np.concatenate(self.plain)}
        if self.mirror:
            out["mirrored"] = np.concatenate(self.flipped)
        if self.whole and self.insets:
            out["whole"] = np.concatenate(self.around)
        if self.pictures is not None:
            out["thumbnails"] = self.pictures
        return out


def _sample(
    data: bytes,
    limits: DecodeLimits,
    borders: BorderParams,
    audio: AudioParams,
    cancelled: Callable[[], bool] | None,
    take: Callable[[np.ndarray, int, np.ndarray, np.ndarray], None],
    screen: ScreenParams | None = ScreenParams(),
    whole: bool = False,
    query_audio: bool = False,
) -> dict:
    """Decode, box, crop and resize, handing each run of at most EMBED_FRAMES 224x224 frames
    to take(frames, frames the video is expected to have, whole frames, their rows): with
    `whole`, the frames with an inset are also resized whole (inside any bars), else none
    are. The arrays are reused once take returns. Returns every Preprocessed field but the
    frames; audio_views only with `query_audio`."""
    stream = FrameStream(data, limits, cancelled)  # opening it checks the size
    batch = np.empty((EMBED_FRAMES, MODEL_SIZE, MODEL_SIZE, 3), dtype=np.uint8)
    around = np.empty_like(batch)  # the whole frames of those with an inset
    held, rows = 0, []
    boxes, times = [], []
    for frame, box, outer, quad, t in _boxed(stream, borders, screen):
        batch[held] = crop_resize(frame[None], box[None], quads=quad[None])[0]
        if whole and (outer != box).any():
            around[len(rows)] = crop_resize(frame[None], outer[None])[0]
            rows.append(held)
        held += 1
        if held == EMBED_FRAMES:
            take(batch, stream.expected, around[: len(rows)], np.array(rows, np.int64))
            held, rows = 0, []
        h, w, _ = frame.shape
        boxes.append(box)
        times.append(t)
    if held:
        take(batch[:held], stream.expected, around[: len(rows)], np.array(rows, np.int64))
    audio_samples = decode_audio(data, audio, limits.span, limits.max_seconds)
    features = audio_features(audio_samples, audio)
    prints, views = fingerprint_audio(audio_samples, audio.sample_rate, query_audio)
    return {
        "timestamps": np.asarray(times, dtype=np.float32),
        "duration": stream.duration,
        "content_boxes": (np.stack(boxes) / np.array([w, h, w, h])).astype(np.float32),
        "audio_fbank": features.fbank,
        "audio_mfcc": features.mfcc,
        "audio_prints": prints,
        "audio_views": views,
    }


def _no_frames() -> np.ndarray:
    return np.zeros((0, MODEL_SIZE, MODEL_SIZE, 3), np.uint8)


def _grown(frames: np.ndarray, capacity: int) -> np.ndarray:
    """(capacity, 224, 224, 3) uint8 starting with `frames`."""
    out = np.empty((capacity, *frames.shape[1:]), dtype=frames.dtype)
    out[: len(frames)] = frames
    return out


def _boxed(
    frames: Iterable[tuple[np.ndarray, float]],
    borders: BorderParams,
    screen: ScreenParams | None = ScreenParams(),
) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, float]]:
    """(frame, its (4,) content box, the (4,) picture around it and the (4, 2) tilted
    screen's corners or NaN (framed_boxes) in pixels, time) for each (frame, time), the
    boxes found over windows of CHUNK_FRAMES frames with CONTEXT_FRAMES of context each
    side. Frames are held in one preallocated buffer: a given-out frame is valid until the
    next item."""
    held: np.ndarray | None = None  # (CHUNK_FRAMES + 2 * CONTEXT_FRAMES, H, W, 3) uint8
    times: list[float] = []  # of the held frames
    first = 0  # number of the frame held[0]
    done = 0  # frames given out so far

    def give_out(stop: int) -> Iterator[tuple]:
        nonlocal first, done
        count = len(times)
        lo = max(first, done - CONTEXT_FRAMES)
        hi = min(first + count, stop + CONTEXT_FRAMES)
        found = framed_boxes(held[lo - first : hi - first], borders, screen=screen)
        for n in range(done, stop):
            k = n - lo
            yield held[n - first], found.boxes[k], found.outer[k], found.quads[k], times[n - first]
        done = stop
        keep_from = max(first, done - CONTEXT_FRAMES) - first
        held[: count - keep_from] = held[keep_from:count].copy()
        del times[:keep_from]
        first += keep_from

    for frame, t in frames:
        if held is None:
            held = np.empty((CHUNK_FRAMES + 2 * CONTEXT_FRAMES, *frame.shape), np.uint8)
        held[len(times)] = frame
        times.append(t)
        if first + len(times) >= done + CHUNK_FRAMES + CONTEXT_FRAMES:
            yield from give_out(done + CHUNK_FRAMES)
    if first + len(times) > done:
        yield from give_out(first + len(times))
