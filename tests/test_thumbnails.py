"""The reviewer pictures a library keeps per fingerprint: made at preprocess, stored beside
the fingerprints, read back nearest a time, gone with their video, refused when not JPEG."""

from __future__ import annotations

import dataclasses
import io

import numpy as np
import pytest
from PIL import Image

from rci.errors import NotFoundError, RciError
from rci.library.store import VideoFingerprints, thumbnails_file
from rci.preprocess.thumbnails import SIDE, encode_thumbnails
from rci.serving.libraries import Libraries, LibrarySettings
from tests.test_library import DIM, video


def pictured(video_id: str, n: int, seed: int) -> VideoFingerprints:
    """video() with one real JPEG per fingerprint, each a flat grey of its index x 20."""
    frames = np.stack([np.full((224, 224, 3), 20 * k, np.uint8) for k in range(n)])
    return dataclasses.replace(video(video_id, n, seed), thumbnails=encode_thumbnails(frames))


def grey(jpeg: bytes) -> float:
    return float(np.asarray(Image.open(io.BytesIO(jpeg))).mean())


def libs(tmp_path, **settings) -> Libraries:
    return Libraries(tmp_path, {"lib": LibrarySettings(**settings)}, descriptor="t", dim=DIM)


def test_pictures_are_small_jpegs_of_the_frames():
    frames = np.random.default_rng(0).integers(0, 255, (3, 224, 224, 3), dtype=np.uint8)
    pictures = encode_thumbnails(frames)
    assert len(pictures) == 3
    for jpeg in pictures:
        assert jpeg[:3] == b"\xff\xd8\xff" and len(jpeg) < 12_000  # noise: the worst case
        assert Image.open(io.BytesIO(jpeg)).size == (SIDE, SIDE)


def test_stored_pictures_read_back_nearest_each_time(tmp_path):
    library = libs(tmp_path)
    library.add("lib", pictured("a", 5, 0))  # fingerprints at 0, 1, 2, 3, 4 s
    times, pictures = library.thumbnails("lib", "a", np.array([0.2, 2.6, 9.0], np.float32))
    assert times.tolist() == [0.0, 3.0, 4.0]
    assert [round(grey(p) / 20) for p in pictures] == [0, 3, 4]
    with pytest.raises(NotFoundError):
        library.thumbnails("lib", "nobody", np.zeros(1, np.float32))


def test_delete_and_replace_take_the_pictures_with_them(tmp_path):
    library = libs(tmp_path)
    library.add("lib", pictured("a", 3, 0))
    record = library.folder("lib").live_records.catch_up().videos["a"]
    first = library.folder("lib").path / thumbnails_file(record["file"])
    assert first.exists()
    library.add("lib", pictured("a", 4, 1), replace=True)
    assert not first.exists()
    times, _ = library.thumbnails("lib", "a", np.array([3.0], np.float32))
    assert times.tolist() == [3.0]  # the new video's pictures
    record = library.folder("lib").live_records.catch_up().videos["a"]
    second = library.folder("lib").path / thumbnails_file(record["file"])
    library.writer("lib").delete("a")
    assert not second.exists()


def test_a_library_can_keep_no_pictures_and_thinning_keeps_them_in_step(tmp_path):
    off = libs(tmp_path / "off", thumbnails=False)
    off.add("lib", pictured("a", 3, 0))
    assert off.thumbnails("lib", "a", np.zeros(1, np.float32))[1] == []
    thinned = libs(tmp_path / "thin", fingerprint_interval=2.0)
    thinned.add("lib", pictured("a", 5, 0))  # keeps 0, 2, 4 s
    times, pictures = thinned.thumbnails("lib", "a", np.array([0.0, 2.0, 4.0], np.float32))
    assert times.tolist() == [0.0, 2.0, 4.0]
    assert [round(grey(p) / 20) for p in pictures] == [0, 2, 4]
    plain = libs(tmp_path / "plain")
    plain.add("lib", video("b", 2, 0))  # stored without pictures
    assert plain.thumbnails("lib", "b", np.zeros(1, np.float32))[1] == []


@pytest.mark.parametrize(
    "pictures, expected",
    [
        (lambda good: good[:-1], "one picture per fingerprint"),
        (lambda good: [b"GIF89a" + b"\0" * 10] + good[1:], "must be a JPEG"),
        (lambda good: [good[0] + b"\0" * 40_000] + good[1:], "must be a JPEG of at most"),
    ],
)
def test_what_is_not_a_small_jpeg_per_fingerprint_is_refused(tmp_path, pictures, expected):
    library = libs(tmp_path)
    good = pictured("a", 3, 0)
    with pytest.raises(RciError, match=expected):
        library.add("lib", dataclasses.replace(good, thumbnails=pictures(good.thumbnails)))
    assert library.status(["lib"])[0]["videos"] == 0
