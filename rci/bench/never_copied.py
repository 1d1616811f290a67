"""Never-copied library videos: what fills a real library besides the videos that get copied.

A real library holds millions of videos no upload copies, many with little information in
them. These are ingested and never copied, so every match with one is a false positive:
- low information: drifting gradients, near-uniform skies, dark scenes, title cards,
  slideshows with cross-fades, still images;
- groups that share one channel template (the same frame around different pictures) or
  one 2 s channel bumper before different pictures.

Pictures come from gcompris-qt-data's smaller photographs (shorter side 360-699 pixels),
which no benchmark source uses: `pool_photos` leaves out every photo whose name a source's
photo has (the same picture at another resolution), so a match with one of these videos is
never a true copy of a source.
"""

from __future__ import annotations

import enum
import io
import itertools
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from rci.bench.rcc import iter_files
from rci.bench.samples import FPS, SIZE, pan_zoom
from rci.bench.sources import GCOMPRIS_RCC, MIN_PHOTO_SIDE, Photo, distinct_pictures

W, H = SIZE
MIN_POOL_SIDE = SIZE[1]  # pixels: a pool photo still fills the frame's height
BUMPER_SECONDS = 2.0


class LibraryKind(enum.Enum):
    GRADIENT = "gradient"
    SKY = "sky"
    DARK = "dark"
    TITLE_CARD = "title_card"
    SLIDESHOW = "slideshow"
    STILL = "still"
    TEMPLATE_GROUP = "template_group"  # one channel template around different pictures
    BUMPER_GROUP = "bumper_group"  # one 2 s channel bumper before different pictures


@dataclass(frozen=True)
class LibraryPlan:
    """How many never-copied videos of each kind a build adds; seconds per video."""

    per_kind: int  # videos of each ungrouped kind
    groups: int  # template groups, and as many bumper groups
    group_size: int  # videos per group
    min_seconds: float
    max_seconds: float

    @property
    def count(self) -> int:
        return 6 * self.per_kind + 2 * self.groups * self.group_size


def pool_photos(taken: list[Photo]) -> list[Photo]:
    """gcompris-qt-data photographs too small for sources (shorter side MIN_POOL_SIDE to
    MIN_PHOTO_SIDE - 1), one per name and picture, none sharing a name or a picture (in
    other colours) with a photo in `taken`."""

    def key(name: str) -> str:
        return Path(name).stem.split("_")[0].lower()

    used = {key(p.member or p.file) for p in taken}
    pool, seen = [], set()
    for rcc in sorted(GCOMPRIS_RCC.glob("*.rcc")):
        for name, data in iter_files(rcc):
            if not name.lower().endswith((".jpg", ".jpeg", ".png", ".webp")):
                continue
            if key(name) in used or key(name) in seen:
                continue
            image = Image.open(io.BytesIO(data))
            if MIN_POOL_SIDE <= min(image.size) < MIN_PHOTO_SIDE:
                seen.add(key(name))
                pool.append(Photo("gcompris-qt-data", str(rcc), name, *image.size))
    return distinct_pictures(pool, taken)


def _frames(seconds: float) -> int:
    return int(round(seconds * FPS))


def _cover(image: Image.Image) -> np.ndarray:
    """The picture scaled to cover SIZE and centre-cropped: (H, W, 3) uint8."""
    scale = max(W / image.size[0], H / image.size[1])
    size = (max(W, round(image.size[0] * scale)), max(H, round(image.size[1] * scale)))
    image = image.convert("RGB").resize(size, Image.Resampling.LANCZOS)
    x, y = (size[0] - W) // 2, (size[1] - H) // 2
    return np.asarray(image.crop((x, y, x + W, y + H)))


def gradient(rng: np.random.Generator, seconds: float) -> Iterator[np.ndarray]:
    """A two-colour linear gradient whose angle and colours drift slowly."""
    colours = rng.uniform(0, 255, (4, 3))
    a0, a1 = rng.uniform(0, 2 * np.pi), rng.uniform(-0.5, 0.5)
    yy, xx = np.mgrid[0:H, 0:W] / max(W, H)
    n = _frames(seconds)
    for f in range(n):
        t = f / max(1, n - 1)
        angle = a0 + a1 * t
        ramp = (xx - 0.5) * np.cos(angle) + (yy - 0.3) * np.sin(angle) + 0.5
        ramp = np.clip(ramp, 0, 1)[..., None]
        c0 = (1 - t) * colours[0] + t * colours[2]
        c1 = (1 - t) * colours[1] + t * colours[3]
        yield (c0 + (c1 - c0) * ramp).astype(np.uint8)


def sky(rng: np.random.Generator, seconds: float) -> Iterator[np.ndarray]:
    """A near-uniform sky: blue to pale towards the horizon, faint clouds drifting across."""
    top = np.array([rng.uniform(30, 90), rng.uniform(90, 150), rng.uniform(180, 240)])
    low = np.array([rng.uniform(170, 220), rng.uniform(200, 235), rng.uniform(230, 255)])
    shade = np.linspace(0, 1, H)[:, None, None] ** rng.uniform(0.7, 1.5)
    base = top + (low - top) * shade
    field = Image.fromarray((rng.uniform(0, 255, (6, 24))).astype(np.uint8))
    clouds = np.asarray(field.resize((4 * W, H), Image.Resampling.BICUBIC), np.float32) / 255
    clouds = np.clip((clouds - 0.5) * 2, 0, 1)[..., None] * rng.uniform(0.15, 0.4)
    drift = rng.uniform(4, 12)  # pixels per second
    n = _frames(seconds)
    for f in range(n):
        x = int(f * drift / FPS)
        cover = clouds[:, x : x + W]
        yield (base * (1 - cover) + 250 * cover).astype(np.uint8)


def dark(photo: Photo, rng: np.random.Generator, seconds: float) -> Iterator[np.ndarray]:
    """A slow pan over a photograph at a tenth to a quarter of its brightness, with grain."""
    gain = rng.uniform(0.1, 0.25)
    seed = int(rng.integers(1 << 31))
    for frame in pan_zoom(photo.load(), seconds, seed=seed):
        grain = rng.normal(0, 2.0, frame.shape)
        yield np.clip(frame * gain + grain, 0, 255).astype(np.uint8)


WORDS = (
    "episode", "chapter", "news", "daily", "weekly", "recap", "highlights", "live", "part",
    "season", "tutorial", "review", "story", "morning", "evening", "update", "special",
    "music", "travel", "cooking", "garden", "science", "history", "sports", "weather",
)  # fmt: skip


def title_card(rng: np.random.Generator, seconds: float) -> Iterator[np.ndarray]:
    """Text on a plain background: a new title every 3-5 s, through a fade to black."""
    background = rng.uniform(0, 255, 3) * rng.choice([0.15, 1.0])
    ink = (255, 255, 255) if background.mean() < 128 else (10, 10, 10)
    n, cards, at = _frames(seconds), [], 0
    while at < n:
        hold = _frames(rng.uniform(3, 5))
        canvas = Image.new("RGB", SIZE, tuple(int(c) for c in background))
        draw = ImageDraw.Draw(canvas)
        size = int(rng.integers(28, 46))
        font = ImageFont.load_default(size=size)
        for line in range(int(rng.integers(1, 4))):
            words = " ".join(rng.choice(WORDS, size=int(rng.integers(1, 4)))).upper()
            text = f"{words} {int(rng.integers(1, 99))}" if line == 0 else words
            width = draw.textlength(text, font=font)
            draw.text(((W - width) / 2, H / 3 + line * 1.4 * size), text, fill=ink, font=font)
        cards.append((at, min(n, at + hold), np.asarray(canvas, np.float32)))
        at += hold
    fade = _frames(0.4)
    for start, end, card in cards:
        for f in range(start, end):
            edge = min(f - start, end - 1 - f)
            yield (card * min(1.0, (edge + 1) / fade)).astype(np.uint8)


def slideshow(photos: list[Photo], seconds: float) -> Iterator[np.ndarray]:
    """Still photographs, each held, joined by 1 s cross-fades."""
    stills = [_cover(p.load()).astype(np.float32) for p in photos]
    n, fade = _frames(seconds), _frames(1.0)
    per = n / len(stills)
    for f in range(n):
        k = min(len(stills) - 1, int(f / per))
        into = f - (k + 1) * per + fade  # frames into the fade towards the next photo
        if k + 1 < len(stills) and into > 0:
            a = into / fade
            yield ((1 - a) * stills[k] + a * stills[k + 1]).astype(np.uint8)
        else:
            yield stills[k].astype(np.uint8)


def still(photo: Photo, seconds: float) -> Iterator[np.ndarray]:
    """One photograph, unmoving, for the whole video."""
    frame = _cover(photo.load())
    for _ in range(_frames(seconds)):
        yield frame


def bumper(group_seed: int) -> list[np.ndarray]:
    """A channel's 2 s intro, the same pixels for every video of the group: its name and a
    ring growing over its colour, then a sweep."""
    rng = np.random.default_rng(group_seed)
    colour = tuple(int(c) for c in rng.uniform(0, 255, 3))
    accent = tuple(int(c) for c in rng.uniform(0, 255, 3))
    name = f"{rng.choice(WORDS).upper()} {rng.choice(WORDS).upper()} TV"
    font = ImageFont.load_default(size=40)
    n = _frames(BUMPER_SECONDS)
    frames = []
    for f in range(n):
        t = f / max(1, n - 1)
        canvas = Image.new("RGB", SIZE, colour)
        draw = ImageDraw.Draw(canvas)
        r = 20 + 90 * min(1.0, 1.6 * t)
        ring = [W / 2 - r, H / 2 - r - 40, W / 2 + r, H / 2 + r - 40]
        draw.ellipse(ring, outline=accent, width=10)
        width = draw.textlength(name, font=font)
        draw.text(((W - width) / 2, H / 2 + 80), name, fill=(255, 255, 255), font=font)
        sweep = int(W * t)
        draw.rectangle([sweep - 30, 0, sweep, H], fill=accent)
        frames.append(np.asarray(canvas))
    return frames


def jingle(group_seed: int, seconds: float = BUMPER_SECONDS, rate: int = 16000) -> np.ndarray:
    """The bumper's sound, the same for the whole group: three rising tones. (N,) float32."""
    rng = np.random.default_rng(group_seed + 1)
    t = np.arange(int(seconds * rate)) / rate
    notes = rng.uniform(300, 900, 3)
    pitch = notes[np.minimum((t / seconds * 3).astype(int), 2)]
    return (0.3 * np.sin(2 * np.pi * pitch * t) * np.exp(-((t * 3) % 1) * 2)).astype(np.float32)


@dataclass
class LibrarySpec:
    """One never-copied library video: its kind, pictures, length and audio."""

    source_id: str
    kind: LibraryKind
    seconds: float
    seed: int
    photos: list[Photo] = field(default_factory=list)
    group: str = ""  # template or bumper group, for grouped kinds
    audio: dict = field(default_factory=dict)  # as SourceSpec.audio

    @property
    def duration(self) -> float:
        return self.seconds

    def provenance(self) -> dict:
        share = self.seconds / max(1, len(self.photos))
        shots = [{**asdict(p), "seconds": round(share, 2)} for p in self.photos]
        return {"shots": shots, "audio": self.audio, "drawn": self.kind.value}

    def frames(self) -> Iterator[np.ndarray]:
        """(H, W, 3) uint8 frames at SIZE and FPS (a bumper group's bumper first)."""
        rng = np.random.default_rng(self.seed)
        kind, seconds = self.kind, self.seconds
        if kind is LibraryKind.GRADIENT:
            return gradient(rng, seconds)
        if kind is LibraryKind.SKY:
            return sky(rng, seconds)
        if kind is LibraryKind.DARK:
            return dark(self.photos[0], rng, seconds)
        if kind is LibraryKind.TITLE_CARD:
            return title_card(rng, seconds)
        if kind is LibraryKind.SLIDESHOW:
            return slideshow(self.photos, seconds)
        if kind is LibraryKind.STILL:
            return still(self.photos[0], seconds)
        if kind is LibraryKind.BUMPER_GROUP:
            intro = bumper(group_seed(self.group))
            rest = pan_zoom(self.photos[0].load(), seconds - BUMPER_SECONDS, seed=self.seed)
            return itertools.chain(intro, rest)
        return pan_zoom(self.photos[0].load(), seconds, seed=self.seed)  # inside a template


def group_seed(group: str) -> int:
    """A group's seed, from its name: the same bumper and jingle in every build."""
    return int.from_bytes(group.encode(), "little") % (1 << 31)


def plan_library(
    plan: LibraryPlan, photos: list[Photo], rng: np.random.Generator, first: int
) -> list[LibrarySpec]:
    """The never-copied videos, numbered from S{first}; photographs from `photos` in turn."""
    if not photos:
        raise RuntimeError("no pool photographs for never-copied videos: gcompris-qt-data?")
    order = [photos[i] for i in rng.permutation(len(photos))]
    taken = itertools.cycle(order)
    needs = {LibraryKind.DARK: 1, LibraryKind.SLIDESHOW: 3, LibraryKind.STILL: 1}
    kinds = [(k, "") for k in UNGROUPED for _ in range(plan.per_kind)]
    for g in range(plan.groups):
        for kind, prefix in ((LibraryKind.TEMPLATE_GROUP, "T"), (LibraryKind.BUMPER_GROUP, "B")):
            kinds += [(kind, f"{prefix}{g}")] * plan.group_size
    specs = []
    for n, (kind, group) in enumerate(kinds):
        low = plan.min_seconds + (BUMPER_SECONDS if kind is LibraryKind.BUMPER_GROUP else 0)
        seconds = round(float(rng.uniform(low, plan.max_seconds + low - plan.min_seconds)), 2)
        count = needs.get(kind, 0 if kind in UNGROUPED else 1)
        chosen = [next(taken) for _ in range(count)]
        seed = int(rng.integers(1 << 31))
        specs.append(LibrarySpec(f"S{first + n:03d}", kind, seconds, seed, chosen, group))
    return specs


UNGROUPED = (
    LibraryKind.GRADIENT, LibraryKind.SKY, LibraryKind.DARK, LibraryKind.TITLE_CARD,
    LibraryKind.SLIDESHOW, LibraryKind.STILL,
)  # fmt: skip
