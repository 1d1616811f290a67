"""The verdict from pictures and sound (rci.match.verdict) and the sound's alignment
(rci.match.audio_alignment), on fingerprints made to order."""

import dataclasses

import numpy as np
import pytest

from rci.errors import RciError
from rci.library.store import VideoFingerprints
from rci.match.alignment import AlignParams, Segment
from rci.match.audio_alignment import WINDOW_PERIOD, align_audio
from rci.match.recall import pack_candidates, unpack_candidate_audio
from rci.match.verdict import (
    FusionParams,
    Match,
    QueryAudio,
    checked_query_audio,
    decide,
    match,
    match_candidates,
    pack_matches,
    unpack_matches,
    visual_support,
    with_audio,
    without_chrome,
)
from rci.preprocess.audio_prints import AUDIO_PRINT, WINDOW_SECONDS, AudioPrints

VIEWS = 20  # 5 tempos x 4 phases
PLAIN = 2 * 4  # the tempo-1, phase-0 view


def random_windows(count: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (count, 32), dtype=np.uint8)


def flip_bits(windows: np.ndarray, share: float, seed: int) -> np.ndarray:
    """windows with about `share` of their bits flipped (noise over the sound)."""
    rng = np.random.default_rng(seed)
    flips = np.packbits(rng.random((len(windows), 256)) < share, axis=1)
    return windows ^ flips


def query_views(plain: np.ndarray, seed: int) -> np.ndarray:
    """(VIEWS, A, 32): `plain` as the tempo-1 phase-0 view, unrelated windows elsewhere."""
    views = np.stack([random_windows(len(plain), seed + v) for v in range(VIEWS)])
    views[PLAIN] = plain
    return views


def times(count: int, start: float = 0.0) -> np.ndarray:
    return (start + WINDOW_PERIOD * np.arange(count)).astype(np.float32)


def unit(rows: np.ndarray) -> np.ndarray:
    return (rows / np.linalg.norm(rows, axis=1, keepdims=True)).astype(np.float32)


def test_audio_alignment_finds_the_shared_span_through_noise():
    """Windows 40-100 of a reference, with a tenth of their bits flipped, played from the
    query's 10th window: one segment, at those times, scoring about 1 - 2 x 0.1."""
    ref = random_windows(160, seed=1)
    plain = np.concatenate(
        [random_windows(10, 2), flip_bits(ref[40:100], 0.1, 3), random_windows(10, 4)]
    )
    params = FusionParams().alignment(AlignParams())
    (seg,) = align_audio(query_views(plain, 10), times(len(plain)), ref, times(len(ref)), params)
    assert seg.query_start == pytest.approx(10 * WINDOW_PERIOD, abs=1e-4)
    # It ends where its last window's audio does.
    assert seg.query_end == pytest.approx(69 * WINDOW_PERIOD + WINDOW_SECONDS, abs=1e-4)
    assert seg.ref_start == pytest.approx(40 * WINDOW_PERIOD, abs=1e-4)
    assert seg.score == pytest.approx(0.8, abs=0.03)
    # Unrelated sound aligns nothing.
    other = query_views(random_windows(80, 50), 60)
    assert align_audio(other, times(80), ref, times(len(ref)), params) == []


def test_audio_alignment_reads_the_best_view():
    """The copy is found in a view other than the plain one (a tempo change), not the plain."""
    ref = random_windows(100, seed=5)
    views = query_views(random_windows(50, 6), 70)
    views[0] = ref[20:70]  # the slowest tempo's phase 0
    params = FusionParams().alignment(AlignParams())
    (seg,) = align_audio(views, times(50), ref, times(100), params)
    assert seg.ref_start == pytest.approx(20 * WINDOW_PERIOD, abs=1e-4) and seg.score == 1.0


def diagonal_similarities(size: int, on_path: float, seed: int) -> np.ndarray:
    """(size, size) similarities: noise around 0.05 with `on_path` on the diagonal."""
    S = np.random.default_rng(seed).normal(0.05, 0.02, (size, size)).astype(np.float32)
    S[np.arange(size), np.arange(size)] = on_path
    return S


def test_visual_support_measures_the_pictures_along_the_sound():
    t = np.arange(30, dtype=np.float32)
    seg = Segment(5.0, 25.0, 5.0, 25.0, 0.9, 40, modality="audio", audio_score=0.9)
    assert visual_support(diagonal_similarities(30, 0.3, 0), t, t, seg) == pytest.approx(
        0.3, abs=0.01
    )
    # Pictures unrelated along the sound: the best of three noise values, about 0.08.
    flat = diagonal_similarities(30, 0.05, 1)
    assert visual_support(flat, t, t, seg) < 0.12
    # The sound's mapping read off the other diagonal finds nothing there.
    shifted = dataclasses.replace(seg, ref_start=0.0, ref_end=20.0)
    assert visual_support(diagonal_similarities(30, 0.3, 0), t, t, shifted) < 0.12
    # A reference showing one picture throughout (a static shot) still supports its copy:
    # the pictures along the sound are what counts, not how they stand out from the rest.
    static = np.full((30, 30), 0.8, np.float32)
    assert visual_support(static, t, t, seg) == pytest.approx(0.8)


def test_audio_on_a_visual_segments_diagonal_marks_it_both():
    visual = [Segment(10.0, 30.0, 0.0, 20.0, 0.7, 20)]
    same = Segment(12.0, 28.0, 2.5, 18.5, 0.9, 30, support=0.4)
    elsewhere = Segment(40.0, 50.0, 60.0, 70.0, 0.85, 20, support=0.0)
    merged = with_audio(visual, [same, elsewhere], max_gap=5.0)
    assert [s.modality for s in merged] == ["both", "audio"]
    assert merged[0].score == 0.7 and merged[0].audio_score == 0.9
    assert merged[1].audio_score == 0.85 and merged[1].score == 0.85
    # The same query span aligned to another reference moment is not the same diagonal.
    off = Segment(12.0, 28.0, 40.0, 56.0, 0.9, 30)
    assert [s.modality for s in with_audio(visual, [off], 5.0)] == ["visual", "audio"]


def audio_segment(audio_score: float, support: float) -> Segment:
    return Segment(0.0, 20.0, 0.0, 20.0, audio_score, 40, "audio", audio_score, support)


@pytest.mark.parametrize(
    "audio_score,support,reproduced,reuse",
    [
        (0.95, 0.3, True, False),  # the sound, and the pictures agree along it
        (0.95, 0.01, False, True),  # the same music under other pictures
        (0.6, 0.3, False, False),  # sound too unlike to count
    ],
)
def test_sound_alone_is_reuse_and_with_the_pictures_a_reproduction(
    audio_score, support, reproduced, reuse
):
    params, fusion = AlignParams(), FusionParams()
    m = decide(Match("v", 0.0, False, []), [audio_segment(audio_score, support)], params, fusion)
    assert (m.reproduced, m.audio_reuse) == (reproduced, reuse)
    # Audio below the threshold is not the same audio: its segment is not reported.
    heard = audio_score >= fusion.threshold
    assert m.visual_score == 0.0 and m.audio_score == (audio_score if heard else 0.0)
    assert len(m.segments) == heard
    assert (m.score >= params.threshold) == reproduced


def test_audio_lifts_a_borderline_visual_match_on_its_diagonal():
    params, fusion = AlignParams(), FusionParams()
    weak = Segment(0.0, 20.0, 0.0, 20.0, 0.45, 20)
    alone = decide(Match("v", 0.0, False, []), [weak], params, fusion)
    assert not alone.reproduced and alone.score == pytest.approx(0.45)
    both = dataclasses.replace(weak, modality="both", audio_score=0.95, support=0.35)
    fused = decide(Match("v", 0.0, False, []), [both], params, fusion)
    assert fused.reproduced and fused.visual_score == pytest.approx(0.45)
    assert not fused.audio_reuse


def test_a_visual_verdict_is_unchanged_without_sound():
    """No audio (removed, or a library video without any): the pictures alone decide, with
    the same score as before the sound was read."""
    rng = np.random.default_rng(3)
    ref = unit(rng.normal(size=(30, 512)))
    query = unit(ref[5:25] + 0.3 * unit(rng.normal(size=(20, 512))))
    t_ref, t_q = np.arange(30, dtype=np.float32), np.arange(20, dtype=np.float32)
    plain = match("v", query, t_q, ref, t_ref)
    silent = AudioPrints(AUDIO_PRINT, np.zeros(0, np.float32), np.zeros((0, 32), np.uint8))
    sound = QueryAudio(query_views(random_windows(40, 1), 2), times(40))
    with_sound = match("v", query, t_q, ref, t_ref, audio=sound, ref_audio=silent)
    assert plain.reproduced and with_sound == plain
    assert plain.visual_score == plain.score and plain.audio_score == 0.0


def test_match_candidates_fuses_each_candidates_sound():
    """A candidate whose pictures are not the query's but whose sound is: audio reuse, not
    reproduced; its segments are marked audio."""
    rng = np.random.default_rng(4)
    query = unit(rng.normal(size=(40, 512)))
    other = unit(rng.normal(size=(40, 512)))
    t = np.arange(40, dtype=np.float32)
    ref_sound = random_windows(80, 9)
    sound = QueryAudio(query_views(ref_sound, 20), times(80))
    prints = AudioPrints(AUDIO_PRINT, times(80), ref_sound)
    (m,) = match_candidates(query, t, [("music", other, t)], audio=sound, candidate_audio=[prints])
    assert not m.reproduced and m.audio_reuse and m.audio_score == 1.0
    assert {s.modality for s in m.segments} == {"audio"}
    with pytest.raises(RciError, match="audio"):
        match_candidates(query, t, [("music", other, t)], audio=sound, candidate_audio=[])


def test_matches_travel_as_tensors_with_their_modalities():
    segments = [
        Segment(0.0, 10.0, 5.0, 15.0, 0.7, 10, "both", 0.9, 0.3),
        Segment(20.0, 30.0, 0.0, 10.0, 0.88, 20, "audio", 0.88, 0.0),
    ]
    m = Match("a", 0.7, True, segments, "lib", visual_score=0.7, audio_score=0.9)
    tensors = pack_matches([m, Match("b", 0.1, False, [], "lib", audio_reuse=True)])
    assert tensors["SEGMENT_MODALITIES"].tolist() == [b"both", b"audio"]
    back = unpack_matches(tensors)
    assert [s.modality for s in back[0].segments] == ["both", "audio"]
    assert back[0].audio_score == pytest.approx(0.9) and back[1].audio_reuse
    # A server from before the audio channel sends none of the audio outputs.
    old = {k: v for k, v in tensors.items() if "AUDIO" not in k and "VISUAL" not in k}
    old.pop("SEGMENT_MODALITIES")
    legacy = unpack_matches(old)
    assert {s.modality for s in legacy[0].segments} == {"visual"}
    assert legacy[0].visual_score == pytest.approx(0.7) and not legacy[1].audio_reuse


def test_candidate_audio_travels_and_is_checked():
    rng = np.random.default_rng(5)
    emb = unit(rng.normal(size=(4, 512)))
    t = np.arange(4, dtype=np.float32)
    with_sound = VideoFingerprints(
        "a", emb, t, 4.0, AudioPrints(AUDIO_PRINT, times(6), random_windows(6, 1))
    )
    without = VideoFingerprints("b", emb, t, 4.0, None)
    tensors = pack_candidates([with_sound, without], 512, audio=True)
    assert tensors["CANDIDATE_AUDIO_LENGTHS"].tolist() == [6, 0]
    sounds = unpack_candidate_audio(tensors, 2)
    np.testing.assert_array_equal(sounds[0].bits, with_sound.audio.bits)
    assert sounds[1] is None
    # Without the query's sound, no candidate's travels.
    assert pack_candidates([with_sound], 512)["CANDIDATE_AUDIO"].shape == (1, 0, 32)
    bad = dict(tensors, CANDIDATE_AUDIO_LENGTHS=np.array([7, 0], np.int32))
    with pytest.raises(RciError, match="CANDIDATE_AUDIO_LENGTHS"):
        unpack_candidate_audio(bad, 2)
    backwards = dict(tensors, CANDIDATE_AUDIO_TIMES=tensors["CANDIDATE_AUDIO_TIMES"][:, ::-1])
    with pytest.raises(RciError, match="CANDIDATE_AUDIO_TIMES"):
        unpack_candidate_audio(backwards, 2)
    with pytest.raises(RciError, match="together"):
        unpack_candidate_audio({"CANDIDATE_AUDIO": tensors["CANDIDATE_AUDIO"]}, 2)


def test_query_audio_is_checked():
    views = query_views(random_windows(10, 1), 2)
    assert checked_query_audio(None, None) is None
    assert checked_query_audio(views, times(10)).views.shape == (VIEWS, 10, 32)
    with pytest.raises(RciError, match="together"):
        checked_query_audio(views, None)
    with pytest.raises(RciError, match="QUERY_AUDIO_TIMES"):
        checked_query_audio(views, times(9))
    with pytest.raises(RciError, match="QUERY_AUDIO_TIMES"):
        checked_query_audio(views, np.full(10, np.nan, np.float32))
    with pytest.raises(RciError, match="QUERY_AUDIO_PRINTS"):
        checked_query_audio(views[:3], times(10))


def test_fusion_parameters_are_checked():
    with pytest.raises(ValueError):
        FusionParams(support=0.0)
    with pytest.raises(ValueError):
        FusionParams(threshold=float("nan"))
    with pytest.raises(ValueError):
        FusionParams(node_similarity=float("nan"))


def test_shared_music_never_makes_a_short_copied_picture_chrome():
    """A 4 s copied picture of one video, while three other videos share the query's music
    over the same span: the picture stays; a 4 s sound three videos share (a jingle) goes."""
    params, fusion = AlignParams(), FusionParams()
    picture = Segment(10.0, 14.0, 0.0, 4.0, 0.8, 4)
    music = Segment(8.0, 16.0 - 3.5, 30.0, 34.5, 0.9, 8, "audio", 0.9, 0.0)
    copied = decide(Match("copied", 0.0, False, []), [picture], params, fusion)
    sharing = [decide(Match(f"m{n}", 0.0, False, []), [music], params, fusion) for n in range(3)]
    kept = {m.video_id: m for m in without_chrome([copied, *sharing], params, fusion=fusion)}
    assert kept["copied"].segments == [picture] and kept["copied"].reproduced
    assert all(kept[f"m{n}"].segments == [] for n in range(3))  # the jingle: chrome
    assert not any(kept[f"m{n}"].audio_reuse for n in range(3))
