"""A library's searchable index, caught up with its log: exact, or a trained IVF-PQ snapshot.

Each fingerprint's faiss id is `key << FRAME_BITS | frame`, so a neighbour names its video
without a row map, and ids stay put when other videos come and go. Besides the frames, the
index keeps one mean descriptor per video for video-level recall, and the videos' audio
fingerprints in a Hamming index (ids as the frames'): exact, or the binary IVF a snapshot
holds. Full-precision fingerprints stay in the per-video files, read (memory-mapped) only
for recalled candidates.
"""

from __future__ import annotations

import json
import sys
from typing import Protocol

import faiss
import numpy as np

from rci.library.store import FRAME_BITS, LibraryFolder, VideoFingerprints, record_key
from rci.preprocess.audio_prints import AUDIO_PRINT, WINDOW_BYTES, AudioPrints

SNAPSHOT_POINTER = "CURRENT"  # index/CURRENT names the snapshot readers load
APPLY_BATCH = 256  # log records loaded before being applied: 256 videos in memory at most


def fingerprint_ids(key: int, count: int) -> np.ndarray:
    """(count,) int64 faiss ids of video `key`'s fingerprints."""
    return (np.int64(key) << FRAME_BITS) | np.arange(count, dtype=np.int64)


def video_keys(ids: np.ndarray) -> np.ndarray:
    """The video key of each faiss id (ids < 0, faiss's 'none', stay negative)."""
    return np.where(ids >= 0, ids >> FRAME_BITS, -1)


def mean_descriptor(embeddings: np.ndarray) -> np.ndarray:
    """(D,) float32 unit-length mean of (T, D) unit fingerprints: a whole-video descriptor."""
    mean = embeddings.mean(axis=0, dtype=np.float64)
    return (mean / max(np.linalg.norm(mean), 1e-12)).astype(np.float32)


def read_pointer(folder: LibraryFolder) -> dict | None:
    """The current snapshot's pointer {name, offset, ...}, or None before the first build."""
    try:
        return json.loads((folder.path / "index" / SNAPSHOT_POINTER).read_text())
    except FileNotFoundError:
        return None


def pointer_time(folder: LibraryFolder) -> float | None:
    """When the current snapshot was published (its pointer's mtime, Unix seconds)."""
    try:
        return (folder.path / "index" / SNAPSHOT_POINTER).stat().st_mtime
    except FileNotFoundError:
        return None


class SearchableLibrary(Protocol):
    """What recall (rci.match.recall) reads of a library: LibraryIndex here, or a library
    in Milvus (rci.library.milvus.MilvusLibrary). Frame and audio ids are
    fingerprint_ids()."""

    @property
    def ntotal(self) -> int: ...

    def search(self, xq: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]: ...

    def search_means(self, xq: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]: ...

    def search_audio(self, xq: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]: ...

    def video_count(self) -> int: ...

    def audio_count(self) -> int: ...

    def candidate(self, key: int) -> VideoFingerprints | None: ...


class LibraryIndex:
    """Frame and video-mean indexes over one library, refreshed from its log.

    `use_snapshots` is the library's choice of IVF-PQ: while no snapshot exists, or with
    it off, search is exact. `nprobe` is how many IVF lists a query frame visits,
    `audio_nprobe` how many lists of the snapshot's binary IVF an audio window visits.
    """

    def __init__(
        self,
        folder: LibraryFolder,
        *,
        use_snapshots: bool = False,
        nprobe: int = 128,
        audio_nprobe: int = 32,
    ) -> None:
        self.folder = folder
        self.use_snapshots = use_snapshots
        self.nprobe = nprobe
        self.audio_nprobe = audio_nprobe
        dim = folder.meta.dim
        self.index: faiss.Index = faiss.IndexIDMap(faiss.IndexFlatIP(dim))
        self.means = faiss.IndexIDMap(faiss.IndexFlatIP(dim))
        self.audio = _audio_index()
        self.audio_keys: set[int] = set()  # videos whose audio windows self.audio holds
        self.records: dict[int, dict] = {}  # key -> add record, in log order
        self.keys: dict[str, int] = {}  # video id -> key
        self.snapshot: dict | None = None
        self.snapshot_error: str | None = None
        self._failed: dict | None = None
        self._offset = 0
        self.refresh()

    @property
    def video_ids(self) -> list[str]:
        return [r["video_id"] for r in self.records.values()]

    @property
    def ntotal(self) -> int:
        return int(self.index.ntotal)

    def refresh(self) -> None:
        """Load a newer snapshot if one was built, then apply the log written since."""
        if self.use_snapshots:
            self._refresh_snapshot()
        # Records are applied in batches, each loaded whole before any of it is applied, so
        # a failed read leaves the index at a batch boundary and the next refresh retries
        # from there; memory peaks at one batch of videos beyond the index. An add superseded
        # later in what was read is skipped: its file may be gone already. A file deleted
        # between reading the log and loading it has its delete (or replacing add) record
        # durable by then: read the log again.
        for attempt in range(3):
            entries = self.folder.read_entries(self._offset)
            last = {r["video_id"]: n for n, (r, _) in enumerate(entries)}
            try:
                for start in range(0, len(entries), APPLY_BATCH):
                    batch = list(enumerate(entries[start : start + APPLY_BATCH], start))
                    loaded = {
                        n: self.folder.load_video(r)
                        for n, (r, _) in batch
                        if r["op"] == "add" and last[r["video_id"]] == n
                    }
                    for n, (record, _) in batch:
                        self._remove(record["video_id"])
                        if n in loaded:
                            self._add(record, loaded[n])
                    self._offset = batch[-1][1][1]
                return
            except FileNotFoundError:
                if attempt == 2:
                    raise

    def _refresh_snapshot(self) -> None:
        """Switch to the snapshot index/CURRENT names, if new. One that cannot be loaded
        leaves the index as it is (still complete: the log goes on being applied) and is
        reported by describe()."""
        for attempt in range(3):
            pointer = read_pointer(self.folder)
            if pointer is None or pointer in (self.snapshot, self._failed):
                return
            try:
                self._load_snapshot(pointer)
                self.snapshot_error = None
                return
            except (OSError, RuntimeError, ValueError, KeyError) as exc:
                # Pruned by a newer build while being read: the pointer has moved on.
                if attempt == 2:
                    self._failed = pointer
                    self.snapshot_error = f"snapshot {pointer.get('name')} not loaded: {exc}"
                    # Into the server log: the stub's stderr is Triton's.
                    name = self.folder.meta.name
                    print(f"library {name!r}: {self.snapshot_error}", file=sys.stderr)

    def _add(self, record: dict, video: VideoFingerprints) -> None:
        key = record_key(record)
        self.index.add_with_ids(video.embeddings, fingerprint_ids(key, len(video.embeddings)))
        self.means.add_with_ids(mean_descriptor(video.embeddings)[None], np.array([key]))
        self._add_audio(key, video.audio)
        self.records[key] = record
        self.keys[record["video_id"]] = key

    def _remove(self, video_id: str) -> None:
        key = self.keys.pop(video_id, None)
        if key is None:
            return  # never loaded: added and superseded within one refresh
        self.index.remove_ids(faiss.IDSelectorRange(key << FRAME_BITS, (key + 1) << FRAME_BITS))
        self.means.remove_ids(faiss.IDSelectorRange(key, key + 1))
        self._remove_audio(key)
        del self.records[key]

    def _add_audio(self, key: int, audio: AudioPrints | None) -> None:
        """Index a video's audio windows when this server's fingerprint made them (another
        one's are not comparable: the video is then found by its pictures only)."""
        self._remove_audio(key)  # a video the log replays after a snapshot may be held
        if audio is not None and audio.kind == AUDIO_PRINT and len(audio.bits):
            self.audio.add_with_ids(audio.bits, fingerprint_ids(key, len(audio.bits)))
            self.audio_keys.add(key)

    def _remove_audio(self, key: int) -> None:
        if key in self.audio_keys:
            self.audio.remove_ids(faiss.IDSelectorRange(key << FRAME_BITS, (key + 1) << FRAME_BITS))
            self.audio_keys.discard(key)

    def _load_snapshot(self, pointer: dict) -> None:
        """Replace the indexes by the snapshot's; the log is then replayed from its offset."""
        path = self.folder.path / "index" / pointer["name"]
        index = faiss.read_index(str(path / "frames.faiss"))
        faiss.extract_index_ivf(index).nprobe = self.nprobe
        records = json.loads((path / "videos.json").read_text())
        means = np.load(path / "means.npy")
        audio = audio_keys = None
        if "audio_nlist" in pointer:  # read before anything changes: a bad file changes nothing
            audio = faiss.read_index_binary(str(path / "audio.faiss"))
            audio.nprobe = self.audio_nprobe
            audio_keys = {int(k) for k in np.load(path / "audio_keys.npy")}
        self.index = index
        self.means = faiss.IndexIDMap(faiss.IndexFlatIP(self.folder.meta.dim))
        keys = np.array([record_key(r) for r in records], dtype=np.int64)
        if len(records):
            self.means.add_with_ids(means, keys)
        self.records = {int(k): r for k, r in zip(keys, records, strict=True)}
        self.keys = {r["video_id"]: int(k) for k, r in zip(keys, records, strict=True)}
        if audio is not None:  # the snapshot's binary IVF replaces the audio index
            self.audio, self.audio_keys = audio, audio_keys
        # Otherwise the audio index keeps the videos it holds that the snapshot holds too;
        # the others go, and the snapshot's missing ones are read from their files (all of
        # them when a server starts on a snapshot without audio).
        for key in self.audio_keys - set(self.records):
            self._remove_audio(key)
        for key, record in self.records.items():
            mine = record.get("audio") == AUDIO_PRINT and record.get("audio_count")
            if key not in self.audio_keys and mine:
                try:
                    self._add_audio(key, self.folder.load_audio(record))
                except FileNotFoundError:
                    pass  # deleted or replaced since the build: the log replayed next says so
        self.snapshot = pointer
        self._offset = pointer["offset"]

    def search(self, xq: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Frame search: xq (nq, D) -> similarities (nq, k), faiss ids (nq, k), -1 if none."""
        return self.index.search(np.ascontiguousarray(xq, dtype=np.float32), k)

    def search_means(self, xq: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Video-mean search: xq (nq, D) -> similarities (nq, k), video keys (nq, k)."""
        return self.means.search(np.ascontiguousarray(xq, dtype=np.float32), k)

    def search_audio(self, xq: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Audio window search: xq (nq, WINDOW_BYTES) uint8 -> bit errors (nq, k) int32,
        faiss ids (nq, k), -1 if none."""
        return self.audio.search(np.ascontiguousarray(xq, dtype=np.uint8), k)

    def video_count(self) -> int:
        return len(self.records)

    def audio_count(self) -> int:
        """Audio windows searchable."""
        return int(self.audio.ntotal)

    def candidate(self, key: int) -> VideoFingerprints | None:
        """Video `key`'s fingerprints for alignment; if it was deleted or replaced since the
        refresh, what its id holds now (None once it is gone)."""
        video_id = self.records[key]["video_id"]
        try:
            return self.video_of_key(key)
        except FileNotFoundError:
            self.refresh()
            return self.video(video_id) if video_id in self.keys else None

    def video(self, video_id: str) -> VideoFingerprints:
        """A video's full-precision fingerprints, read from its file."""
        return self.video_of_key(self.keys[video_id])

    def video_of_key(self, key: int) -> VideoFingerprints:
        return self.folder.load_video(self.records[key])

    def describe(self) -> str:
        """What serves searches: 'exact' or the snapshot's IVF-PQ layout and age."""
        if self.snapshot_error is not None:
            return f"{'exact' if self.snapshot is None else 'IVF-PQ'} ({self.snapshot_error})"
        if self.snapshot is None:
            return "exact"
        return describe_snapshot(self.snapshot, self.nprobe, self.audio_nprobe)


def _audio_index() -> faiss.IndexBinary:
    return faiss.IndexBinaryIDMap(faiss.IndexBinaryFlat(WINDOW_BYTES * 8))


def describe_snapshot(pointer: dict, nprobe: int, audio_nprobe: int) -> str:
    """A snapshot's IVF-PQ layout and size, and its audio index's, as status shows it."""
    frames = (
        f"IVF{pointer['nlist']},PQ{pointer['pq_m']} nprobe {nprobe} "
        f"(trained on {pointer['fingerprints']} fingerprints)"
    )
    if "audio_nlist" not in pointer:
        return f"{frames}; audio exact"
    return (
        f"{frames}; audio BIVF{pointer['audio_nlist']} nprobe {audio_nprobe} "
        f"({pointer['audio_windows']} windows)"
    )
