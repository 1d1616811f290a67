"""What MatchLite reads of a pair (rci.match.pair_input): maps on a time grid, side numbers."""

import numpy as np
import pytest

from rci.match.alignment import Segment
from rci.match.pair_input import (
    CHANNELS,
    MAX_SIDE,
    SIDE_FEATURES,
    grid_cells,
    match_inputs,
    pack_inputs,
    pair_grid,
    path_map,
)
from rci.match.verdict import Match, QueryAudio, match
from rci.preprocess.audio_prints import AudioPrints


def unit_rows(rng, n, d=512):
    x = rng.standard_normal((n, d)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_grid_cells_keep_short_videos_whole_and_bin_long_ones():
    assert grid_cells(5).tolist() == [0, 1, 2, 3, 4]
    # 300 frames in at most 128 cells: ceil(300 / 128) = 3 frames a cell, 100 cells.
    cells = grid_cells(300)
    assert cells.max() + 1 == 100 and np.bincount(cells).tolist() == [3] * 100


def test_visual_map_is_the_best_similarity_of_each_cell():
    S = np.zeros((260, 4), np.float32)
    S[7, 2] = 0.9  # rows 0-2 are cell 0 (ceil(260 / 128) = 3 a cell); row 7 is cell 2
    grid = pair_grid(S, np.arange(260, dtype=np.float32), np.arange(4, dtype=np.float32) * 2)
    assert grid.maps.shape == (2, 87, 4)  # ceil(260 / 3) = 87 cells
    assert grid.maps[0, 2, 2] == pytest.approx(0.9)
    assert grid.maps[0].sum() == pytest.approx(0.9)
    assert grid.row_times[2].tolist() == [6.0, 8.0]  # frames 6-8
    # Durations from the frame times: the last time plus one period.
    assert (grid.query_seconds, grid.ref_seconds) == (260.0, 8.0)
    assert not grid.query_sound and not grid.maps[1].any()  # no sound: a zero channel


def test_audio_map_reads_the_windows_nearest_each_cell():
    rng = np.random.default_rng(0)
    ref = rng.integers(0, 256, (10, 32), dtype=np.uint8)
    # The query's one view plays reference windows 0-9 in order; window 4 inverted.
    views = ref[None].copy()
    views[0, 4] = ~ref[4]
    times = np.arange(10, dtype=np.float32)
    S = np.zeros((10, 10), np.float32)
    grid = pair_grid(S, times, times, views, times, ref, times)
    audio = grid.maps[1]
    # Identical bits: 1 - 2 x 0 / 256 = 1; inverted: 1 - 2 x 256 / 256 = -1.
    assert audio[3, 3] == pytest.approx(1.0) and audio[4, 4] == pytest.approx(-1.0)
    assert grid.query_sound and grid.ref_sound
    silent = pair_grid(S, times, times, views[:, :0], times[:0], ref, times)
    assert not silent.query_sound and not silent.maps[1].any()


def test_path_map_marks_each_segment_diagonal():
    times = np.arange(10, dtype=np.float32)
    grid = pair_grid(np.zeros((10, 10), np.float32), times, times)
    # Query 2-6 s shows reference 4-8 s: cells (2, 4), (3, 5), (4, 6), (5, 7).
    path = path_map(grid, [Segment(2.0, 6.0, 4.0, 8.0, 0.9, 4)])
    assert list(zip(*np.nonzero(path), strict=True)) == [(2, 4), (3, 5), (4, 6), (5, 7)]


def test_match_keeps_its_grid_and_its_input_describes_the_copy():
    rng = np.random.default_rng(1)
    ref = unit_rows(rng, 20)
    query = np.concatenate([unit_rows(rng, 5), ref[5:15], unit_rows(rng, 5)])  # 10 s copied
    qt, rt = np.arange(20, dtype=np.float32), np.arange(20, dtype=np.float32)
    found = match("v", query, qt, ref, rt)
    assert found.reproduced and found.grid is not None
    (pair,) = match_inputs([found], qt, np.ones(20, np.int32))
    side = dict(zip(SIDE_FEATURES, pair.side.tolist(), strict=True))
    assert pair.maps.shape == (len(CHANNELS), 20, 20)
    assert side["score"] == pytest.approx(found.score)
    assert side["query_covered"] == pytest.approx(0.5, abs=0.06)  # 10 of 20 s
    assert side["segments"] == pytest.approx(1 / 8)
    assert side["recurring"] == pytest.approx(0.1)  # recurrence 1, over 10
    assert side["query_sound"] == 0.0
    assert pair.maps[2].sum() >= 9  # the path along the copied diagonal


def test_a_pair_without_frames_or_segments_gets_a_defined_input():
    rng = np.random.default_rng(2)
    empty = Match("none", 0.0, False, [])  # no grid: a candidate without frames
    one = match("one", unit_rows(rng, 1), np.zeros(1, np.float32), unit_rows(rng, 3),
                np.arange(3, dtype=np.float32))  # fmt: skip
    inputs = match_inputs([empty, one], np.zeros(1, np.float32))
    assert inputs[0].maps.shape == (len(CHANNELS), 1, 1) and not inputs[0].maps.any()
    assert inputs[1].maps.shape == (len(CHANNELS), 1, 3)
    assert inputs[1].side[SIDE_FEATURES.index("segments")] == 0.0
    packed = pack_inputs(inputs)
    assert packed["PAIR_MAPS"].shape == (2, len(CHANNELS), 1, 3)
    # Each pair's own cells: 1 x 1 for the first, 1 x 3 for the second.
    assert packed["PAIR_MASK"].sum(axis=(1, 2, 3)).tolist() == [1.0, 3.0]
    assert packed["PAIR_SIDE"].shape == (2, len(SIDE_FEATURES))


def test_audio_of_the_pair_reaches_its_grid():
    rng = np.random.default_rng(3)
    ref = unit_rows(rng, 10)
    bits = rng.integers(0, 256, (30, 32), dtype=np.uint8)
    times = np.arange(30, dtype=np.float32) / 3
    audio = QueryAudio(bits[None], times)
    found = match("v", ref, np.arange(10, dtype=np.float32), ref,
                  np.arange(10, dtype=np.float32), audio=audio,
                  ref_audio=AudioPrints("chromaprint", times, bits))  # fmt: skip
    assert found.grid.ref_sound and found.grid.maps[1].max() == pytest.approx(1.0)


def test_long_videos_fit_the_grid():
    rng = np.random.default_rng(4)
    ref, query = unit_rows(rng, 400), unit_rows(rng, 1000)
    found = match("v", query, np.arange(1000, dtype=np.float32), ref,
                  np.arange(400, dtype=np.float32) * 2)  # fmt: skip
    assert max(found.grid.maps.shape[1:]) <= MAX_SIDE
