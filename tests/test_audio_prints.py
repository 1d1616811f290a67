"""Audio fingerprints (libchromaprint in process): windows, quiet ones left out, query views
that meet a copy at any start and at another tempo."""

from __future__ import annotations

import av
import numpy as np
import pytest

from rci.preprocess.audio import decode_audio
from rci.preprocess.audio_prints import (
    AUDIO_PRINT,
    HOP,
    ITEM_SECONDS,
    WINDOW_BYTES,
    AudioPrintParams,
    atempo,
    audio_prints,
    fingerprint_audio,
    query_prints,
    unpack_signs,
)
from tests.media_factory import drifting, encode_with_audio, melody

RATE = 16000


def best_similarity(query: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """(A,) each query window's best cosine with any reference window, over views."""
    S = np.einsum("vad,rd->var", unpack_signs(query), unpack_signs(ref))
    return S.max(axis=(0, 2))


def test_windows_every_four_items() -> None:
    prints = audio_prints(melody(20.0), RATE)
    assert prints.kind == AUDIO_PRINT and prints.bits.dtype == np.uint8
    assert prints.bits.shape[1] == WINDOW_BYTES == 32
    # 20 s gives about 143 items (161 at 0.124 s, less Chromaprint's 2.2 s of filter
    # context): windows of 8 every 4 give (143 - 8) / 4 + 1 = 34.
    assert abs(len(prints.bits) - 34) <= 2
    np.testing.assert_allclose(np.diff(prints.times), HOP * ITEM_SECONDS, rtol=1e-5)


@pytest.mark.parametrize(
    "samples",
    [np.zeros(0, np.float32), np.zeros(RATE * 5, np.float32), melody(0.5)],
    ids=["no samples", "digital silence", "half a second"],
)
def test_silence_and_short_audio_give_no_windows(samples) -> None:
    prints, views = fingerprint_audio(samples, RATE, query=True)
    assert prints.bits.shape == (0, WINDOW_BYTES) and prints.times.shape == (0,)
    assert views.shape == (20, 0, WINDOW_BYTES)


def test_quiet_stretch_is_left_out() -> None:
    x = melody(20.0)
    x[int(5 * RATE) : int(12 * RATE)] *= 1e-3  # -60 dB: a fade, a pause
    times = audio_prints(x, RATE).times
    assert not ((times > 5.2) & (times < 10.8)).any()
    assert (times < 4.0).any() and (times > 12.0).any()


def test_query_views_hold_the_library_windows() -> None:
    x = melody(15.0, seed=3)
    prints, views = fingerprint_audio(x, RATE, query=True)
    assert views.shape == (len(AudioPrintParams().tempos) * HOP, len(prints.bits), WINDOW_BYTES)
    np.testing.assert_array_equal(views[AudioPrintParams().tempos.index(1.0) * HOP], prints.bits)
    times, again = query_prints(x, RATE)
    np.testing.assert_array_equal(times, prints.times)
    np.testing.assert_array_equal(again, views)


def test_a_copy_starting_between_windows_matches() -> None:
    ref = melody(30.0, seed=1)
    start = int(7.3 * RATE)  # not on the 0.495 s window grid
    copy = ref[start : start + 15 * RATE] + np.random.default_rng(2).normal(0, 0.02, 15 * RATE)
    _, views = fingerprint_audio(copy.astype(np.float32), RATE, query=True)
    library = audio_prints(ref, RATE)
    assert np.median(best_similarity(views, library.bits)) > 0.9
    # Another tune on the same scale stays near chance (windows of random bits: about 0.45
    # as the best of some 1500 per query window).
    other = audio_prints(melody(30.0, seed=9), RATE)
    assert np.median(best_similarity(views, other.bits)) < 0.6


def test_tempo_views_restore_a_sped_up_copy() -> None:
    ref = melody(30.0, seed=4)
    copy = atempo(ref[2 * RATE : 22 * RATE], RATE, 1.25)  # 20 s played in 16 s, pitch kept
    assert len(copy) == pytest.approx(16 * RATE, rel=0.02)
    library = audio_prints(ref, RATE)
    _, views = fingerprint_audio(copy, RATE, query=True)
    plain = views[AudioPrintParams().tempos.index(1.0) * HOP][None]
    with_tempos = np.median(best_similarity(views, library.bits))
    assert with_tempos > 0.5
    assert with_tempos > np.median(best_similarity(plain, library.bits)) + 0.1


def test_signs_give_the_bit_agreement() -> None:
    a = np.array([[0b10110000, 0xFF]], np.uint8)
    b = np.array([[0b10110001, 0x0F]], np.uint8)
    # 5 of 16 bits differ: cosine 1 - 2 x 5 / 16 = 0.375.
    assert (unpack_signs(a) @ unpack_signs(b).T).item() == pytest.approx(0.375)


def test_params_refuse_tempos_ffmpeg_cannot_play() -> None:
    with pytest.raises(ValueError, match="tempos"):
        AudioPrintParams(tempos=(0.75, 1.33))  # no 1.0
    with pytest.raises(ValueError, match="tempos"):
        AudioPrintParams(tempos=(0.25, 1.0))


def encoded_tune(path, samples: np.ndarray, rate: int, layout: str, codec: str = "aac") -> bytes:
    """`samples` (at RATE) resampled to `rate`, in every channel of `layout`, in a file of
    that one audio stream."""
    wave = np.interp(np.arange(int(len(samples) * rate / RATE)) * RATE / rate,
                     np.arange(len(samples)), samples).astype(np.float32)  # fmt: skip
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=rate, layout=layout)
        channels = (
            stream.layout.nb_channels
            if hasattr(stream.layout, "nb_channels")
            else len(stream.layout.channels)
        )
        for i in range(0, len(wave), 1024):
            chunk = np.repeat(wave[None, i : i + 1024], channels, axis=0)
            frame = av.AudioFrame.from_ndarray(chunk, format="fltp", layout=layout)
            frame.sample_rate = rate
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return path.read_bytes()


@pytest.mark.parametrize(
    "rate, layout",
    [(8000, "mono"), (22050, "stereo"), (44100, "5.1"), (48000, "stereo"), (16000, "mono")],
)
def test_any_rate_and_layout_gives_the_same_fingerprints(tmp_path, rate, layout) -> None:
    tune = melody(20.0, seed=5)
    data = encoded_tune(tmp_path / "tune.mp4", tune, rate, layout)
    prints, views = fingerprint_audio(decode_audio(data), RATE, query=True)
    reference = audio_prints(tune, RATE)
    assert abs(len(prints.bits) - len(reference.bits)) <= 2
    # Read as a query (the codec's priming shifts the windows): 8 kHz keeps the notes
    # (220-1760 Hz and their harmonic), and Chromaprint reads chroma.
    assert np.median(best_similarity(views, reference.bits)) > 0.8


def test_audio_longer_than_the_video_is_read_to_its_end(tmp_path) -> None:
    # A 3 s picture over a 20 s soundtrack: the audio stream decides how far audio goes.
    tune = melody(20.0, seed=6)
    data = encode_with_audio(tmp_path / "long.mp4", drifting(30, seed=0), tune)
    prints = audio_prints(decode_audio(data), RATE)
    assert prints.times[-1] > 15.0


def test_a_track_that_breaks_off_keeps_the_fingerprints_before(tmp_path) -> None:
    tune = melody(20.0, seed=8)
    data = bytearray(encoded_tune(tmp_path / "tune.mkv", tune, 44100, "stereo"))
    middle = len(data) // 2
    data[middle : middle + 4000] = np.random.default_rng(1).bytes(4000)
    prints, views = fingerprint_audio(decode_audio(bytes(data)), RATE, query=True)
    whole = audio_prints(tune, RATE)
    assert 4 <= len(prints.bits) < len(whole.bits)
    # What was kept is the tune's start, not noise.
    assert np.median(best_similarity(views, whole.bits[: len(prints.bits) + 2])) > 0.8
