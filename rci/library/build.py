"""Train an IVF-PQ index over a library's fingerprints and publish it as an atomic snapshot.

Run by `rci build-index` (offline or beside a serving server). The snapshot covers the log
up to the offset read at the start; readers load it on their next refresh and replay the
log from that offset, so videos added or deleted during the build are not lost. A library
with MIN_AUDIO_WINDOWS audio windows or more gets a binary IVF over them in the same
snapshot: exact Hamming search grows with the library (docs/audio.md, "Scale").
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Callable

import faiss
import numpy as np

from rci.errors import RciError
from rci.library.index import SNAPSHOT_POINTER, fingerprint_ids, mean_descriptor, read_pointer
from rci.library.store import FileLock, LibraryFolder, fsync_dir, record_key, write_atomic
from rci.preprocess.audio_prints import AUDIO_PRINT, WINDOW_BYTES

MIN_FINGERPRINTS = 10_000  # below this, exact search is both faster and better
TRAIN_PER_LIST = 64  # training vectors per IVF list (faiss warns below 39)
MIN_TRAIN = 10_000  # PQ's 256 centroids per sub-quantizer want 39 points each
MAX_TRAIN = 1_000_000  # 39 per list up to 2^14 lists; bounds training time and memory (2 GB)
# Below this many audio windows (about 1.4 hours of sound) exact search takes 0.02 s a query.
MIN_AUDIO_WINDOWS = 10_000


def has_grown(pointer: dict, fingerprints: int, growth: float) -> bool:
    """Whether a library of `fingerprints` holds `growth` times its snapshot's."""
    return fingerprints >= growth * pointer["fingerprints"]


def auto_nlist(fingerprints: int) -> int:
    """IVF lists for a library size: the power of two nearest 4 sqrt(n), at least 64, and
    no more than the training set (at most MAX_TRAIN) fills with 39 vectors per list."""
    target = 4 * np.sqrt(max(fingerprints, 1))
    nlist = 1 << int(np.round(np.log2(target)))
    fill = 1 << int(np.log2(max(min(fingerprints, MAX_TRAIN) // 39, 1)))
    return int(max(min(nlist, fill), 64))


def _training_sample(
    folder: LibraryFolder, records: list[dict], size: int, rng: np.random.Generator
) -> np.ndarray:
    """Up to `size` fingerprints drawn evenly across the videos, (n, D) float32."""
    total = sum(r["count"] for r in records)
    rows = (rows for _, rows in _loaded(records, lambda r: folder.load_video(r).embeddings))
    return _sample(rows, total, size, rng, (0, folder.meta.dim), np.float32)


def _sample(rows, total: int, size: int, rng: np.random.Generator, empty: tuple, dtype):
    """Up to `size` rows drawn evenly from (n_i, ...) arrays holding `total` rows in all."""
    share = min(1.0, 1.05 * size / max(total, 1))  # a margin, then trimmed to `size`
    parts = [part[rng.random(len(part)) < share] for part in rows]
    if not parts:
        return np.zeros(empty, dtype)
    sample = np.concatenate(parts)
    return sample[rng.permutation(len(sample))[:size]] if len(sample) > size else sample


def _loaded(records: list[dict], load):
    """(key, load(record)) of each record whose files are still there: one deleted during
    the build has its delete record after the snapshot's offset."""
    for record in records:
        try:
            yield record_key(record), load(record)
        except FileNotFoundError:
            continue


def _audio_of(folder: LibraryFolder, records: list[dict]):
    """(key, (A, WINDOW_BYTES) uint8 windows) of each record `records` names."""
    return _loaded(records, lambda r: folder.load_audio(r).bits)


def train_audio_index(
    folder: LibraryFolder, records: list[dict], rng: np.random.Generator, log
) -> tuple[faiss.IndexBinary, np.ndarray] | None:
    """A binary IVF over the videos' audio windows (ids as the frames') and the keys of the
    videos it holds, or None below MIN_AUDIO_WINDOWS windows."""
    # Another fingerprint's windows are not comparable: those videos are found by pictures.
    records = [r for r in records if r.get("audio") == AUDIO_PRINT and r.get("audio_count")]
    total = sum(r["audio_count"] for r in records)
    if total < MIN_AUDIO_WINDOWS:
        return None
    nlist = auto_nlist(total)
    size = min(MAX_TRAIN, max(TRAIN_PER_LIST * nlist, MIN_TRAIN))
    bits = (b for _, b in _audio_of(folder, records))
    sample = _sample(bits, total, size, rng, (0, WINDOW_BYTES), np.uint8)
    if len(sample) < 39 * nlist:  # videos deleted during the build
        return None
    log(f"training BIVF{nlist} on {len(sample)} of {total} audio windows")
    index = faiss.index_binary_factory(WINDOW_BYTES * 8, f"BIVF{nlist}")
    index.train(sample)
    keys = []
    for key, rows in _audio_of(folder, records):
        index.add_with_ids(np.ascontiguousarray(rows), fingerprint_ids(key, len(rows)))
        keys.append(key)
    return index, np.array(keys, np.int64)


def build_snapshot(
    folder: LibraryFolder,
    *,
    nlist: int = 0,
    pq_m: int = 32,
    seed: int = 0,
    if_missing: bool = False,
    if_grown: float = 0.0,
    log: Callable[[str], None] = print,
) -> dict | None:
    """Train IVF{nlist},PQ{pq_m} on the library, add every live video, publish; returns the
    snapshot pointer {name, offset, nlist, pq_m, fingerprints, videos, seconds}, or None
    when a snapshot exists and `if_missing`, or the library has not grown `if_grown`-fold
    since it."""
    if not (if_grown == 0 or if_grown > 1):  # NaN too
        raise RciError(f"if_grown must be 0 or > 1, got {if_grown}")
    (folder.path / "index").mkdir(exist_ok=True)
    # One build at a time: a second waits, so builds publish in order and never prune each
    # other's half-written folders.
    with FileLock(folder.path / "index" / ".build.lock"):
        pointer = read_pointer(folder)
        if pointer is not None and if_missing:
            return None
        fingerprints = folder.live_records.catch_up().fingerprints
        if pointer is not None and if_grown and not has_grown(pointer, fingerprints, if_grown):
            return None
        return _build(folder, nlist=nlist, pq_m=pq_m, seed=seed, log=log)


def _build(folder: LibraryFolder, *, nlist: int, pq_m: int, seed: int, log) -> dict:
    start = time.perf_counter()
    live, offset = folder.current()
    records = list(live.values())
    total = sum(r["count"] for r in records)
    if total < MIN_FINGERPRINTS:
        raise RciError(
            f"library {folder.meta.name!r} has {total} fingerprints; IVF-PQ needs at least "
            f"{MIN_FINGERPRINTS} (below that exact search serves it better)"
        )
    nlist = nlist or auto_nlist(total)
    if folder.meta.dim % pq_m:
        raise RciError(f"pq_m {pq_m} must divide the dimension {folder.meta.dim}")
    rng = np.random.default_rng(seed)
    size = min(MAX_TRAIN, max(TRAIN_PER_LIST * nlist, MIN_TRAIN))
    sample = _training_sample(folder, records, size, rng)
    if len(sample) < 39 * nlist:  # faiss's own floor for k-means, as an error not a warning
        raise RciError(
            f"nlist {nlist} needs at least {39 * nlist} training fingerprints, the library "
            f"gives {len(sample)}; set a smaller nlist (0 picks one)"
        )
    log(f"training IVF{nlist},PQ{pq_m} on {len(sample)} of {total} fingerprints")
    # "np": no polysemous training, which search never uses and which costs a minute or more.
    factory = f"IVF{nlist},PQ{pq_m}np"
    index = faiss.index_factory(folder.meta.dim, factory, faiss.METRIC_INNER_PRODUCT)
    index.train(sample)
    del sample
    kept, means = [], []
    for n, record in enumerate(records):
        try:
            video = folder.load_video(record)
        except FileNotFoundError:
            continue
        key = record_key(record)
        index.add_with_ids(video.embeddings, fingerprint_ids(key, len(video.embeddings)))
        kept.append(record)
        means.append(mean_descriptor(video.embeddings))
        if (n + 1) % 10_000 == 0:
            log(f"added {n + 1} of {len(records)} videos")
    pointer = {
        "name": f"{offset:012d}-{time.time_ns()}",
        "offset": offset,
        "nlist": nlist,
        "pq_m": pq_m,
        "fingerprints": int(index.ntotal),
        "videos": len(kept),
    }
    audio = train_audio_index(folder, kept, rng, log)
    if audio is not None:
        pointer["audio_nlist"] = int(audio[0].nlist)
        pointer["audio_windows"] = int(audio[0].ntotal)
    _publish(folder, pointer, index, kept, means, audio)
    pointer["seconds"] = round(time.perf_counter() - start, 1)
    log(f"published snapshot {pointer['name']}: {pointer['fingerprints']} fingerprints")
    return pointer


def _publish(
    folder: LibraryFolder, pointer: dict, index, records: list[dict], means: list, audio
) -> None:
    """Write the snapshot folder, then swing index/CURRENT to it in one rename."""
    root = folder.path / "index"
    path = root / pointer["name"]
    path.mkdir(parents=True)
    body = json.dumps(records).encode()
    matrix = np.array(means, dtype=np.float32).reshape(-1, folder.meta.dim)
    faiss.write_index(index, str(path / "frames.faiss"))  # by name: no second copy in memory
    with open(path / "frames.faiss", "rb") as f:
        os.fsync(f.fileno())
    if audio is not None:
        faiss.write_index_binary(audio[0], str(path / "audio.faiss"))
        with open(path / "audio.faiss", "rb") as f:
            os.fsync(f.fileno())
        write_atomic(path / "audio_keys.npy", lambda f: np.save(f, audio[1]))
    write_atomic(path / "videos.json", lambda f: f.write(body))
    write_atomic(path / "means.npy", lambda f: np.save(f, matrix))
    fsync_dir(path)
    fsync_dir(root)
    previous = read_pointer(folder)
    pointer_body = json.dumps(pointer).encode()
    write_atomic(root / SNAPSHOT_POINTER, lambda f: f.write(pointer_body))
    # Keep the new snapshot and the one it replaces (a reader may be loading it); anything
    # else is older or a build that died before publishing.
    keep = {pointer["name"], previous["name"] if previous else None}
    for stale in root.iterdir():
        if stale.is_dir() and stale.name not in keep:
            shutil.rmtree(stale, ignore_errors=True)
