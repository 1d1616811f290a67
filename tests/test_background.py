"""The background set for score normalization and the penalty it gives each query frame."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from rci.describe.descriptor import DEFAULT_MODEL
from rci.library import background as B
from rci.match.normalize import Background, HubParams
from rci.match.views import QueryViews


def test_background_pictures_are_the_same_on_every_build():
    first = list(itertools.islice(B.background_frames(), 30))
    again = list(itertools.islice(B.background_frames(), 30))
    assert all(np.array_equal(a, b) for a, b in zip(first, again, strict=True))
    assert all(f.shape == (B.SIZE, B.SIZE, 3) and f.dtype == np.uint8 for f in first)
    count = sum(1 for _ in B.background_frames())
    assert count == len(B.wallpaper_paths()) * B.VIEWS_PER_WALLPAPER + 5 * B.DRAWN_PER_KIND
    assert len(B.wallpaper_paths()) >= 10  # gnome-backgrounds' raster wallpapers


def test_data_directory_keeps_its_own_copy(tmp_path):
    x = B.ensure_background(tmp_path, DEFAULT_MODEL)  # built once per machine, then cached
    path = B.background_path(tmp_path, DEFAULT_MODEL)
    assert path.parent == tmp_path and path.name == "background.sscd_resnet50.npy"
    assert x.shape == (count_frames(), 512) and x.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(x, axis=1), 1.0, atol=1e-3)
    # Low-information pictures sit near one another: each has a neighbour above 0.5.
    S = x @ x.T
    np.fill_diagonal(S, -1)
    assert np.median(S.max(axis=1)) > 0.5
    np.save(path, np.zeros((3, 7), np.float32))  # a damaged copy is refused, not used
    with pytest.raises(ValueError, match="expected"):
        B.ensure_background(tmp_path, DEFAULT_MODEL)


def count_frames() -> int:
    return len(B.wallpaper_paths()) * B.VIEWS_PER_WALLPAPER + 5 * B.DRAWN_PER_KIND


def test_penalty_is_beta_times_the_excess_over_the_floor():
    eye = np.eye(4, dtype=np.float32)
    background = Background(eye[:2], HubParams(k=1, floor=0.5, beta=2.0))
    c = np.sqrt(0.5, dtype=np.float32)
    rows = np.array([eye[0], [c, 0, c, 0], [0, 0.3, np.sqrt(0.91), 0], eye[3]], np.float32)
    # Nearest background similarities: 1, 0.707, 0.3, 0 -> penalties 2 * (1 - 0.5) = 1,
    # 2 * 0.207 = 0.414, and 0 for the two under the floor.
    np.testing.assert_allclose(background.penalty(rows), [1.0, 2 * (c - 0.5), 0, 0], atol=1e-6)
    views = background.normalized(QueryViews(rows, rows[::-1].copy()))
    assert views.penalty.shape == (2, 4)
    np.testing.assert_allclose(views.penalty[1], background.penalty(rows[::-1]), atol=1e-6)
    # k = 2 averages the two nearest: row 0 -> (1 + 0) / 2 = 0.5, at the floor: no penalty.
    two = Background(eye[:2], HubParams(k=2, floor=0.5, beta=2.0))
    assert two.penalty(rows[:1])[0] == pytest.approx(0.0)
    with pytest.raises(ValueError):
        HubParams(k=0)
