"""Audio features: 16 kHz mono samples -> log-mel filter bank and MFCC with deltas.

The math is DALI's audio operators' (rci.preprocess.dali_ops builds the same chain for the
gpu target), written in numpy so the cpu target needs no DALI; tests hold the two within a
tolerance and check the chain against python_speech_features.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from functools import lru_cache

import av
import numpy as np
import scipy.fft
import scipy.signal

from rci.errors import MediaError
from rci.preprocess.media import BufferFile

BLOCK_FRAMES = 6000  # feature frames computed at once (60 s): about 20 MB of spectrum


@dataclass(frozen=True)
class AudioParams:
    """Feature settings. Rates in Hz, lengths in samples at sample_rate."""

    sample_rate: int = 16000
    preemphasis: float = 0.97
    frame_length: int = 400  # 25 ms
    hop_length: int = 160  # 10 ms: 100 feature frames per second
    nfft: int = 512
    n_mels: int = 64
    fmin: float = 0.0
    fmax: float = 8000.0
    floor_db: float = -100.0  # log of silence, relative to a power of 1.0
    n_mfcc: int = 13
    delta_width: int = 2  # frames each side for the deltas' regression
    norm_epsilon: float = 1e-6  # keeps silent clips' normalization finite

    def __post_init__(self) -> None:
        if not (0 < self.hop_length <= self.frame_length <= self.nfft):
            raise ValueError("need 0 < hop_length <= frame_length <= nfft")
        if not (0 <= self.fmin < self.fmax <= self.sample_rate / 2):
            raise ValueError(f"need 0 <= fmin < fmax <= {self.sample_rate / 2} Hz")
        if not (0 < self.n_mfcc <= self.n_mels):
            raise ValueError("need 0 < n_mfcc <= n_mels")

    @property
    def frame_rate(self) -> float:
        """Feature frames per second; frame i covers [i, i + frame_length) / sample_rate s."""
        return self.sample_rate / self.hop_length

    @property
    def mfcc_width(self) -> int:
        """Columns of the MFCC output: coefficients, their deltas and delta-deltas."""
        return 3 * self.n_mfcc


@dataclass
class AudioFeatures:
    """Per-frame audio features of one video; zero rows when it has no audio."""

    fbank: np.ndarray  # (F, n_mels) float32 log-mel power, dB
    mfcc: np.ndarray  # (F, 3 * n_mfcc) float32 MFCC, deltas, delta-deltas; per-clip normalized


def decode_audio(
    data: bytes,
    params: AudioParams = AudioParams(),
    max_duration: float = 1800.0,
    max_seconds: float = 600.0,
) -> np.ndarray:
    """(S,) float32 mono samples at params.sample_rate of the first audio stream, at most
    max_duration seconds; empty when the container has no audio stream or no decoder for it.

    Audio is secondary evidence: a track that breaks off keeps what decoded before the
    break (the video stream decides whether the upload is refused), and so does one whose
    decoding takes over max_seconds of wall time.
    """
    max_samples = int(max_duration * params.sample_rate)
    try:
        container = av.open(BufferFile(data), mode="r")
    except (av.error.FFmpegError, UnicodeDecodeError) as exc:
        raise MediaError(f"not a decodable media container ({exc})") from exc
    chunks: list[np.ndarray] = []
    with container:
        if not container.streams.audio:
            return np.zeros(0, dtype=np.float32)
        try:
            _decode_into(chunks, container, params.sample_rate, max_samples, max_seconds)
        except (av.error.FFmpegError, ValueError):
            pass  # keep the samples before the break
    if not chunks:
        return np.zeros(0, dtype=np.float32)
    return np.concatenate(chunks)[:max_samples].astype(np.float32, copy=False)


def _decode_into(
    chunks: list[np.ndarray],
    container: av.container.InputContainer,
    rate: int,
    limit: int,
    max_seconds: float = 600.0,
) -> None:
    """Append mono float32 chunks at `rate` of the first audio stream until `limit` samples
    or `max_seconds` of wall time.

    A stream whose sample rate or channel layout changes midway (AAC that turns out to
    carry SBR, broadcast streams switching stereo and 5.1) gets a new resampler there.
    """
    resampler, source = None, None
    kept = 0
    began = time.monotonic()
    for n, frame in enumerate(container.decode(container.streams.audio[0])):
        if n % 64 == 0 and time.monotonic() - began > max_seconds:
            break
        form = (frame.sample_rate, frame.layout.name, frame.format.name)
        if form != source:
            if resampler is not None:
                chunks.extend(out.to_ndarray().reshape(-1) for out in resampler.resample(None))
            resampler, source = av.AudioResampler(format="flt", layout="mono", rate=rate), form
        for out in resampler.resample(frame):
            chunks.append(out.to_ndarray().reshape(-1))
            kept += chunks[-1].size
        if kept >= limit:
            return
    if resampler is not None:
        chunks.extend(out.to_ndarray().reshape(-1) for out in resampler.resample(None))


def _slaney_mel(hz: np.ndarray) -> np.ndarray:
    """Slaney's mel scale (DALI's default): linear below 1 kHz, logarithmic above."""
    step = math.log(6.4) / 27.0
    return np.where(
        hz < 1000.0, hz * 3.0 / 200.0, 15.0 + np.log(np.maximum(hz, 1e-9) / 1000.0) / step
    )


def _slaney_hz(mel: np.ndarray) -> np.ndarray:
    step = math.log(6.4) / 27.0
    return np.where(mel < 15.0, mel * 200.0 / 3.0, 1000.0 * np.exp(step * (mel - 15.0)))


@lru_cache(maxsize=8)
def mel_filters(params: AudioParams) -> np.ndarray:
    """(n_mels, nfft // 2 + 1) triangular filters, equal area, on Slaney's mel scale.

    Written here because the only libraries that ship it (librosa, torchaudio) would bring
    numba or torch into the server.
    """
    edges = _slaney_hz(
        np.linspace(_slaney_mel(params.fmin), _slaney_mel(params.fmax), params.n_mels + 2)
    )
    bins = np.fft.rfftfreq(params.nfft, 1.0 / params.sample_rate)
    low, centre, high = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    rising = (bins - low) / (centre - low)
    falling = (high - bins) / (high - centre)
    return (np.maximum(0.0, np.minimum(rising, falling)) * (2.0 / (high - low))).astype(np.float32)


def power_spectrum(samples: np.ndarray, params: AudioParams = AudioParams()) -> np.ndarray:
    """(F, nfft // 2 + 1) power of pre-emphasized, Hann-windowed frames; F = 0 when the
    clip is shorter than one frame."""
    return _power(_frames(samples, params), params)


def _frames(samples: np.ndarray, params: AudioParams) -> np.ndarray:
    """(F, frame_length) float32 view of the pre-emphasized samples, one row a hop."""
    if samples.size < params.frame_length:
        return np.zeros((0, params.frame_length), dtype=np.float32)
    x = samples.astype(np.float32)
    emphasized = np.concatenate([x[:1], x[1:] - params.preemphasis * x[:-1]])
    return np.lib.stride_tricks.sliding_window_view(emphasized, params.frame_length)[
        :: params.hop_length
    ]


def _power(frames: np.ndarray, params: AudioParams) -> np.ndarray:
    """(F, nfft // 2 + 1) float32 power spectrum of (F, frame_length) frames, windowed."""
    spectrum = np.fft.rfft(frames * window(params), n=params.nfft, axis=1)
    return (spectrum.real**2 + spectrum.imag**2).astype(np.float32)


def window(params: AudioParams) -> np.ndarray:
    """(frame_length,) periodic Hann window, given to DALI's spectrogram as is."""
    return scipy.signal.get_window("hann", params.frame_length).astype(np.float32)


def log_mel(power: np.ndarray, params: AudioParams = AudioParams()) -> np.ndarray:
    """(F, n_mels) float32 dB of the mel filter bank energies of power (F, nfft // 2 + 1)."""
    energies = power @ mel_filters(params).T
    return (10.0 * np.log10(np.maximum(energies, 10.0 ** (params.floor_db / 10.0)))).astype(
        np.float32
    )


def deltas(features: np.ndarray, width: int) -> np.ndarray:
    """(F, C) regression slope over +-width frames along time, edges repeated."""
    padded = np.pad(features, ((width, width), (0, 0)), mode="edge")
    count = len(features)
    slope = sum(
        n * (padded[width + n : width + n + count] - padded[width - n : width - n + count])
        for n in range(1, width + 1)
    )
    return (slope / (2 * sum(n * n for n in range(1, width + 1)))).astype(np.float32)


def mfcc(fbank: np.ndarray, params: AudioParams = AudioParams()) -> np.ndarray:
    """(F, 3 * n_mfcc) float32: DCT-II of the dB filter bank, deltas, delta-deltas, each
    column normalized to zero mean and unit variance over the clip."""
    if len(fbank) == 0:
        return np.zeros((0, params.mfcc_width), dtype=np.float32)
    ceps = scipy.fft.dct(fbank, type=2, norm="ortho", axis=1)[:, : params.n_mfcc]
    first = deltas(ceps, params.delta_width)
    stacked = np.concatenate([ceps, first, deltas(first, params.delta_width)], axis=1)
    centred = stacked - stacked.mean(axis=0)
    scale = 1.0 / np.sqrt(np.mean(centred**2, axis=0) + params.norm_epsilon)
    return (centred * scale).astype(np.float32)


def audio_features(samples: np.ndarray, params: AudioParams = AudioParams()) -> AudioFeatures:
    """Filter bank and MFCC of (S,) float32 samples at params.sample_rate."""
    frames = _frames(samples, params)
    # A block of frames at a time: the whole spectrum of 30 minutes would take 2 GB.
    fbank = np.zeros((len(frames), params.n_mels), dtype=np.float32)
    for start in range(0, len(frames), BLOCK_FRAMES):
        block = frames[start : start + BLOCK_FRAMES]
        fbank[start : start + len(block)] = log_mel(_power(block, params), params)
    return AudioFeatures(fbank=fbank, mfcc=mfcc(fbank, params))
