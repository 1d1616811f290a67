"""Every bad input gets a clear per-request error; the server stays up, the library unchanged."""

import numpy as np
import pytest

from rci_client import RciClient, RciClientError
from tests.media_factory import audio_only, encode
from tests.triton_calls import raw


@pytest.fixture(scope="module")
def bad(tmp_path_factory, media):
    """name -> bytes of each kind of bad or borderline video."""
    folder = tmp_path_factory.mktemp("bad")
    good = media["library"]["photos-science"].read_bytes()  # moov atom at the end
    rng = np.random.default_rng(7)
    mdat = good.find(b"mdat")
    corrupt = bytearray(good)
    corrupt[mdat + 1000 : mdat + 200_000] = rng.integers(0, 256, 199_000, dtype=np.uint8).tobytes()
    faststart = encode(folder / "faststart.mp4", 250, faststart=True)  # 10 s, index first
    return {
        "empty": b"",
        "random": rng.integers(0, 256, 50_000, dtype=np.uint8).tobytes(),
        "text": b"this is not a video\n" * 100,
        "truncated": good[: len(good) // 2],
        "truncated_faststart": faststart[: len(faststart) // 3],
        "corrupt": bytes(corrupt),
        "audio_only": audio_only(folder / "audio.m4a"),
        # 2000 s at 1 fps, tiny: over the 1800 s maximum, refused before decoding.
        "too_long": encode(folder / "long.mp4", 2000, fps=1, size=(32, 32)),
    }


EXPECTED = {
    "empty": "empty input",
    "random": "not a decodable media container",
    "text": "not a decodable media container",
    "truncated": "not a decodable media container",
    "truncated_faststart": "truncated video",
    "corrupt": "corrupt video",
    "audio_only": "no video stream",
    "too_long": "the maximum is 1800 s",
}


@pytest.mark.parametrize("kind", sorted(EXPECTED))
def test_bad_video_gets_a_clear_error(client, bad, kind):
    before = client.status()
    with pytest.raises(RciClientError, match=EXPECTED[kind]):
        client.ingest(bad[kind], f"bad-{kind}")
    with pytest.raises(RciClientError, match=EXPECTED[kind]):
        client.detect(bad[kind])
    assert client.ready()
    assert client.status() == before


def test_video_without_audio_is_served(client, media):
    # The library's photo videos carry no audio track.
    result = client.detect(media["library"]["photos-science"])
    assert result.reproduced[0].video_id == "photos-science"


def test_one_frame_video(client, tmp_path):
    data = encode(tmp_path / "one.mp4", 1)
    result = client.ingest(data, f"one-frame-{client.protocol}", library="second")
    assert result.num_fingerprints == 1
    detected = {m.video_id: m for m in client.detect(data, library="second").reproduced}
    assert detected[f"one-frame-{client.protocol}"].segments[0].ref_start == 0.0


def test_unknown_library(client, media):
    with pytest.raises(RciClientError, match="unknown library 'nope'"):
        client.detect(media["unrelated"], library="nope")
    with pytest.raises(RciClientError, match="unknown library 'nope'"):
        client.ingest(media["unrelated"], "x", library="nope")
    with pytest.raises(RciClientError, match="unknown library 'nope'"):
        client.status(["nope"])


@pytest.mark.parametrize("video_id", ["", "a\nb", "x" * 257])
def test_invalid_video_id(client, media, video_id):
    with pytest.raises(RciClientError, match="video id must be"):
        client.ingest(media["library"]["bikes"], video_id, library="second")


def _raw_infer(server, protocol, inputs):
    """Send hand-built tensors to rci_detect; returns the server's error message."""
    result, error = raw(server, protocol, "rci_detect", inputs)
    assert result is None, "the request was served"
    return error


LIBRARY = ("LIBRARY", np.array([b"main"], dtype=object), "BYTES")


@pytest.mark.parametrize("protocol", ["http", "grpc"])
def test_wrong_tensor_type(server, protocol):
    video = ("VIDEO_BYTES", np.zeros(16, dtype=np.float32), "FP32")
    assert "data-type" in _raw_infer(server, protocol, [video, LIBRARY])


@pytest.mark.parametrize("protocol", ["http", "grpc"])
def test_wrong_tensor_shape(server, protocol):
    video = ("VIDEO_BYTES", np.zeros((2, 8), dtype=np.uint8), "UINT8")
    assert "shape" in _raw_infer(server, protocol, [video, LIBRARY])


@pytest.mark.parametrize("protocol", ["http", "grpc"])
def test_library_lists_that_name_no_library_or_one_twice(server, protocol, media):
    # Several names are searched together; an empty list or a repeated name is refused.
    data = np.frombuffer(media["query"].read_bytes(), dtype=np.uint8)
    video = ("VIDEO_BYTES", data, "UINT8")
    twice = ("LIBRARY", np.array([b"main", b"main"], dtype=object), "BYTES")
    assert "distinct" in _raw_infer(server, protocol, [video, twice])
    none = ("LIBRARY", np.zeros(0, dtype=object), "BYTES")
    assert "one or more" in _raw_infer(server, protocol, [video, none])
    unknown = ("LIBRARY", np.array([b"main", b"nope"], dtype=object), "BYTES")
    assert "unknown library 'nope'" in _raw_infer(server, protocol, [video, unknown])


@pytest.mark.parametrize("protocol", ["http", "grpc"])
def test_missing_input(server, protocol):
    assert "LIBRARY" in _raw_infer(
        server, protocol, [("VIDEO_BYTES", np.zeros(8, dtype=np.uint8), "UINT8")]
    )


def test_server_survives_all_of_it(server):
    with RciClient(server.http_url) as client:
        assert client.ready()
