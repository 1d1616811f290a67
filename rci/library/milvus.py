"""A library whose fingerprints live in Milvus: a server or cluster (`uri` http://host:19530),
or Milvus Lite, the embedded engine in one file (`uri` a path). Replicas that share one
Milvus hold no library state of their own.

Three collections per library, named `{prefix}_videos`, `{prefix}_frames`, `{prefix}_audio`:

- videos: one row per stored video, primary key its video key; the id, duration,
  fingerprint count, audio kind and count, the time it was added, and its mean descriptor
  (video-level recall). A video is live from the moment its row is inserted: frames and
  audio rows go in first, so a reader never finds a video without its fingerprints.
- frames: one row per fingerprint, primary key `key << FRAME_BITS | frame` (the local
  store's faiss ids, so recall reads both alike), its time and full-precision vector:
  alignment reads a candidate's fingerprints back from here.
- audio: one row per audio window of this server's fingerprint (AUDIO_PRINT), ids as the
  frames', packed bits as a binary vector (Hamming).

- claims: one row per write in progress (`{prefix}_claims`): the writer's new key, the
  video id and every key it may drop. Milvus has no transactions and no unique fields, so
  writers of one video id take turns through these rows (_claim), whichever process or
  replica they run in; a claim its writer left behind (a crash) is swept by the next writer
  of that id or the next server to open the library, and the rows it names are put right.

The library's descriptor and dimension are the videos collection's description; a library
made by another model is refused (DescriptorMismatchError).
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import re
import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import numpy as np

from rci.errors import AlreadyExistsError, DescriptorMismatchError, NotFoundError, RciError, quote
from rci.library.index import fingerprint_ids, mean_descriptor
from rci.library.store import FRAME_BITS, MAX_VIDEO_ID, Stored, VideoFingerprints
from rci.preprocess.audio_prints import AUDIO_PRINT, WINDOW_BYTES, AudioPrints

CONSISTENCY = ("Strong", "Bounded", "Session", "Eventually")
INSERT_ROWS = 2048  # rows per insert call: 4 MB of 512-d vectors, under Milvus's 64 MB message
KEY_BITS = 63 - FRAME_BITS  # video keys: frame ids must stay positive int64
PREFIX = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,200}$")  # Milvus collection names
LITE_INDEXES = ("FLAT", "IVF_FLAT", "AUTOINDEX")  # what Milvus Lite 2.5 builds
CLAIM_STALE = 300.0  # seconds (at least 4 call timeouts): an older claim's writer is gone


# Milvus Lite opens a file from one process only, and a server's models are several
# processes: the server starts one Milvus Lite per file (start_lite) and tells its models
# where to reach it, as JSON {absolute file path: "unix:SOCKET"} in this variable.
LITE_ENV = "RCI_MILVUS_LITE"


def start_lite(paths: list[Path]) -> tuple[dict[str, str], list]:
    """Start Milvus Lite on each file: ({absolute path: its socket uri}, the servers, to
    stop()). MilvusUnavailableError when one cannot start (another process holds it)."""
    from milvus_lite.server import Server

    uris, servers = {}, []
    for path in dict.fromkeys(Path(p).resolve() for p in paths):
        path.parent.mkdir(parents=True, exist_ok=True)
        server = Server(str(path))
        if not (server.init() and server.start()):
            for started in servers:
                started.stop()
            raise MilvusUnavailableError(
                f"Milvus Lite could not open {path}: another process holds it (another "
                "server, or a tool) or its folder is not writable"
            )
        uris[str(path)], servers = server.uds_path, [*servers, server]
    return uris, servers


def connection_uri(uri: str) -> str:
    """Where to connect for `uri`: a Milvus Lite file this process's server started (LITE_ENV)
    is reached over its socket; anything else as it is."""
    if "://" in uri:
        return uri
    return json.loads(os.environ.get(LITE_ENV, "{}")).get(str(Path(uri).resolve()), uri)


class MilvusUnavailableError(RciError):
    """Milvus cannot be reached, or refused the credentials."""

    code = "UNAVAILABLE"


class BusyError(RciError):
    """Another writer held a video id for longer than one call may take."""

    code = "UNAVAILABLE"


@dataclass(frozen=True)
class MilvusSettings:
    """Where a library's collections live and how they are indexed."""

    uri: str  # a file path (Milvus Lite) or http(s)://host:port (a Milvus server)
    token: str = ""  # "user:password" or an API key; "" for none
    prefix: str = ""  # collection names' prefix; "" names them rci_<library>
    index_type: str = "FLAT"  # the frames' vector index: FLAT or IVF_FLAT (and, on a
    # server, HNSW, IVF_PQ, DISKANN, GPU_* ...)
    index_params: dict = field(default_factory=dict)  # e.g. {"M": 16, "efConstruction": 200}
    search_params: dict = field(default_factory=dict)  # e.g. {"ef": 64} or {"nprobe": 32}
    consistency: str = "Strong"  # what a search sees of writes acknowledged before it
    timeout: float = 10.0  # seconds a call to the engine may take, connecting included

    def __post_init__(self) -> None:
        if not self.uri:
            raise ValueError("a milvus library needs a uri: a file path or http://host:port")
        if self.consistency not in CONSISTENCY:
            raise ValueError(f"consistency must be one of {CONSISTENCY}, got {self.consistency!r}")
        if not 0 < self.timeout <= 600:
            raise ValueError(f"timeout must be 0-600 seconds, got {self.timeout}")
        if self.prefix and not PREFIX.match(self.prefix):
            raise ValueError(f"prefix must be letters, digits and _, got {self.prefix!r}")
        if self.lite and self.index_type not in LITE_INDEXES:
            raise ValueError(
                f"Milvus Lite builds {'/'.join(LITE_INDEXES)} indexes, not {self.index_type!r}: "
                "use a Milvus server for others"
            )

    @property
    def lite(self) -> bool:
        return "://" not in self.uri


class MilvusLibrary:
    """One library's collections: adds, replaces and deletes videos, and searches them as
    rci.library.index.LibraryIndex does (frame ids, video means, audio windows)."""

    def __init__(self, settings: MilvusSettings, name: str, *, descriptor: str, dim: int):
        from pymilvus import MilvusClient
        from pymilvus.exceptions import MilvusException

        self.settings, self.name, self.dim = settings, name, dim
        self.descriptor = descriptor
        prefix = settings.prefix or f"rci_{name}"
        if not PREFIX.match(prefix):
            raise ValueError(f"library {name!r} needs a prefix of letters, digits and _")
        self.videos, self.frames, self.audio, self.claims = (
            f"{prefix}_{c}" for c in ("videos", "frames", "audio", "claims")
        )
        self._errors = (MilvusException, ConnectionError, OSError)
        self._stale = max(CLAIM_STALE, 4 * settings.timeout)
        self._unfinished: set[int] = set()  # own claims Milvus refused to clear: dead
        if settings.lite:
            Path(settings.uri).parent.mkdir(parents=True, exist_ok=True)
        try:
            client = MilvusClient(
                uri=connection_uri(settings.uri), token=settings.token, timeout=settings.timeout
            )
            self.client = _Bounded(client, settings.timeout)
        except self._errors as exc:
            raise MilvusUnavailableError(
                f"library {name!r}: Milvus at {settings.uri!r} is not reachable: {exc}"
            ) from None
        with self._calls():
            self._ensure_collections()
            self.sweep()

    @contextlib.contextmanager
    def _calls(self) -> Iterator[None]:
        """Milvus's own errors as MilvusUnavailableError naming the library and uri."""
        try:
            yield
        except self._errors as exc:
            detail = " ".join(str(getattr(exc, "message", None) or exc).split())[:300]
            raise MilvusUnavailableError(
                f"library {self.name!r}: Milvus at {self.settings.uri!r} failed: {detail}"
            ) from None

    def _tag(self) -> str:
        return f"rci library; descriptor={self.descriptor}; dim={self.dim}"

    def _ensure_collections(self) -> None:
        from pymilvus import DataType

        if self.client.has_collection(self.videos):
            found = self.client.describe_collection(self.videos).get("description", "")
            if found != self._tag():
                raise DescriptorMismatchError(
                    f"library {self.name!r} in Milvus ({self.videos}) is {found!r}; this "
                    f"server runs descriptor {self.descriptor!r} (dim {self.dim}). Serve with "
                    "the library's descriptor or ingest into a new library."
                )
        level = self.settings.consistency
        specs = {
            self.frames: (
                [("key", DataType.INT64, {}), ("time", DataType.FLOAT, {}),
                 ("vector", DataType.FLOAT_VECTOR, {"dim": self.dim})],
                ("vector", self.settings.index_type, "IP", self.settings.index_params),
            ),
            self.audio: (
                [("key", DataType.INT64, {}), ("time", DataType.FLOAT, {}),
                 ("bits", DataType.BINARY_VECTOR, {"dim": WINDOW_BYTES * 8})],
                ("bits", "BIN_FLAT", "HAMMING", {}),
            ),
            self.videos: (
                [("video_id", DataType.VARCHAR, {"max_length": 4 * MAX_VIDEO_ID}),
                 ("duration", DataType.FLOAT, {}), ("count", DataType.INT64, {}),
                 ("audio_kind", DataType.VARCHAR, {"max_length": 64}),
                 ("audio_count", DataType.INT64, {}), ("added", DataType.INT64, {}),
                 ("mean", DataType.FLOAT_VECTOR, {"dim": self.dim})],
                ("mean", "FLAT", "IP", {}),
            ),
        }  # fmt: skip
        # Milvus wants a vector in every collection: claims carry a constant one.
        claims = [("video_id", DataType.VARCHAR, {"max_length": 4 * MAX_VIDEO_ID}),
                  ("added", DataType.INT64, {}), ("keys", DataType.VARCHAR, {"max_length": 4096}),
                  ("unused", DataType.FLOAT_VECTOR, {"dim": 2})]  # fmt: skip
        specs = {self.claims: (claims, ("unused", "FLAT", "L2", {})), **specs}
        # The videos collection last: its description marks the library as made.
        for collection, (fields, (vector, kind, metric, params)) in specs.items():
            if self.client.has_collection(collection):
                self.client.load_collection(collection)
                continue
            schema = self.client.create_schema(auto_id=False, description=self._tag())
            schema.add_field("id", DataType.INT64, is_primary=True)
            for name, dtype, extra in fields:
                schema.add_field(name, dtype, **extra)
            index = self.client.prepare_index_params()
            index.add_index(vector, index_type=kind, metric_type=metric, params=params)
            self.client.create_collection(
                collection, schema=schema, index_params=index,
                consistency_level="Strong" if collection == self.claims else level,
            )  # fmt: skip

    # -- writes ---------------------------------------------------------------------------

    def add(self, video: VideoFingerprints, *, replace: bool = False) -> Stored:
        """Store `video`; with `replace`, swap out a video held under its id (readers see the
        old one or the new one, never neither). AlreadyExistsError for a held id otherwise."""
        video.check(self.dim)
        with self._calls(), self._claim(video.video_id) as claim:
            key, old = claim.key, claim.rows
            if old and not replace:
                raise AlreadyExistsError(
                    f"video id {quote(video.video_id)} is already in library {self.name!r}"
                )
            self._insert_fingerprints(key, video, claim)
            claim.check()  # before the row that makes it live
            audio = (
                video.audio if video.audio is not None and video.audio.kind == AUDIO_PRINT else None
            )
            self.client.insert(self.videos, [{
                "id": key, "video_id": video.video_id, "duration": float(video.duration),
                "count": len(video.embeddings), "added": time.time_ns(),
                "audio_kind": "" if audio is None else audio.kind,
                "audio_count": 0 if audio is None else len(audio.bits),
                "mean": mean_descriptor(video.embeddings),
            }])  # fmt: skip
            for row in old:  # after the new row, as the local store's replacing record
                self._drop(row["id"])
        return Stored(len(video.embeddings), bool(old))

    def delete(self, video_id: str) -> int:
        """Remove a video; returns its fingerprint count. NotFoundError if not held."""
        with self._calls(), self._claim(video_id) as claim:
            rows = claim.rows
            if not rows:
                raise NotFoundError(f"video id {quote(video_id)} is not in library {self.name!r}")
            for row in rows:
                self._drop(row["id"])
        return int(rows[0]["count"])

    @contextlib.contextmanager
    def _claim(self, video_id: str) -> Iterator[_Claim]:
        """Write `video_id` alone among every process sharing this Milvus: yields a new video
        key and the id's rows (newest first) as they stand. BusyError when other writers
        hold the id for longer than a call's timeout.

        A writer inserts its claim, then reads the id's claims (Strong): it goes ahead only
        if it sees no live claim but its own, else it withdraws and tries again after a
        random pause. Of two writers the later insert sees the earlier claim, so no two go
        ahead at once. Holding the turn, it settles the id's dead claims (stale ones, and
        this process's own that failed to clear) before it writes."""
        key, deadline = self._new_key(), time.monotonic() + self.settings.timeout
        while True:
            rows = self._rows(video_id)
            mine = {"id": key, "video_id": video_id, "added": time.time_ns(),
                    "keys": json.dumps([key, *(r["id"] for r in rows)])}  # fmt: skip
            try:
                self._put_claim(mine)  # a timed-out insert may still land: inside the try
                rivals = [c for c in self._claims(f"video_id == {_string(video_id)}")
                          if c["id"] != key]  # fmt: skip
                dead = [c for c in rivals if self._is_stale(c) or c["id"] in self._unfinished]
                if len(dead) == len(rivals):
                    for claim in dead:
                        self._settle(claim)
                        self._unfinished.discard(claim["id"])
                    now = self._rows(video_id)
                    if not dead or {r["id"] for r in now} <= {r["id"] for r in rows}:
                        rows = now  # a settle only drops rows this claim already names
                        break
                self.client.delete(self.claims, ids=[key])
            except BaseException:
                self._release(mine, settle=False)  # wrote nothing, holds no turn to settle
                raise
            if time.monotonic() > deadline:
                raise BusyError(
                    f"video id {quote(video_id)} in library {self.name!r} is being written "
                    "by another request or replica; try again"
                )
            time.sleep(random.uniform(0.01, 0.2))
        try:
            yield _Claim(key, rows, time.monotonic() + self._stale / 2, self.name)
        except BaseException:
            self._release(mine, settle=True)  # undo what a failed write left half done
            raise
        self._release(mine, settle=False)

    def _put_claim(self, claim: dict) -> None:
        self.client.insert(self.claims, [{**claim, "unused": [0.0, 0.0]}])

    def _release(self, claim: dict, *, settle: bool) -> None:
        """Give a claim back, settling it first after a failed write; when Milvus refuses,
        remember it: this process's next writer of the id settles it under its turn."""
        try:
            if settle:
                self._settle(claim)
            else:
                self.client.delete(self.claims, ids=[claim["id"]])
        except self._errors:
            self._unfinished.add(claim["id"])

    def _claims(self, where: str) -> list[dict]:
        return self.client.query(
            self.claims, filter=where, output_fields=["id", "video_id", "added", "keys"],
            consistency_level="Strong",
        )  # fmt: skip

    def _is_stale(self, claim: dict) -> bool:
        return time.time_ns() - claim["added"] > self._stale * 1e9

    def _settle(self, claim: dict) -> None:
        """Finish a claim whose write stopped, holding the id's turn: the id keeps the
        claim's own video row if it landed, else its newest; every other key the claim
        names or the id holds is dropped, fingerprints and audio included."""
        rows = [r["id"] for r in self._rows(claim["video_id"])]
        keep = claim["id"] if claim["id"] in rows else (rows[0] if rows else None)
        for key in {*json.loads(claim["keys"]), *rows} - {keep}:
            self._drop(key)
        self.client.delete(self.claims, ids=[claim["id"]])

    def sweep(self) -> int:
        """Settle every claim older than the stale age (writers that died), taking each id's
        turn; returns how many ids were settled."""
        with self._calls():
            ids = {c["video_id"] for c in self._claims("id >= 0") if self._is_stale(c)}
            for video_id in ids:
                with self._claim(video_id):
                    pass
        return len(ids)

    def _insert_fingerprints(
        self, key: int, video: VideoFingerprints, claim: _Claim | None = None
    ) -> None:
        """Frames then audio rows under `key`; with `claim`, checked before each batch."""
        ids = fingerprint_ids(key, len(video.embeddings))
        self._insert_rows(self.frames, [
            {"id": int(i), "key": key, "time": float(t), "vector": v}
            for i, t, v in zip(ids, video.timestamps, video.embeddings, strict=True)
        ], claim)  # fmt: skip
        audio = video.audio
        if audio is None or audio.kind != AUDIO_PRINT or not len(audio.bits):
            return
        ids = fingerprint_ids(key, len(audio.bits))
        self._insert_rows(self.audio, [
            {"id": int(i), "key": key, "time": float(t), "bits": b.tobytes()}
            for i, t, b in zip(ids, audio.times, audio.bits, strict=True)
        ], claim)  # fmt: skip

    def _insert_rows(self, collection: str, rows: list[dict], claim: _Claim | None) -> None:
        for start in range(0, len(rows), INSERT_ROWS):
            if claim is not None:
                claim.check()
            self.client.insert(collection, rows[start : start + INSERT_ROWS])

    def _drop(self, key: int) -> None:
        """The video row first: from then on no reader finds the video."""
        self.client.delete(self.videos, ids=[int(key)])
        self.client.delete(self.frames, filter=f"key == {int(key)}")
        self.client.delete(self.audio, filter=f"key == {int(key)}")

    def _new_key(self) -> int:
        """A video key no row or claim holds: random KEY_BITS bits, drawn again on a
        collision."""
        while True:
            key = secrets.randbits(KEY_BITS)
            held = (self.client.get(c, ids=[key], output_fields=["id"]) for c in
                    (self.videos, self.claims))  # fmt: skip
            if not any(held):
                return key

    def _rows(self, video_id: str) -> list[dict]:
        """The videos rows of `video_id`, newest first (two only while one replaces the
        other)."""
        rows = self.client.query(
            self.videos, filter=f"video_id == {_string(video_id)}",
            output_fields=["id", "count", "added", "duration", "audio_kind", "audio_count"],
            consistency_level="Strong",  # writers decide on these rows
        )  # fmt: skip
        return sorted(rows, key=lambda r: -r["added"])

    # -- reads ----------------------------------------------------------------------------

    def _count(self, collection: str, where: str = "") -> int:
        """Rows of `collection` matching the filter `where` ("": all)."""
        with self._calls():
            found = self.client.query(collection, filter=where, output_fields=["count(*)"])
        return int(found[0]["count(*)"])

    def video_count(self) -> int:
        return self._count(self.videos)

    def videos_without_audio(self) -> int:
        """Videos stored without this server's audio fingerprints (silent, or another
        kind): found by their pictures only."""
        return self._count(self.videos, 'audio_kind == ""')

    def fingerprint_count(self) -> int:
        return self._count(self.frames)

    @property
    def ntotal(self) -> int:
        """Fingerprints searchable (the frames collection's rows)."""
        return self.fingerprint_count()

    def audio_count(self) -> int:
        """Audio windows searchable."""
        return self._count(self.audio)

    def candidate(self, key: int) -> VideoFingerprints | None:
        """Video `key`'s fingerprints for alignment; None when it was deleted or replaced
        since the search found it (a replacement is found by the next search)."""
        try:
            return self.video_of_key(key)
        except NotFoundError:
            return None

    def refresh(self) -> None:
        """Nothing to catch up: every read goes to Milvus."""

    def search(self, xq: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Frame search: xq (nq, D) -> similarities (nq, k) float32, frame ids (nq, k) int64,
        -1 where fewer than k were found."""
        return self._search(
            self.frames, "vector", xq.astype(np.float32), k, self.settings.search_params
        )

    def search_means(self, xq: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Video-mean search: xq (nq, D) -> similarities (nq, k), video keys (nq, k)."""
        return self._search(self.videos, "mean", xq.astype(np.float32), k, {})

    def search_audio(self, xq: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Audio window search: xq (nq, WINDOW_BYTES) uint8 -> bit errors (nq, k) int32,
        window ids (nq, k), -1 if none."""
        data = [row.tobytes() for row in np.ascontiguousarray(xq, dtype=np.uint8)]
        D, I = self._search(self.audio, "bits", data, k, {}, metric="HAMMING")
        return D.astype(np.int32), I

    def _search(self, collection, field_name, data, k, params, metric="IP"):
        nq = len(data)
        D = np.full((nq, k), -np.inf if metric == "IP" else np.iinfo(np.int32).max, np.float32)
        I = np.full((nq, k), -1, np.int64)
        if nq == 0 or k == 0:
            return D, I
        with self._calls():
            hits = self.client.search(
                collection, data=list(data), anns_field=field_name, limit=k,
                search_params={"metric_type": metric, "params": params},
            )  # fmt: skip
        for q, found in enumerate(hits):
            for j, hit in enumerate(found[:k]):
                D[q, j], I[q, j] = hit["distance"], hit["id"]
        return D, I

    def video(self, video_id: str) -> VideoFingerprints:
        """A video's full-precision fingerprints and audio, read back from Milvus;
        NotFoundError if not held."""
        with self._calls():
            rows = self._rows(video_id)
        if not rows:
            raise NotFoundError(f"video id {quote(video_id)} is not in library {self.name!r}")
        return self.video_of_key(rows[0]["id"], video_id, rows[0])

    def video_of_key(
        self, key: int, video_id: str | None = None, row: dict | None = None
    ) -> VideoFingerprints:
        """Video `key`'s fingerprints in time order; NotFoundError when it is gone."""
        with self._calls():
            if row is None:
                found = self.client.get(self.videos, ids=[int(key)], output_fields=[
                    "video_id", "count", "duration", "audio_kind", "audio_count"])  # fmt: skip
                if not found:
                    raise NotFoundError(f"video key {key} is not in library {self.name!r}")
                row = found[0]
            frames = self._read(self.frames, key, row["count"], ["time", "vector"])
            sound = self._read(self.audio, key, row["audio_count"], ["time", "bits"])
        times = np.array([r["time"] for r in frames], np.float32)
        vectors = np.array([r["vector"] for r in frames], np.float32).reshape(-1, self.dim)
        audio = None
        if row["audio_kind"]:
            bits = np.frombuffer(b"".join(_bytes(r["bits"]) for r in sound), np.uint8)
            audio = AudioPrints(row["audio_kind"], np.array([r["time"] for r in sound], np.float32),
                                bits.reshape(-1, WINDOW_BYTES))  # fmt: skip
        return VideoFingerprints(
            video_id or row["video_id"], vectors, times, float(row["duration"]), audio
        )

    def _read(self, collection: str, key: int, count: int, fields: list[str]) -> list[dict]:
        """A video's rows of `collection` in id (time) order; NotFoundError if any is gone."""
        if count == 0:
            return []
        ids = fingerprint_ids(key, count).tolist()
        rows = []
        for start in range(0, count, INSERT_ROWS):
            rows += self.client.get(
                collection, ids=ids[start : start + INSERT_ROWS], output_fields=fields
            )
        if len(rows) != count:
            raise NotFoundError(f"video key {key} changed in library {self.name!r} meanwhile")
        return sorted(rows, key=lambda r: r["id"])

    def describe(self) -> str:
        """What serves searches, as status shows it."""
        params = ", ".join(
            f"{k} {v}"
            for k, v in {**self.settings.index_params, **self.settings.search_params}.items()
        )
        where = "Milvus Lite" if self.settings.lite else "Milvus"
        return (
            f"{where} {self.settings.index_type}"
            + (f" ({params})" if params else "")
            + f", {self.settings.consistency}"
        )

    def close(self) -> None:
        with contextlib.suppress(*self._errors):
            self.client.close()


@dataclass(frozen=True)
class _Claim:
    """A writer's turn at one video id: its new key and the id's rows when it began."""

    key: int
    rows: list[dict]
    expires: float  # time.monotonic(): half the stale age, the writer's own margin
    library: str

    def check(self) -> None:
        """MilvusUnavailableError once a sweeper may have settled this claim."""
        if time.monotonic() > self.expires:
            raise MilvusUnavailableError(f"library {self.library!r}: the write took too long")


class _Bounded:
    """A MilvusClient whose every call to the engine gives up after `timeout` seconds:
    pymilvus alone retries an unreachable engine for minutes, holding the request."""

    REMOTE = frozenset(
        ("has_collection", "describe_collection", "load_collection", "create_collection",
         "insert", "delete", "query", "get", "search")
    )  # fmt: skip

    def __init__(self, client, timeout: float) -> None:
        self._client, self._timeout = client, timeout

    def __getattr__(self, name: str):
        method = getattr(self._client, name)
        return partial(method, timeout=self._timeout) if name in self.REMOTE else method


def _string(value: str) -> str:
    """`value` as a Milvus filter string literal."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _bytes(value) -> bytes:
    """A binary vector as pymilvus returns it (bytes, or a list holding them)."""
    if isinstance(value, (bytes, bytearray)):
        return bytes(value)
    return b"".join(bytes(v) for v in value)
