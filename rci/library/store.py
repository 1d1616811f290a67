"""Persistent fingerprint libraries: one writer appends, any number of readers catch up.

On disk, one folder per library under the data directory:
    meta.json      descriptor model and dimension, written once at creation
    log.jsonl      the write-ahead log: one JSON record per ingested ("add") or deleted
                   ("delete") video, appended and fsync'ed
    videos/N.npy   an added video's fingerprints, one (time, embedding) row per frame, written
                   before its record and removed after its delete record; N is the video's
                   key, unique for the library's life (readers memory-map these files)
    videos/N.audio.npy   its audio fingerprints, one (time, bits) row per window, written and
                   removed with videos/N.npy; absent when the video has no sound, and for
                   videos added before audio fingerprints existed (their records say so)
    index/         snapshots of a trained IVF-PQ index (rci.library.build)
A video counts as ingested (or deleted) once its log line is durable; a torn last line left
by a crash is cut off by the next writer, and a video file without a live log line is never
read (the first write of each process removes such files).
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np

from rci.errors import AlreadyExistsError, DescriptorMismatchError, NotFoundError, RciError, quote
from rci.library.checks import check_duration, check_embeddings, check_times
from rci.preprocess.audio_prints import AudioPrints
from rci.preprocess.thumbnails import JPEG_START
from rci.preprocess.thumbnails import MAX_BYTES as MAX_THUMBNAIL_BYTES

LIBRARY_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
MAX_VIDEO_ID = 256  # characters
# A fingerprint's index id is key << FRAME_BITS | frame: the video is read off the id itself.
FRAME_BITS = 20
MAX_FINGERPRINTS = 1 << FRAME_BITS  # per video: 12 days at one frame per second
AUDIO_KIND = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,63}$")
MAX_AUDIO_WIDTH = 1024  # bytes of one audio window's bits


@dataclass
class VideoFingerprints:
    """One video's frame descriptors with their times, and its audio fingerprints: None for
    a video stored before they existed, none (A = 0) for a video without sound."""

    video_id: str
    embeddings: np.ndarray  # (T, D) float32, unit length
    timestamps: np.ndarray  # (T,) float32 seconds
    duration: float  # seconds
    audio: AudioPrints | None = None
    # (T,) JPEG pictures of the fingerprinted frames for reviewers
    # (rci.preprocess.thumbnails); None: not stored.
    thumbnails: list[bytes] | None = None

    def __post_init__(self) -> None:
        if self.embeddings.ndim != 2 or self.embeddings.dtype != np.float32:
            raise RciError(
                f"embeddings must be (T, D) float32, got {self.embeddings.dtype} "
                f"{list(self.embeddings.shape)}"
            )
        if self.timestamps.shape != (len(self.embeddings),):
            raise RciError(
                f"timestamps must be ({len(self.embeddings)},), one per embedding, got "
                f"{list(self.timestamps.shape)}"
            )

    def check(self, dim: int) -> VideoFingerprints:
        """self if fit for a library of `dim`: unit finite vectors, increasing times in
        seconds, a finite duration (rci.library.checks); RciError otherwise."""
        check_video_id(self.video_id)
        check_embeddings(self.embeddings, "embeddings", dim)
        check_times(self.timestamps, len(self.embeddings), "timestamps")
        check_duration(self.duration, "duration")
        if not 0 < len(self.embeddings) <= MAX_FINGERPRINTS:
            raise RciError(
                f"a video needs 1-{MAX_FINGERPRINTS} fingerprints, got {len(self.embeddings)}"
            )
        if self.audio is not None:
            check_audio(self.audio)
        if self.thumbnails is not None:
            check_thumbnails(self.thumbnails, len(self.embeddings))
        return self


def check_thumbnails(pictures: list[bytes], count: int) -> list[bytes]:
    """pictures itself if it holds `count` JPEGs of at most MAX_THUMBNAIL_BYTES; RciError
    otherwise (a reviewer's browser shows them: nothing else may pass as one)."""
    if len(pictures) != count:
        raise RciError(f"THUMBNAILS must hold one picture per fingerprint ({count}), got "
                       f"{len(pictures)}")  # fmt: skip
    for n, picture in enumerate(pictures):
        if not picture.startswith(JPEG_START) or len(picture) > MAX_THUMBNAIL_BYTES:
            raise RciError(
                f"THUMBNAILS[{n}] must be a JPEG of at most {MAX_THUMBNAIL_BYTES} bytes, got "
                f"{len(picture)} bytes starting {picture[:4]!r}"
            )
    return pictures


def check_audio(audio: AudioPrints) -> AudioPrints:
    """audio itself if its kind is a name, its windows 1-MAX_AUDIO_WIDTH bytes, its times
    increasing seconds and its windows at most MAX_FINGERPRINTS; RciError otherwise."""
    if not AUDIO_KIND.match(audio.kind):
        raise RciError(f"audio fingerprint kind must be a short name, got {quote(audio.kind)}")
    if not 0 < audio.bits.shape[1] <= MAX_AUDIO_WIDTH:
        raise RciError(
            f"audio fingerprints need 1-{MAX_AUDIO_WIDTH} bytes a window, got {audio.bits.shape[1]}"
        )
    check_times(audio.times, len(audio.bits), "AUDIO_TIMES")
    if len(audio.bits) > MAX_FINGERPRINTS:
        raise RciError(f"at most {MAX_FINGERPRINTS} audio fingerprints, got {len(audio.bits)}")
    return audio


def check_video_id(video_id: str) -> str:
    """The id itself if usable: 1-256 printable characters, not all of them spaces."""
    if not video_id.strip() or len(video_id) > MAX_VIDEO_ID or not video_id.isprintable():
        raise RciError(
            f"video id must be 1-{MAX_VIDEO_ID} printable characters, not only spaces, "
            f"got {quote(video_id)}"
        )
    return video_id


@dataclass(frozen=True)
class LibraryMeta:
    name: str
    descriptor: str
    dim: int
    generation: str = ""  # random at creation: tells a library made again from the old one


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomic(path: Path, write) -> None:
    """Write through `write(file)` to a temporary name, fsync, rename over `path`."""
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        write(f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    fsync_dir(path.parent)


class LibraryFolder:
    """The files of one named library; creates them on first use."""

    def __init__(self, data_dir: Path, name: str, *, descriptor: str, dim: int) -> None:
        self.path = Path(data_dir) / name
        self.log_path = self.path / "log.jsonl"
        (self.path / "videos").mkdir(parents=True, exist_ok=True)
        meta_path = self.path / "meta.json"
        wanted = LibraryMeta(name, descriptor, dim, generation=uuid.uuid4().hex)
        with self.lock():
            if not meta_path.exists():
                body = json.dumps(wanted.__dict__, indent=1).encode()
                write_atomic(meta_path, lambda f: f.write(body))
        self.meta = LibraryMeta(**json.loads(meta_path.read_text()))
        self.live_records = LiveRecords(self)
        self.orphans_reclaimed = False
        if (self.meta.descriptor, self.meta.dim) != (descriptor, dim):
            raise DescriptorMismatchError(
                f"library {name!r} was built with descriptor {self.meta.descriptor!r} "
                f"(dim {self.meta.dim}); this server runs {descriptor!r} (dim {dim}). "
                "Serve with the library's descriptor or ingest into a new library."
            )

    def lock(self):
        """Exclusive advisory lock over the library's files (one writer at a time)."""
        return FileLock(self.path / ".lock")

    def read_records(self, offset: int) -> tuple[list[dict], int]:
        """Complete log records from byte `offset` on, and the offset after the last one."""
        entries = self.read_entries(offset)
        return [record for record, _ in entries], entries[-1][1] if entries else offset

    def read_entries(self, offset: int) -> list[tuple[dict, int]]:
        """Complete log records from byte `offset` on, each with the offset after its line."""
        return list(self.iter_entries(offset))

    def iter_entries(self, offset: int, block: int = 1 << 23) -> Iterator[tuple[dict, int]]:
        """read_entries() one `block` (bytes) at a time: memory stays at a block's lines."""
        if not self.log_path.exists():
            return
        with open(self.log_path, "rb") as f:
            f.seek(offset)
            tail = b""
            while chunk := f.read(block):
                chunk = tail + chunk
                cut = chunk.rfind(b"\n") + 1
                tail = chunk[cut:]
                for line in chunk[:cut].split(b"\n")[:-1]:
                    offset += len(line) + 1
                    if line.strip():
                        yield json.loads(line), offset

    def live(self, records: list[dict]) -> dict[str, dict]:
        """The latest add record of each video id that no later record deletes, in log order."""
        videos: dict[str, dict] = {}
        for record in records:
            videos.pop(record["video_id"], None)
            if record["op"] == "add":
                videos[record["video_id"]] = record
        return videos

    def current(self) -> tuple[dict[str, dict], int]:
        """live() over the whole log (a copy), and the log offset it covers."""
        return self.live_records.snapshot()

    def generation(self) -> str | None:
        """The generation meta.json names now (None without one): another than the one this
        folder opened means the library was removed and made again."""
        try:
            return json.loads((self.path / "meta.json").read_text()).get("generation", "")
        except (OSError, ValueError):
            return None

    def load_video(self, record: dict) -> VideoFingerprints:
        """An add record's fingerprints, read through a memory map: from the page cache
        when a video is a candidate again, never held by the reader in between."""
        path = self.path / record["file"]
        if path.suffix == ".npz":  # the first file format, before fingerprints were mapped
            with np.load(path, allow_pickle=False) as z:
                embeddings, timestamps = z["embeddings"], z["timestamps"]
        else:
            rows = np.load(path, mmap_mode="r", allow_pickle=False)
            embeddings, timestamps = rows["embedding"], rows["time"]
        return VideoFingerprints(
            video_id=record["video_id"],
            embeddings=np.ascontiguousarray(embeddings),
            timestamps=np.ascontiguousarray(timestamps),
            duration=float(record["duration"]),
            audio=self.load_audio(record),
        )

    def load_audio(self, record: dict) -> AudioPrints | None:
        """An add record's audio fingerprints; None when it was stored without them."""
        if "audio" not in record:
            return None
        kind, width = record["audio"], int(record["audio_width"])
        if not record.get("audio_count"):
            return AudioPrints(kind, np.zeros(0, np.float32), np.zeros((0, width), np.uint8))
        rows = np.load(self.path / audio_file(record["file"]), mmap_mode="r", allow_pickle=False)
        return AudioPrints(
            kind, np.ascontiguousarray(rows["time"]), np.ascontiguousarray(rows["bits"])
        )

    def load_thumbnails(self, record: dict, times: np.ndarray) -> tuple[np.ndarray, list[bytes]]:
        """For each of `times` (N,) seconds, the add record's fingerprint time nearest it
        (N,) float32 and that frame's picture; none ((0,), []) when it was stored without."""
        if not record.get("thumbnails"):
            return np.zeros(0, np.float32), []
        rows = np.load(self.path / record["file"], mmap_mode="r", allow_pickle=False)
        stored = np.asarray(rows["time"], np.float32)
        with np.load(self.path / thumbnails_file(record["file"]), allow_pickle=False) as z:
            offsets, data = z["offsets"], z["data"]
        right = np.clip(np.searchsorted(stored, times), 0, len(stored) - 1)
        left = np.maximum(right - 1, 0)
        closer = np.abs(times - stored[left]) <= np.abs(stored[right] - times)
        nearest = np.where(closer, left, right)
        pictures = [data[offsets[k] : offsets[k + 1]].tobytes() for k in nearest]
        return stored[nearest], pictures


class LiveRecords:
    """What LibraryFolder.live() gives over the whole log, kept up to date by reading only
    the lines appended since: a write or a status costs the new records, not the log (7.5 s
    for a million videos, scripts/measure_log_writes.py)."""

    def __init__(self, folder: LibraryFolder) -> None:
        self._folder = folder
        self._lock = threading.Lock()
        self._reset(inode=None, generation=None)

    def _reset(self, inode: int | None, generation: str | None) -> None:
        self.videos: dict[str, dict] = {}  # video id -> add record, in log order
        self.records = 0  # complete records read, deletes included: the next video's key
        self.fingerprints = 0
        self.audio_fingerprints = 0
        self.without_audio = 0  # live videos stored before audio fingerprints existed
        self.offset = 0  # byte offset after the last complete record
        self._inode = inode
        self._generation = generation

    def catch_up(self) -> LiveRecords:
        """Apply the records appended since the last call; returns self."""
        with self._lock:
            self._catch_up()
        return self

    def snapshot(self) -> tuple[dict[str, dict], int]:
        """Caught up: a copy of the live records and the log offset they cover, together."""
        with self._lock:
            self._catch_up()
            return dict(self.videos), self.offset

    def _catch_up(self) -> None:
        generation = self._folder.generation()
        try:
            stat = self._folder.log_path.stat()
        except FileNotFoundError:
            self._reset(inode=None, generation=generation)
            return
        # The log only grows past complete records (a torn tail is cut, never a whole
        # record), so another generation, inode or a shorter file is another log: the
        # library was removed and made again (its inode number may be reused). Start over.
        if (generation, stat.st_ino) != (self._generation, self._inode) or (
            stat.st_size < self.offset
        ):
            self._reset(inode=stat.st_ino, generation=generation)
        for record, end in self._folder.iter_entries(self.offset):
            old = self.videos.pop(record["video_id"], None)
            if old is not None:
                self._count(old, -1)
            if record["op"] == "add":
                self.videos[record["video_id"]] = record
                self._count(record, 1)
            self.records += 1
            self.offset = end

    def _count(self, record: dict, sign: int) -> None:
        self.fingerprints += sign * int(record["count"])
        self.audio_fingerprints += sign * int(record.get("audio_count", 0))
        self.without_audio += sign * ("audio" not in record)


def thumbnails_file(video_file: str) -> str:
    """The reviewer pictures' file beside a video's fingerprint file."""
    return video_file.removesuffix(".npy") + ".thumbs.npz"


def record_key(record: dict) -> int:
    """An add record's video key: the number in its file name."""
    return int(Path(record["file"]).stem)


def audio_file(video_file: str) -> str:
    """The audio fingerprints' file beside a video's fingerprint file."""
    return video_file.removesuffix(".npy") + ".audio.npy"


def audio_rows(audio: AudioPrints) -> np.ndarray:
    """The (A,) structured array [time float32, bits uint8 (B,)] an audio file holds."""
    rows = np.empty(
        len(audio.bits), dtype=[("time", "<f4"), ("bits", "u1", (audio.bits.shape[1],))]
    )
    rows["time"] = audio.times
    rows["bits"] = audio.bits
    return rows


def fingerprint_rows(video: VideoFingerprints) -> np.ndarray:
    """The (T,) structured array [time float32, embedding float32 (D,)] a video file holds."""
    dim = video.embeddings.shape[1]
    rows = np.empty(len(video.embeddings), dtype=[("time", "<f4"), ("embedding", "<f4", (dim,))])
    rows["time"] = video.timestamps
    rows["embedding"] = video.embeddings
    return rows


class FileLock:
    def __init__(self, path: Path) -> None:
        self._path = path

    def __enter__(self) -> FileLock:
        self._fd = os.open(self._path, os.O_RDWR | os.O_CREAT, 0o644)
        fcntl.flock(self._fd, fcntl.LOCK_EX)
        return self

    def __exit__(self, *exc) -> None:
        fcntl.flock(self._fd, fcntl.LOCK_UN)
        os.close(self._fd)


class Stored(NamedTuple):
    """What an add stored: the video's fingerprints, and whether it replaced one held under
    its id."""

    fingerprints: int
    replaced: bool


class LibraryWriter:
    """Adds, replaces and deletes videos; adding an id the library holds is refused
    (AlreadyExistsError) unless replacing, deleting one it does not hold too (NotFoundError)."""

    def __init__(self, folder: LibraryFolder) -> None:
        self.folder = folder

    def add(self, video: VideoFingerprints, *, replace: bool = False) -> Stored:
        """Store `video` durably. With `replace`, an existing video of that id is swapped
        out in the same log record: readers see the old video or the new one, never
        neither."""
        video.check(self.folder.meta.dim)
        with self.folder.lock():
            live = self._recover()
            old = live.videos.get(video.video_id)
            if old is not None and not replace:
                raise AlreadyExistsError(
                    f"video id {quote(video.video_id)} is already in library "
                    f"{self.folder.meta.name!r}"
                )
            # The record count only grows (the log is append-only), so keys are never reused.
            name = f"videos/{live.records:09d}.npy"
            rows = fingerprint_rows(video)
            record = {
                "op": "add",
                "video_id": video.video_id,
                "file": name,
                "count": len(video.embeddings),
                "duration": round(video.duration, 3),
            }
            if video.audio is not None:
                record.update(
                    audio=video.audio.kind,
                    audio_width=video.audio.bits.shape[1],
                    audio_count=len(video.audio.bits),
                )
                if len(video.audio.bits):
                    sound = audio_rows(video.audio)
                    write_atomic(self.folder.path / audio_file(name), lambda f: np.save(f, sound))
            if video.thumbnails is not None:
                record["thumbnails"] = len(video.thumbnails)
                offsets = np.cumsum([0] + [len(p) for p in video.thumbnails], dtype=np.int64)
                data = np.frombuffer(b"".join(video.thumbnails), np.uint8)
                write_atomic(
                    self.folder.path / thumbnails_file(name),
                    lambda f: np.savez(f, offsets=offsets, data=data),
                )
            write_atomic(self.folder.path / name, lambda f: np.save(f, rows))
            self._append(record)
            if old is not None:  # after the record, as for a delete
                self._unlink(old)
        return Stored(len(video.embeddings), old is not None)

    def delete(self, video_id: str) -> int:
        """Remove `video_id` durably; returns how many fingerprints it had."""
        check_video_id(video_id)
        with self.folder.lock():
            added = self._recover().videos.get(video_id)
            if added is None:
                raise NotFoundError(
                    f"video id {quote(video_id)} is not in library {self.folder.meta.name!r}"
                )
            self._append({"op": "delete", "video_id": video_id})
            # After the record: a crash in between leaves an unread file, never a record
            # without its file. Readers that have not caught up skip adds deleted later.
            self._unlink(added)
        return int(added["count"])

    def _unlink(self, record: dict) -> None:
        """Remove an add record's files (after a later record made them unread)."""
        (self.folder.path / record["file"]).unlink(missing_ok=True)
        (self.folder.path / audio_file(record["file"])).unlink(missing_ok=True)
        (self.folder.path / thumbnails_file(record["file"])).unlink(missing_ok=True)

    def _append(self, record: dict) -> None:
        with open(self.folder.log_path, "ab") as f:
            f.write(json.dumps(record).encode() + b"\n")
            f.flush()
            os.fsync(f.fileno())

    def _recover(self) -> LiveRecords:
        """The live records, under the lock; a torn last line from a crash is cut off, and
        on this process's first write, files a crash left outside the live records go."""
        live = self.folder.live_records.catch_up()
        if self.folder.log_path.exists() and self.folder.log_path.stat().st_size != live.offset:
            with open(self.folder.log_path, "r+b") as f:
                f.truncate(live.offset)
                os.fsync(f.fileno())
        if not self.folder.orphans_reclaimed:
            self._reclaim_orphans(live)
            self.folder.orphans_reclaimed = True
        return live

    def _reclaim_orphans(self, live: LiveRecords) -> None:
        """Remove video files no live record names: written before an add record a crash
        kept from the log, or left after a durable delete. Under the lock no write is
        under way, so each such file is one of those."""
        kept = {Path(record["file"]).name for record in live.videos.values()}
        kept |= {Path(audio_file(record["file"])).name for record in live.videos.values()}
        kept |= {Path(thumbnails_file(record["file"])).name for record in live.videos.values()}
        with os.scandir(self.folder.path / "videos") as entries:
            for entry in entries:
                if entry.name not in kept:
                    Path(entry.path).unlink(missing_ok=True)
