"""Audio features: decoding to 16 kHz mono, the filter bank and MFCC chain checked against
python_speech_features (an independent implementation) and against physics."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest
import python_speech_features as psf
import python_speech_features.base

from rci.bench.samples import write_video
from rci.errors import MediaError
from rci.preprocess.audio import AudioParams, audio_features, decode_audio, mel_filters, window
from tests.test_media import encode

PARAMS = AudioParams()


def tone_video(path: Path, hz: float, seconds: float, rate: int = 44100) -> bytes:
    """A 64x64 black video with a stereo tone at `hz`, AAC at `rate` samples per second."""
    with av.open(str(path), "w") as container:
        video = container.add_stream("libx264", rate=25)
        video.width = video.height = 64
        video.pix_fmt = "yuv420p"
        audio = container.add_stream("aac", rate=rate, layout="stereo")
        for _ in range(int(seconds * 25)):
            frame = av.VideoFrame.from_ndarray(np.zeros((64, 64, 3), np.uint8), format="rgb24")
            container.mux(video.encode(frame))
        container.mux(video.encode(None))
        t = np.arange(int(seconds * rate)) / rate
        wave = (0.4 * np.sin(2 * np.pi * hz * t)).astype(np.float32)
        for start in range(0, len(wave), 1024):
            chunk = np.repeat(wave[None, start : start + 1024], 2, axis=0)
            frame = av.AudioFrame.from_ndarray(chunk, format="fltp", layout="stereo")
            frame.sample_rate = rate
            container.mux(audio.encode(frame))
        container.mux(audio.encode(None))
    return path.read_bytes()


def test_decode_resamples_to_16k_mono(tmp_path) -> None:
    samples = decode_audio(tone_video(tmp_path / "tone.mp4", 1000.0, 2.0))
    assert samples.dtype == np.float32 and samples.ndim == 1
    assert len(samples) == pytest.approx(2.0 * 16000, abs=0.05 * 16000)  # AAC priming aside
    # FFmpeg's stereo-to-mono downmix adds the channels at -3 dB: 0.4 * sqrt(2).
    assert np.abs(samples).max() == pytest.approx(0.4 * np.sqrt(2), rel=0.1)


def test_decode_caps_the_duration(tmp_path) -> None:
    data = tone_video(tmp_path / "tone.mp4", 440.0, 3.0)
    assert len(decode_audio(data, PARAMS, max_duration=1.0)) == 16000


def test_video_without_audio_gives_no_feature_frames(tmp_path) -> None:
    samples = decode_audio(encode(tmp_path / "silent.mp4", 30, 25))
    assert samples.shape == (0,)
    features = audio_features(samples)
    assert features.fbank.shape == (0, 64) and features.mfcc.shape == (0, 39)


def test_audio_shorter_than_one_frame(tmp_path) -> None:
    features = audio_features(np.zeros(PARAMS.frame_length - 1, np.float32))
    assert features.fbank.shape == (0, 64) and features.mfcc.shape == (0, 39)


def test_corrupt_input_is_a_media_error() -> None:
    with pytest.raises(MediaError, match="not a decodable media container"):
        decode_audio(b"\x00" * 1000)


def test_frame_count_and_rate() -> None:
    # 2 s at 16 kHz, 25 ms frames every 10 ms: 1 + (32000 - 400) // 160 = 198 frames.
    features = audio_features(np.zeros(32000, np.float32))
    assert features.fbank.shape == (198, 64) and features.mfcc.shape == (198, 39)
    assert PARAMS.frame_rate == 100.0
    assert np.isfinite(features.mfcc).all()
    np.testing.assert_allclose(features.fbank, PARAMS.floor_db, atol=1e-3)  # the floor


@pytest.mark.parametrize("hz", [300.0, 1000.0, 3000.0])
def test_a_tone_lights_the_band_around_its_frequency(tmp_path, hz) -> None:
    features = audio_features(decode_audio(tone_video(tmp_path / "tone.mp4", hz, 1.0)))
    loudest = np.bincount(features.fbank[10:-10].argmax(axis=1)).argmax()
    bins = np.fft.rfftfreq(PARAMS.nfft, 1 / PARAMS.sample_rate)
    centre = bins[mel_filters(PARAMS)[loudest].argmax()]
    assert abs(centre - hz) < 0.15 * hz


def test_filters_cover_the_band_once() -> None:
    filters = mel_filters(PARAMS)
    assert filters.shape == (64, 257) and (filters >= 0).all()
    bins = np.fft.rfftfreq(PARAMS.nfft, 1 / PARAMS.sample_rate)
    assert (filters.sum(axis=0)[(bins > 100) & (bins < 7900)] > 0).all()  # no holes


@pytest.fixture()
def speechlike() -> np.ndarray:
    """3 s of a gliding tone over noise, 400 + 160 k samples so that no frame is padded."""
    rng = np.random.default_rng(7)
    t = np.arange(400 + 160 * 298) / 16000
    return (
        0.3 * np.sin(2 * np.pi * 300 * t * (1 + t)) + 0.05 * rng.standard_normal(len(t))
    ).astype(np.float32)


def test_filter_bank_equals_python_speech_features(monkeypatch, speechlike) -> None:
    # psf quantizes its filters to FFT bins; give it ours, so the comparison covers the rest
    # of the chain (pre-emphasis, framing, window, power spectrum, product, log) in psf's code.
    monkeypatch.setattr(
        python_speech_features.base, "get_filterbanks", lambda *a, **k: mel_filters(PARAMS)
    )
    energies, _ = psf.fbank(speechlike, 16000, nfilt=64, nfft=512, winfunc=lambda n: window(PARAMS))
    theirs = np.log(energies)
    ours = audio_features(speechlike).fbank
    assert ours.shape == theirs.shape == (299, 64)
    # psf: natural log of power / nfft; ours: dB of power.
    np.testing.assert_allclose(ours, 10 * np.log10(np.e) * theirs + 10 * np.log10(512), atol=1e-3)


def test_mfcc_equals_python_speech_features(monkeypatch, speechlike) -> None:
    monkeypatch.setattr(
        python_speech_features.base, "get_filterbanks", lambda *a, **k: mel_filters(PARAMS)
    )
    ceps = psf.mfcc(
        speechlike,
        16000,
        numcep=13,
        nfilt=64,
        nfft=512,
        ceplifter=0,
        appendEnergy=False,
        winfunc=lambda n: window(PARAMS),
    )
    first = psf.delta(ceps, 2)
    stacked = np.concatenate([ceps, first, psf.delta(first, 2)], axis=1)
    # Normalizing each column removes psf's natural-log scale and c0's 1/nfft offset.
    theirs = (stacked - stacked.mean(axis=0)) / stacked.std(axis=0)
    np.testing.assert_allclose(audio_features(speechlike).mfcc, theirs, atol=2e-3)


def test_features_of_a_real_video_track(tmp_path) -> None:
    path = write_video(
        tmp_path / "noise.mp4", [np.zeros((64, 64, 3), np.uint8)] * 50, audio_seconds=2.0
    )
    features = audio_features(decode_audio(path.read_bytes()))
    # 2 s is 198 frames; AAC adds up to two 1024-sample packets of priming and padding.
    assert 198 <= len(features.fbank) <= 198 + 2 * 1024 // 160
    mfcc = features.mfcc
    np.testing.assert_allclose(mfcc.mean(axis=0), 0, atol=1e-4)
    np.testing.assert_allclose(mfcc.std(axis=0), 1, atol=1e-2)


def test_a_track_that_breaks_off_keeps_what_came_before(tmp_path) -> None:
    # Noise over the middle of the file: the decoder fails there. Audio is secondary, so
    # the samples before the break are kept rather than the upload refused.
    data = bytearray(tone_video(tmp_path / "tone.mkv", 440.0, 4.0))
    middle = len(data) // 2
    data[middle : middle + 2000] = np.random.default_rng(1).bytes(2000)
    samples = decode_audio(bytes(data))
    assert 0.5 * 16000 < len(samples) < 4.0 * 16000


def test_long_tracks_are_computed_in_blocks_with_the_same_result() -> None:
    from rci.preprocess.audio import BLOCK_FRAMES, log_mel, power_spectrum

    params = AudioParams()
    # 2.5 blocks and a ragged end: frames on both sides of every block boundary.
    seconds = 2.5 * BLOCK_FRAMES / params.frame_rate + 0.0123
    x = np.random.default_rng(3).standard_normal(int(seconds * params.sample_rate))
    x = (0.1 * x).astype(np.float32)
    whole = log_mel(power_spectrum(x, params), params)  # every frame at once
    blocked = audio_features(x, params).fbank
    assert blocked.shape == whole.shape and len(whole) > 2 * BLOCK_FRAMES
    np.testing.assert_allclose(blocked, whole, atol=1e-4)  # dB; FFT batch rounding only
