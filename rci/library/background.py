"""A background set for score normalization: descriptors of pictures no library copies.

Low-information frames (flat colour, gradients, dark or washed-out scenes, smooth texture)
have descriptors that sit near one another, so any two such videos look alike: they are the
hubs of the descriptor space. A query frame's similarity to its nearest background frames
measures how hub-like it is (VSC22's score normalization, from CSLS); matching subtracts
the excess over a typical frame's.

The background is made of gnome-backgrounds' wallpapers (Debian; abstract and photographic,
in crops, zooms and darkened or washed-out versions) and drawn low-information frames
(flat colours, linear and radial gradients, smooth low-contrast noise, near-black frames
with grain), all at the descriptor's input size. Nothing in it comes from the benchmark's
packages.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from PIL import Image

from rci.describe.descriptor import EMBEDDING_DIM, Descriptor, DescriptorModel

WALLPAPERS = ("gnome-backgrounds", Path("/usr/share/backgrounds/gnome"))
SIZE = 224  # pixels: the descriptor's input
VIEWS_PER_WALLPAPER = 24
DRAWN_PER_KIND = 96
SEED = 0
VERSION = 1  # of the pictures above: a cached background of another version is not used


def wallpaper_paths() -> list[Path]:
    """The package's raster wallpapers, in a fixed order (its SVGs need a renderer)."""
    package, folder = WALLPAPERS
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder} missing: apt-get install {package}")
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in (".webp", ".jpg", ".png"))


def _views(image: Image.Image, rng: np.random.Generator) -> Iterator[np.ndarray]:
    """Crops of 16:9 shape at zooms 1-3x, some darkened or washed out, as (SIZE, SIZE, 3)."""
    image = image.convert("RGB")
    w, h = image.size
    for n in range(VIEWS_PER_WALLPAPER):
        zoom = rng.uniform(1.0, 3.0)
        cw = min(w, h * 16 / 9) / zoom
        ch = cw * 9 / 16
        x, y = rng.uniform(0, w - cw), rng.uniform(0, h - ch)
        crop = image.resize((SIZE, SIZE), Image.Resampling.BICUBIC, box=(x, y, x + cw, y + ch))
        pixels = np.asarray(crop, np.float32)
        if n % 4 == 1:
            pixels *= rng.uniform(0.1, 0.3)  # a dark scene
        elif n % 4 == 2:
            pixels = 255 - (255 - pixels) * rng.uniform(0.2, 0.4)  # washed out
        yield pixels.clip(0, 255).astype(np.uint8)


def _drawn(rng: np.random.Generator) -> Iterator[np.ndarray]:
    """Low-information frames, DRAWN_PER_KIND of each kind, as (SIZE, SIZE, 3) uint8."""
    yy, xx = np.mgrid[0:SIZE, 0:SIZE] / SIZE
    for _ in range(DRAWN_PER_KIND):  # flat colour
        yield np.broadcast_to(rng.uniform(0, 255, 3), (SIZE, SIZE, 3)).astype(np.uint8)
    for _ in range(DRAWN_PER_KIND):  # linear gradient, two or three stops
        angle = rng.uniform(0, 2 * np.pi)
        t = np.clip((xx - 0.5) * np.cos(angle) + (yy - 0.5) * np.sin(angle) + 0.5, 0, 1)
        stops = rng.uniform(0, 255, (int(rng.integers(2, 4)), 3))
        at = np.linspace(0, 1, len(stops))
        yield np.stack([np.interp(t, at, stops[:, c]) for c in range(3)], -1).astype(np.uint8)
    for _ in range(DRAWN_PER_KIND):  # radial gradient (vignette, spotlight)
        cx, cy = rng.uniform(0, 1, 2)
        r = np.clip(np.hypot(xx - cx, yy - cy) / rng.uniform(0.5, 1.2), 0, 1)[..., None]
        inner, outer = rng.uniform(0, 255, (2, 3))
        yield (inner + (outer - inner) * r).astype(np.uint8)
    for _ in range(DRAWN_PER_KIND):  # smooth low-contrast texture over a colour
        field = rng.uniform(0, 255, (int(rng.integers(3, 9)),) * 2 + (3,)).astype(np.uint8)
        smooth = np.asarray(Image.fromarray(field).resize((SIZE, SIZE), Image.Resampling.BICUBIC))
        base = rng.uniform(0, 255, 3)
        yield (base + (smooth - 128.0) * rng.uniform(0.1, 0.4)).clip(0, 255).astype(np.uint8)
    for _ in range(DRAWN_PER_KIND):  # near black with grain
        level = rng.uniform(0, 30, 3)
        yield (level + rng.normal(0, 3, (SIZE, SIZE, 3))).clip(0, 255).astype(np.uint8)


def background_frames() -> Iterator[np.ndarray]:
    """Every background picture, (SIZE, SIZE, 3) uint8, the same ones on every machine."""
    rng = np.random.default_rng(SEED)
    for path in wallpaper_paths():
        with Image.open(path) as image:
            yield from _views(image, rng)
    yield from _drawn(rng)


def build_background(model: DescriptorModel, batch: int = 64) -> np.ndarray:
    """(N, 512) float32 unit descriptors of background_frames() under `model`."""
    descriptor = Descriptor(model)
    frames, parts = [], []
    for frame in background_frames():
        frames.append(frame)
        if len(frames) == batch:
            parts.append(descriptor.embed(np.stack(frames)))
            frames = []
    if frames:
        parts.append(descriptor.embed(np.stack(frames)))
    return np.concatenate(parts)


def write_background(path: Path, model: DescriptorModel) -> np.ndarray:
    """Build the background for `model` and store it at `path` (.npy) with a .json beside
    saying what it holds; returns the descriptors."""
    embeddings = build_background(model)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.npy")  # two builders never share one
    np.save(tmp, embeddings, allow_pickle=False)
    tmp.replace(path)
    about = {
        "descriptor": model.value,
        "frames": len(embeddings),
        "wallpapers": [str(p) for p in wallpaper_paths()],
        "package": WALLPAPERS[0],
        "views_per_wallpaper": VIEWS_PER_WALLPAPER,
        "drawn_per_kind": DRAWN_PER_KIND,
        "seed": SEED,
        "version": VERSION,
    }
    path.with_suffix(".json").write_text(json.dumps(about, indent=1))
    return embeddings


def read_background(path: Path, dim: int) -> np.ndarray:
    """(N, dim) float32 background descriptors from `path`; ValueError if malformed."""
    x = np.load(path, allow_pickle=False)
    if x.ndim != 2 or x.shape[1] != dim or x.dtype != np.float32 or not len(x):
        raise ValueError(f"{path}: expected (N, {dim}) float32, got {x.dtype} {list(x.shape)}")
    return x


def background_path(data_dir: Path, model: DescriptorModel) -> Path:
    """Where a server's background for `model` lives: beside its libraries, one per
    descriptor (every library of a server shares its descriptor); a file, and its name has
    a dot, so it can never be taken for a library's folder."""
    return Path(data_dir) / f"background.{model.value}.npy"


def cache_dir() -> Path:
    """$RCI_CACHE_DIR, default ~/.cache/rci: backgrounds built on this machine."""
    return Path(os.environ.get("RCI_CACHE_DIR", Path.home() / ".cache" / "rci"))


def ensure_background(data_dir: Path, model: DescriptorModel) -> np.ndarray:
    """The data directory's background for `model`; made when missing, from this machine's
    cache or else built (under a minute on two cores) and cached. A data directory keeps
    its copy, so its scores do not move when the packages it was made from change."""
    path = background_path(data_dir, model)
    if not path.exists():
        cached = cache_dir() / f"background-v{VERSION}-{model.value}.npy"
        if not cached.exists():
            write_background(cached, model)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}")
        shutil.copyfile(cached, tmp)
        shutil.copyfile(cached.with_suffix(".json"), path.with_suffix(".json"))
        tmp.replace(path)
    return read_background(path, EMBEDDING_DIM)
