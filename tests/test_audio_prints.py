"""Audio fingerprints (libchromaprint in process): windows, quiet ones left out, query views
that meet a copy at any start and at another tempo."""

from __future__ import annotations

import numpy as np
import pytest

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
from tests.media_factory import melody

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
