"""Audio fingerprints: Chromaprint's items, 8 to a window, as 256 bits.

Chromaprint (libchromaprint, in process) turns a soundtrack into one 32-bit item per
0.124 s, each bit the sign of a filter over a chroma image. A window of 8 items (about 1 s)
every 4 items (0.495 s) is one fingerprint; two windows compare by the share of equal bits,
as cosine 1 - 2 x (bit errors / 256). Chosen over log-mel windows by measurement
(docs/audio.md, scripts/choose_audio_fingerprint.py).

A query is read in views: each tempo s of AudioPrintParams.tempos restores a copy played
s-fold faster (FFmpeg's atempo, pitch kept, as tempo edits keep it), and each of 4 phases
starts the window 0-3 items later, since a copy may begin between two library windows.
Windows that are quiet carry no evidence (silence, a fade) and get no fingerprint.
"""

from __future__ import annotations

import ctypes
import ctypes.util
from dataclasses import dataclass
from fractions import Fraction
from functools import lru_cache

import av
import numpy as np

from rci.errors import RciError

AUDIO_PRINT = "chromaprint2-8x4"  # recorded with every video's audio fingerprints
ITEM_SECONDS = 4096 / 3 / 11025  # Chromaprint's default algorithm: 11025 Hz, hop 4096 / 3
WIDTH = 8  # items per window: 256 bits
HOP = 4  # items between windows
WINDOW_BYTES = WIDTH * 4
# Audio one item reads: its 4096-sample frame and the 19 frames after it that Chromaprint's
# chroma smoothing (5) and widest classifier (16) reach, at hop 1365 (11025 Hz); so a
# window starting at t reads [t, t + WINDOW_SECONDS). Checked: a 24 s track gives 172 items.
ITEM_SPAN = (4096 + 19 * 1365) / 11025
WINDOW_SECONDS = (WIDTH - 1) * ITEM_SECONDS + ITEM_SPAN


@dataclass
class AudioPrints:
    """One video's audio fingerprints: packed bits of each window, with its start time."""

    kind: str  # the fingerprint that made them (AUDIO_PRINT)
    times: np.ndarray  # (A,) float32 seconds, increasing
    bits: np.ndarray  # (A, B) uint8, B = bits per window / 8

    def __post_init__(self) -> None:
        if self.bits.ndim != 2 or self.bits.dtype != np.uint8:
            raise RciError(
                f"audio fingerprints must be (A, B) uint8, got {self.bits.dtype} "
                f"{list(self.bits.shape)}"
            )


@dataclass(frozen=True)
class AudioPrintParams:
    """Levels in dB relative to full scale."""

    min_level: float = -50.0  # RMS level of a window below which it is quiet
    # Tempos a query is read at: copies sped up or slowed 0.75x-1.33x, a step of about 15%.
    tempos: tuple[float, ...] = (0.75, 0.87, 1.0, 1.15, 1.33)

    def __post_init__(self) -> None:
        if 1.0 not in self.tempos or any(not 0.5 <= t <= 2.0 for t in self.tempos):
            raise ValueError("tempos must include 1.0 and lie in 0.5-2.0 (FFmpeg's atempo)")


class _Chromaprint:
    """libchromaprint's C API through ctypes: no maintained Python binding bundles the
    library, and the one on PyPI (pyacoustid) loads it the same way."""

    def __init__(self) -> None:
        name = ctypes.util.find_library("chromaprint") or "libchromaprint.so.1"
        try:
            lib = ctypes.CDLL(name)
        except OSError as exc:
            raise RuntimeError(
                f"libchromaprint is missing ({exc}); install Debian's libchromaprint1 "
                "(scripts/system_deps.sh does)"
            ) from exc
        lib.chromaprint_new.restype = ctypes.c_void_p
        lib.chromaprint_new.argtypes = [ctypes.c_int]
        lib.chromaprint_start.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_int]
        lib.chromaprint_feed.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int]
        lib.chromaprint_finish.argtypes = [ctypes.c_void_p]
        lib.chromaprint_get_raw_fingerprint.argtypes = [
            ctypes.c_void_p,
            ctypes.POINTER(ctypes.POINTER(ctypes.c_uint32)),
            ctypes.POINTER(ctypes.c_int),
        ]
        lib.chromaprint_free.argtypes = [ctypes.c_void_p]
        lib.chromaprint_dealloc.argtypes = [ctypes.c_void_p]
        self.lib = lib

    def items(self, samples: np.ndarray, rate: int) -> np.ndarray:
        """(N,) uint32 raw items of (S,) float32 mono samples at `rate` Hz."""
        pcm = np.ascontiguousarray(np.clip(samples * 32768.0, -32768, 32767).astype(np.int16))
        lib = self.lib
        ctx = lib.chromaprint_new(1)  # CHROMAPRINT_ALGORITHM_DEFAULT
        try:
            ok = lib.chromaprint_start(ctx, rate, 1)
            ok = ok and lib.chromaprint_feed(ctx, pcm.ctypes.data, pcm.size)
            ok = ok and lib.chromaprint_finish(ctx)
            if not ok:
                raise RuntimeError(f"libchromaprint refused {pcm.size} samples at {rate} Hz")
            raw, size = ctypes.POINTER(ctypes.c_uint32)(), ctypes.c_int()
            if not lib.chromaprint_get_raw_fingerprint(ctx, ctypes.byref(raw), ctypes.byref(size)):
                raise RuntimeError("libchromaprint gave no fingerprint")
            try:
                return (
                    np.ctypeslib.as_array(raw, shape=(size.value,)).copy()
                    if size.value
                    else (np.zeros(0, np.uint32))
                )
            finally:
                lib.chromaprint_dealloc(raw)
        finally:
            lib.chromaprint_free(ctx)


@lru_cache(maxsize=1)
def _chromaprint() -> _Chromaprint:
    return _Chromaprint()  # loaded once per process (two threads may both load it: harmless)


def check_chromaprint() -> None:
    """Load libchromaprint now (a model's initialize): RuntimeError saying how when missing."""
    _chromaprint()


def atempo(samples: np.ndarray, rate: int, tempo: float) -> np.ndarray:
    """(about S / tempo,) float32 mono samples played at `tempo`, pitch kept (FFmpeg atempo)."""
    graph = av.filter.Graph()
    source = graph.add_abuffer(
        format="flt", sample_rate=rate, layout="mono", time_base=Fraction(1, rate)
    )
    stretch, sink = graph.add("atempo", f"{tempo}"), graph.add("abuffersink")
    source.link_to(stretch)
    stretch.link_to(sink)
    graph.configure()
    frame = av.AudioFrame.from_ndarray(
        samples[None, :].astype(np.float32), format="flt", layout="mono"
    )
    frame.sample_rate, frame.pts, frame.time_base = rate, 0, Fraction(1, rate)
    graph.push(frame)
    graph.push(None)
    out = []
    while True:
        try:
            out.append(graph.pull().to_ndarray().reshape(-1))
        except (av.error.EOFError, av.error.BlockingIOError):
            return np.concatenate(out) if out else np.zeros(0, np.float32)


def _levels(samples: np.ndarray, rate: int, times: np.ndarray) -> np.ndarray:
    """(A,) RMS level in dBFS of the window (WIDTH items long) starting at each time."""
    span = int(WIDTH * ITEM_SECONDS * rate)
    power = np.zeros(len(times))
    # Window by window: a running sum over a 30 min track would hold 230 MB of float64.
    for n, start in enumerate((times * rate).astype(int)):
        x = samples[start : start + span]
        power[n] = float(np.dot(x, x)) / max(len(x), 1)
    return 10 * np.log10(np.maximum(power, 1e-12))


def _windows(items: np.ndarray, first: np.ndarray) -> np.ndarray:
    """(A, WINDOW_BYTES) uint8: the WIDTH items from each first index, zeros past the end."""
    padded = np.concatenate([items, np.zeros(WIDTH, np.uint32)])
    rows = np.minimum(first[:, None] + np.arange(WIDTH)[None, :], len(padded) - 1)
    return np.ascontiguousarray(padded[rows]).view(np.uint8).reshape(len(first), WINDOW_BYTES)


def _items(samples: np.ndarray, rate: int) -> np.ndarray:
    return _chromaprint().items(samples, rate) if len(samples) else np.zeros(0, np.uint32)


def _plain(
    samples: np.ndarray, rate: int, items: np.ndarray, params: AudioPrintParams
) -> AudioPrints:
    first = np.arange(0, len(items) - WIDTH + 1, HOP)
    times = (first * ITEM_SECONDS).astype(np.float32)
    loud = _levels(samples, rate, times) >= params.min_level
    return AudioPrints(AUDIO_PRINT, times[loud], _windows(items, first[loud]))


def audio_prints(
    samples: np.ndarray, rate: int, params: AudioPrintParams = AudioPrintParams()
) -> AudioPrints:
    """A library video's fingerprints of its (S,) float32 mono samples at `rate` Hz; no
    windows when the audio is shorter than one window or quiet throughout."""
    return _plain(samples, rate, _items(samples, rate), params)


def query_prints(
    samples: np.ndarray, rate: int, params: AudioPrintParams = AudioPrintParams()
) -> tuple[np.ndarray, np.ndarray]:
    """A query's (A,) float32 window times in seconds and (V, A, WINDOW_BYTES) uint8 views,
    V = tempos x HOP phases; view tempos.index(1.0) x HOP holds audio_prints' windows."""
    items = _items(samples, rate)
    plain = _plain(samples, rate, items, params)
    if not len(plain.times):  # nothing to read at other tempos (and no samples to stretch)
        return plain.times, np.zeros((len(params.tempos) * HOP, 0, WINDOW_BYTES), np.uint8)
    views = []
    for tempo in params.tempos:
        stretched = items if tempo == 1.0 else _items(atempo(samples, rate, 1.0 / tempo), rate)
        first = np.round(plain.times / ITEM_SECONDS * tempo).astype(int)
        views += [_windows(stretched, first + phase) for phase in range(HOP)]
    return plain.times, np.stack(views)


def unpack_signs(bits: np.ndarray) -> np.ndarray:
    """(..., 8 x B) float32 vectors of +-1 / sqrt(8 x B) from (..., B) uint8 bits: their
    dot product is the cosine 1 - 2 x bit errors / bits."""
    signs = np.unpackbits(bits, axis=-1).astype(np.float32) * 2.0 - 1.0
    return signs / np.sqrt(signs.shape[-1])


def fingerprint_audio(
    samples: np.ndarray,
    rate: int,
    query: bool = False,
    params: AudioPrintParams = AudioPrintParams(),
) -> tuple[AudioPrints, np.ndarray]:
    """A video's AudioPrints and its (V, A, WINDOW_BYTES) query views (query_prints), or
    (V, 0, WINDOW_BYTES) without `query`; Chromaprint reads the plain audio once either way."""
    if not query:
        none = np.zeros((len(params.tempos) * HOP, 0, WINDOW_BYTES), np.uint8)
        return audio_prints(samples, rate, params), none
    times, views = query_prints(samples, rate, params)
    plain = views[params.tempos.index(1.0) * HOP]
    return AudioPrints(AUDIO_PRINT, times, np.ascontiguousarray(plain)), views
