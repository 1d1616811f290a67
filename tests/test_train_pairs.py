"""MatchLite's training pairs are composed at feature level (rci.train.pairs): the truth must
follow each span, an obscured query must keep exactly the cosine asked of it, and a
never-copied library video made into a query must copy nothing and never meet itself."""

import numpy as np
import pytest

from rci.describe.descriptor import EMBEDDING_DIM
from rci.library.store import VideoFingerprints
from rci.match.recall import recall_recurring
from rci.match.views import QueryViews
from rci.preprocess.audio_prints import AUDIO_PRINT, HOP, AudioPrintParams, AudioPrints
from rci.serving.libraries import Libraries
from rci.train.pairs import (
    Clip,
    WithoutVideos,
    cut,
    faster,
    join,
    never_copied_clip,
    obscured,
    shared_shots,
    unrelated,
)


def unit_rows(rng: np.random.Generator, n: int) -> np.ndarray:
    x = rng.standard_normal((n, EMBEDDING_DIM)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def clip(rng: np.random.Generator, seconds: int, ref_id: str) -> Clip:
    """A clip of one frame and one audio window a second, copying ref_id from 10 s on."""
    emb = unit_rows(rng, seconds)
    times = np.arange(seconds, dtype=np.float32)
    audio = rng.integers(0, 256, (2, seconds, 32), dtype=np.uint8)
    truth = [{"ref_id": ref_id, "query_start": 0.0, "query_end": float(seconds),
              "ref_start": 10.0, "ref_end": 10.0 + seconds, "edits": []}]  # fmt: skip
    return Clip(emb, unit_rows(rng, seconds), emb.copy(), times, audio, times.copy(),
                float(seconds), truth)  # fmt: skip


@pytest.mark.parametrize("keep", [0.35, 0.6, 0.8])
def test_obscured_pictures_keep_the_cosine_asked_and_nothing_else_changes(keep):
    rng = np.random.default_rng(0)
    a, other = clip(rng, 12, "A"), clip(rng, 5, "B")
    out = obscured(a, other, keep, np.random.default_rng(1))
    for name in ("embeddings", "mirrored", "whole"):
        mine, theirs = getattr(a, name), getattr(out, name)
        np.testing.assert_allclose(np.linalg.norm(theirs, axis=1), 1.0, atol=1e-5)
        np.testing.assert_allclose(np.sum(mine * theirs, axis=1), keep, atol=1e-5)
    # The frames lean toward the other clip's: the obscuring is an overlay, not noise.
    toward = np.max(out.embeddings @ other.embeddings.T, axis=1)
    assert np.all(toward > 0.5)
    assert out.truth == a.truth and out.duration == a.duration
    np.testing.assert_array_equal(out.audio, a.audio)
    np.testing.assert_array_equal(out.times, a.times)


def test_obscured_takes_a_random_direction_where_the_partner_frame_is_the_same():
    rng = np.random.default_rng(2)
    a = clip(rng, 4, "A")
    out = obscured(a, a, 0.5, np.random.default_rng(3))
    assert np.all(np.isfinite(out.embeddings))
    np.testing.assert_allclose(np.sum(a.embeddings * out.embeddings, axis=1), 0.5, atol=1e-5)


def test_a_cut_and_a_join_carry_the_truth_with_the_spans():
    rng = np.random.default_rng(4)
    a, b = clip(rng, 20, "A"), clip(rng, 10, "B")
    part = cut(a, 5.0, 15.0)
    assert part.duration == 10.0 and len(part.times) == 10
    (t,) = part.truth
    assert (t["query_start"], t["query_end"], t["ref_start"], t["ref_end"]) == (
        0.0,
        10.0,
        15.0,
        25.0,
    )
    montage = join([b, part])
    assert montage.duration == 20.0
    assert [(t["ref_id"], t["query_start"], t["query_end"]) for t in montage.truth] == [
        ("B", 0.0, 10.0),
        ("A", 10.0, 20.0),
    ]
    np.testing.assert_array_equal(montage.embeddings[10:], part.embeddings)


def test_the_unrelated_cover_holds_only_what_copies_nothing():
    rng = np.random.default_rng(5)
    a = clip(rng, 20, "A")
    a.truth[0].update(query_start=5.0, query_end=12.0)
    b = clip(rng, 6, "B")
    b.truth.clear()
    cover = unrelated([a, b])
    assert cover.truth == [] and cover.duration == 19.0
    kept = np.concatenate([a.embeddings[:5], a.embeddings[12:], b.embeddings])
    np.testing.assert_array_equal(cover.embeddings, kept)


def test_a_never_copied_video_becomes_a_query_that_copies_nothing_and_skips_itself(tmp_path):
    rng = np.random.default_rng(6)
    libs = Libraries(tmp_path, ["lib"], descriptor="sscd_resnet50", dim=EMBEDDING_DIM)
    times = np.arange(12, dtype=np.float32)
    bits = rng.integers(0, 256, (20, 32), dtype=np.uint8)
    sound = AudioPrints(AUDIO_PRINT, np.arange(20, dtype=np.float32) * 0.5, bits)
    libs.writer("lib").add(VideoFingerprints("L1", unit_rows(rng, 12), times, 12.0, sound))
    libs.writer("lib").add(VideoFingerprints("L2", unit_rows(rng, 8), times[:8], 8.0))
    index = libs.index("lib")
    one, two = never_copied_clip(index, "L1"), never_copied_clip(index, "L2")
    assert one.truth == [] and one.own == {"L1"} and one.duration == 12.0
    np.testing.assert_array_equal(one.embeddings, index.video("L1").embeddings)
    views = len(AudioPrintParams().tempos) * HOP
    assert one.audio.shape == (views, 20, 32)
    np.testing.assert_array_equal(one.audio[0], bits)  # every view holds the stored windows
    assert two.audio.shape == (views, 0, 32) and len(two.audio_times) == 0
    # Whatever a composed query is made of, the videos it shows stay out of its candidates.
    montage = join([cut(one, 2.0, 9.0), faster(two, 2.0)])
    assert montage.own == {"L1", "L2"} and montage.truth == []


def test_recall_without_the_query_s_own_video_is_recall_over_a_library_without_it(tmp_path):
    """A never-copied video made into a query must meet the library as if it were not in it:
    the same candidates, in the same order, and the same recurrence per frame."""
    rng = np.random.default_rng(7)
    base = unit_rows(rng, 30)
    videos = {}
    for name in ("own", "near", "other"):
        # Look-alikes: every video is the same 30 pictures, each pushed its own way.
        emb = base + 0.6 * unit_rows(rng, 30)
        emb /= np.linalg.norm(emb, axis=1, keepdims=True)
        bits = rng.integers(0, 256, (20, 32), dtype=np.uint8)
        sound = AudioPrints(AUDIO_PRINT, np.arange(20, dtype=np.float32) * 0.5, bits)
        times = np.arange(30, dtype=np.float32)
        videos[name] = VideoFingerprints(name, emb.astype(np.float32), times, 30.0, sound)
    full = Libraries(tmp_path / "full", ["lib"], descriptor="sscd_resnet50", dim=EMBEDDING_DIM)
    less = Libraries(tmp_path / "less", ["lib"], descriptor="sscd_resnet50", dim=EMBEDDING_DIM)
    for name, video in videos.items():
        full.writer("lib").add(video)
        if name != "own":
            less.writer("lib").add(video)
    clip = never_copied_clip(full.index("lib"), "own")
    views = QueryViews(clip.embeddings)
    hidden = WithoutVideos(full.index("lib"), clip.own)
    got, got_recurrence = recall_recurring(hidden, views, audio=clip.audio)
    want, want_recurrence = recall_recurring(less.index("lib"), views, audio=clip.audio)
    assert [c.video_id for c in got] == [c.video_id for c in want]
    assert {c.video_id for c in got} == {"near", "other"}
    np.testing.assert_array_equal(got_recurrence, want_recurrence)
    assert hidden.video_count() == 2 and hidden.ntotal == 60


def test_sources_sharing_a_picture_know_each_other():
    shot = lambda f: {"file": f, "member": ""}  # noqa: E731
    manifest = {"sources": [
        {"id": "A", "provenance": {"shots": [shot("x.png"), shot("y.png")]}},
        {"id": "B", "provenance": {"shots": [shot("y.png")]}},
        {"id": "C", "provenance": {"shots": [shot("z.png")]}},
        {"id": "D", "provenance": {}},
    ]}  # fmt: skip
    assert shared_shots(manifest) == {"A": {"B"}, "B": {"A"}, "C": set()}
