"""Persistent fingerprint libraries: one writer appends, any number of readers catch up.

On disk, one folder per library under the data directory:
    meta.json      descriptor model and dimension, written once at creation
    log.jsonl      the write-ahead log: one JSON record per ingested ("add") or deleted
                   ("delete") video, appended and fsync'ed
    videos/N.npz   an added video's fingerprints (embeddings, timestamps), written before its
                   record and removed after its delete record
A video counts as ingested (or deleted) once its log line is durable; a torn last line left
by a crash is cut off by the next writer, and a video file without a log line is never read.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

import faiss
import numpy as np

from rci.errors import AlreadyExistsError, DescriptorMismatchError, NotFoundError, RciError

LIBRARY_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
MAX_VIDEO_ID = 256  # characters


@dataclass
class VideoFingerprints:
    """One video's frame descriptors with their times."""

    video_id: str
    embeddings: np.ndarray  # (T, D) float32, unit length
    timestamps: np.ndarray  # (T,) float32 seconds
    duration: float  # seconds

    def __post_init__(self) -> None:
        if self.embeddings.ndim != 2 or self.embeddings.dtype != np.float32:
            raise ValueError(f"embeddings must be (T, D) float32, got {self.embeddings.shape}")
        if self.timestamps.shape != (len(self.embeddings),):
            raise ValueError(
                f"timestamps must be ({len(self.embeddings)},), got {self.timestamps.shape}"
            )


def check_video_id(video_id: str) -> str:
    """The id itself if usable: 1-256 printable characters."""
    if not video_id or len(video_id) > MAX_VIDEO_ID or not video_id.isprintable():
        raise RciError(f"video id must be 1-{MAX_VIDEO_ID} printable characters, got {video_id!r}")
    return video_id


@dataclass(frozen=True)
class LibraryMeta:
    name: str
    descriptor: str
    dim: int


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_atomic(path: Path, write) -> None:
    """Write through `write(file)` to a temporary name, fsync, rename over `path`."""
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        write(f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    _fsync_dir(path.parent)


class LibraryFolder:
    """The files of one named library; creates them on first use."""

    def __init__(self, data_dir: Path, name: str, *, descriptor: str, dim: int) -> None:
        self.path = Path(data_dir) / name
        self.log_path = self.path / "log.jsonl"
        (self.path / "videos").mkdir(parents=True, exist_ok=True)
        meta_path = self.path / "meta.json"
        wanted = LibraryMeta(name=name, descriptor=descriptor, dim=dim)
        with self.lock():
            if not meta_path.exists():
                body = json.dumps(wanted.__dict__, indent=1).encode()
                _write_atomic(meta_path, lambda f: f.write(body))
        self.meta = LibraryMeta(**json.loads(meta_path.read_text()))
        if (self.meta.descriptor, self.meta.dim) != (descriptor, dim):
            raise DescriptorMismatchError(
                f"library {name!r} was built with descriptor {self.meta.descriptor!r} "
                f"(dim {self.meta.dim}); this server runs {descriptor!r} (dim {dim}). "
                "Serve with the library's descriptor or ingest into a new library."
            )

    def lock(self):
        """Exclusive advisory lock over the library's files (one writer at a time)."""
        return _FileLock(self.path / ".lock")

    def read_records(self, offset: int) -> tuple[list[dict], int]:
        """Complete log records from byte `offset` on, and the offset after the last one."""
        if not self.log_path.exists():
            return [], offset
        with open(self.log_path, "rb") as f:
            f.seek(offset)
            chunk = f.read()
        end = chunk.rfind(b"\n") + 1
        records = [json.loads(line) for line in chunk[:end].splitlines() if line.strip()]
        return records, offset + end

    def live(self, records: list[dict]) -> dict[str, dict]:
        """The add record of each video id that no later record deletes, in log order."""
        videos: dict[str, dict] = {}
        for record in records:
            if record["op"] == "delete":
                videos.pop(record["video_id"], None)
            else:
                videos[record["video_id"]] = record
        return videos

    def load_video(self, record: dict) -> VideoFingerprints:
        with np.load(self.path / record["file"], allow_pickle=False) as z:
            return VideoFingerprints(
                video_id=record["video_id"],
                embeddings=z["embeddings"],
                timestamps=z["timestamps"],
                duration=float(record["duration"]),
            )


class _FileLock:
    def __init__(self, path: Path) -> None:
        self._path = path

    def __enter__(self) -> _FileLock:
        self._fd = os.open(self._path, os.O_RDWR | os.O_CREAT, 0o644)
        fcntl.flock(self._fd, fcntl.LOCK_EX)
        return self

    def __exit__(self, *exc) -> None:
        fcntl.flock(self._fd, fcntl.LOCK_UN)
        os.close(self._fd)


class LibraryWriter:
    """Adds and deletes videos; adding an id the library holds is refused
    (AlreadyExistsError), deleting one it does not hold too (NotFoundError)."""

    def __init__(self, folder: LibraryFolder) -> None:
        self.folder = folder

    def add(self, video: VideoFingerprints) -> int:
        """Store `video` durably; returns its number of fingerprints."""
        check_video_id(video.video_id)
        if video.embeddings.shape[1] != self.folder.meta.dim:
            raise RciError(
                f"embeddings have dimension {video.embeddings.shape[1]}, "
                f"library {self.folder.meta.name!r} holds {self.folder.meta.dim}"
            )
        if len(video.embeddings) == 0:
            raise RciError("a video needs at least one fingerprint")
        with self.folder.lock():
            records = self._recover()
            if video.video_id in self.folder.live(records):
                raise AlreadyExistsError(
                    f"video id {video.video_id!r} is already in library {self.folder.meta.name!r}"
                )
            name = f"videos/{len(records):09d}.npz"
            _write_atomic(
                self.folder.path / name,
                lambda f: np.savez(f, embeddings=video.embeddings, timestamps=video.timestamps),
            )
            record = {
                "op": "add",
                "video_id": video.video_id,
                "file": name,
                "count": len(video.embeddings),
                "duration": round(video.duration, 3),
            }
            self._append(record)
        return len(video.embeddings)

    def delete(self, video_id: str) -> int:
        """Remove `video_id` durably; returns how many fingerprints it had."""
        check_video_id(video_id)
        with self.folder.lock():
            added = self.folder.live(self._recover()).get(video_id)
            if added is None:
                raise NotFoundError(
                    f"video id {video_id!r} is not in library {self.folder.meta.name!r}"
                )
            self._append({"op": "delete", "video_id": video_id})
            # After the record: a crash in between leaves an unread file, never a record
            # without its file. Readers that have not caught up skip adds deleted later.
            (self.folder.path / added["file"]).unlink(missing_ok=True)
        return int(added["count"])

    def _append(self, record: dict) -> None:
        with open(self.folder.log_path, "ab") as f:
            f.write(json.dumps(record).encode() + b"\n")
            f.flush()
            os.fsync(f.fileno())

    def _recover(self) -> list[dict]:
        """All complete records; a torn last line from a crash is cut off first."""
        records, end = self.folder.read_records(0)
        if self.folder.log_path.exists() and self.folder.log_path.stat().st_size != end:
            with open(self.folder.log_path, "r+b") as f:
                f.truncate(end)
                os.fsync(f.fileno())
        return records


class LibraryIndex:
    """In-memory exact inner-product index over a library, refreshed from its log.

    Row r of the index is fingerprint `row_time[r]` seconds into video `row_video[r]`;
    each video's rows are contiguous, starting at `video_start[v]`. Video numbers shift
    down when an earlier video is deleted.
    """

    def __init__(self, folder: LibraryFolder) -> None:
        self.folder = folder
        self.index = faiss.IndexFlatIP(folder.meta.dim)
        self.video_ids: list[str] = []
        self.video_durations: list[float] = []
        self._video_times: list[np.ndarray] = []
        self._offset = 0
        self._mapped()
        self.refresh()

    def refresh(self) -> None:
        """Apply the adds and deletes appended to the log since the last refresh."""
        # Load everything before changing anything, so a failed read leaves the index as it
        # was and the next refresh retries the same records. An add deleted later in the
        # same batch is skipped: its file may be gone already. A file deleted between reading
        # the log and loading it has its delete record durable by then: read the log again.
        for attempt in range(3):
            records, offset = self.folder.read_records(self._offset)
            if not records:
                return
            last = {r["video_id"]: n for n, r in enumerate(records)}
            try:
                loaded = {
                    n: self.folder.load_video(r)
                    for n, r in enumerate(records)
                    if r["op"] == "add" and last[r["video_id"]] == n
                }
                break
            except FileNotFoundError:
                if attempt == 2:
                    raise
        self._offset = offset
        for n, record in enumerate(records):
            if record["op"] == "delete":
                self._remove(record["video_id"])
            elif n in loaded:
                video = loaded[n]
                self.video_ids.append(video.video_id)
                self.video_durations.append(video.duration)
                self._video_times.append(video.timestamps)
                self.index.add(video.embeddings)
        self._mapped()

    def _remove(self, video_id: str) -> None:
        if video_id not in self.video_ids:
            return  # added and deleted within one refresh
        v = self.video_ids.index(video_id)
        start = sum(len(t) for t in self._video_times[:v])
        self.index.remove_ids(faiss.IDSelectorRange(start, start + len(self._video_times[v])))
        del self.video_ids[v], self.video_durations[v], self._video_times[v]

    def _mapped(self) -> None:
        """Row maps rebuilt from the per-video lists."""
        lengths = np.array([len(t) for t in self._video_times], dtype=np.int64)
        self.video_start = (np.cumsum(lengths) - lengths).tolist()
        self.row_video = np.repeat(np.arange(len(lengths), dtype=np.int64), lengths)
        self.row_time = (
            np.concatenate(self._video_times) if self._video_times else np.zeros(0, np.float32)
        )

    def search(self, xq: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """faiss search: xq (nq, D) -> D (nq, k) similarities, I (nq, k) rows (-1 if none)."""
        return self.index.search(np.ascontiguousarray(xq, dtype=np.float32), k)

    def video(self, v: int) -> VideoFingerprints:
        """Fingerprints of video number `v`, read back from the index."""
        start = self.video_start[v]
        stop = self.video_start[v + 1] if v + 1 < len(self.video_start) else self.index.ntotal
        return VideoFingerprints(
            video_id=self.video_ids[v],
            embeddings=self.index.reconstruct_n(start, stop - start),
            timestamps=self.row_time[start:stop],
            duration=self.video_durations[v],
        )


class Libraries:
    """The configured libraries of one server, opened lazily; unknown names are refused."""

    def __init__(self, data_dir: Path, names: list[str], *, descriptor: str, dim: int) -> None:
        for name in names:
            if not LIBRARY_NAME.match(name):
                raise ValueError(f"library name {name!r} must match {LIBRARY_NAME.pattern}")
        self.data_dir = Path(data_dir)
        self.names = list(names)
        self.descriptor = descriptor
        self.dim = dim
        self._folders: dict[str, LibraryFolder] = {}
        self._indexes: dict[str, LibraryIndex] = {}

    def folder(self, name: str) -> LibraryFolder:
        if name not in self.names:
            raise NotFoundError(f"unknown library {name!r}; this server has {self.names}")
        if name not in self._folders:
            self._folders[name] = LibraryFolder(
                self.data_dir, name, descriptor=self.descriptor, dim=self.dim
            )
        return self._folders[name]

    def writer(self, name: str) -> LibraryWriter:
        return LibraryWriter(self.folder(name))

    def index(self, name: str) -> LibraryIndex:
        """The library's index, caught up with every video acknowledged so far."""
        if name not in self._indexes:
            self._indexes[name] = LibraryIndex(self.folder(name))
        else:
            self._indexes[name].refresh()
        return self._indexes[name]

    def status(self, names: list[str]) -> list[dict]:
        """Per library: name, descriptor, videos, fingerprints, or the error that bars it."""
        out = []
        for name in names:
            try:
                index = self.index(name)
            except DescriptorMismatchError as exc:
                out.append({"name": name, "error": str(exc)})
                continue
            out.append(
                {
                    "name": name,
                    "descriptor": index.folder.meta.descriptor,
                    "dim": index.folder.meta.dim,
                    "videos": len(index.video_ids),
                    "fingerprints": int(index.index.ntotal),
                }
            )
        return out
