"""A server's named libraries and their parameters, from a TOML configuration file.

[libraries.main]                  # every key optional; the defaults are shown
index = "flat"                    # "flat": exact search. "ivfpq": exact until
                                  # `rci build-index` trains an IVF-PQ snapshot
nprobe = 128                      # IVF lists each query frame visits
nlist = 0                         # IVF lists; 0 picks about 4 sqrt(fingerprints)
pq_m = 32                         # PQ sub-quantizers: 32 bytes per fingerprint
train_at = 1000000                # beyond this many, the first build starts by itself
rebuild_growth = 2.0              # and a rebuild once the library has grown this much
                                  # since its snapshot (0: never by itself)
auto_build = true                 # (false: status advises builds; `rci build-index`)
fingerprint_interval = 0.0        # seconds between stored fingerprints; 2.0 keeps
                                  # one frame in 2 s, 0 every frame ingest sampled
k = 10                            # neighbours per query frame
candidates = 5                    # videos by votes
min_similarity = 0.2              # a neighbour below this cosine casts no vote
video_candidates = 5              # videos by mean descriptor (0: off)
video_min_similarity = 0.5        # their loose cosine threshold
audio_k = 10                      # audio: library windows per query window (flat index)
audio_candidates = 5              # videos by audio votes (0: no audio recall)
audio_min_similarity = 0.7        # a window below this cosine (1 - 2 x bit errors / 256)
                                  # casts no vote
audio_nprobe = 32                 # with "ivfpq", snapshots also hold a binary IVF over the
                                  # audio windows (from 10,000 of them): lists an audio
                                  # window visits
verdict = "matchlite"             # who decides `reproduced`: MatchLite, the learned pair
                                  # scorer, or "heuristic", the alignment's hand-set rule
                                  # (an A/B)
store = "local"                   # "milvus": the fingerprints live in Milvus
                                  # (rci.library.milvus), with:
uri = ""                          # a Milvus Lite file (relative: in the data directory;
                                  # the server opens it once for all its models) or
                                  # http://host:19530 (a Milvus server or cluster)
token = ""                        # "user:password" or an API key
collection = ""                   # the collections' prefix ("": rci_<library>)
milvus_index = "FLAT"             # the frames' index: FLAT, IVF_FLAT (Lite and server),
                                  # HNSW, IVF_PQ, DISKANN, GPU_* (server)
index_params = {}                 # e.g. {M = 16, efConstruction = 200}
search_params = {}                # e.g. {ef = 64} or {nprobe = 32}
consistency = "Strong"            # Strong, Bounded, Session or Eventually
milvus_timeout = 10.0             # seconds a call to Milvus may take: then the request
                                  # fails, saying so, and the next one tries again
"""

from __future__ import annotations

import dataclasses
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10, the NGC image's
    import tomli as tomllib

from rci.errors import (
    DescriptorMismatchError,
    NotFoundError,
    RciError,
    UnknownLibraryError,
    quote,
)
from rci.library.build import MIN_FINGERPRINTS, has_grown
from rci.library.index import (
    LibraryIndex,
    SearchableLibrary,
    describe_snapshot,
    pointer_time,
    read_pointer,
)
from rci.library.milvus import MilvusLibrary, MilvusSettings, MilvusUnavailableError
from rci.library.store import (
    LIBRARY_NAME,
    LibraryFolder,
    LibraryWriter,
    Stored,
    VideoFingerprints,
)
from rci.match.matchlite import Verdict
from rci.match.recall import RecallParams, check_audio_views, recall_recurring
from rci.match.views import QueryViews, checked_views

# A build that failed (too little memory, say) is not started again for this long: every
# add would otherwise start the same minutes-long failure.
BUILD_RETRY_S = 3600.0


@dataclass(frozen=True)
class LibrarySettings:
    """One library's index and recall parameters (see the module docstring)."""

    index: str = "flat"
    nprobe: int = 128  # keeps a copy's source in the top 10: 0.99 at 1M, 0.94 at 10M
    audio_nprobe: int = 32
    nlist: int = 0
    pq_m: int = 32
    train_at: int = 1_000_000
    # Doubling: nlist (~4 sqrt(n)) is then off by sqrt(2), and while the library grows the
    # fingerprints a restarted reader adds on top of the snapshot stay below what it holds.
    rebuild_growth: float = 2.0
    auto_build: bool = True
    fingerprint_interval: float = 0.0
    # MatchLite decides; "heuristic" has the hand-set rule decide (docs/matchlite.md).
    verdict: str = "matchlite"
    # A small JPEG per fingerprint for reviewers (rci_thumbnails, rci_client.report); false
    # stores none (the report then shows the query's frames alone).
    thumbnails: bool = True
    # Where the fingerprints live: "local", this server's data directory, or "milvus"
    # (rci.library.milvus), with the keys below.
    store: str = "local"
    uri: str = ""  # a Milvus Lite file (relative: in the data directory) or http://host:19530
    token: str = ""  # "user:password" or an API key; "" for none
    collection: str = ""  # the collections' prefix; "" names them rci_<library>
    milvus_index: str = "FLAT"  # the frames' index: FLAT, IVF_FLAT; a server HNSW, IVF_PQ, ...
    index_params: dict = field(default_factory=dict)  # e.g. {M = 16, efConstruction = 200}
    search_params: dict = field(default_factory=dict)  # e.g. {ef = 64} or {nprobe = 32}
    consistency: str = "Strong"  # Strong, Bounded, Session or Eventually
    milvus_timeout: float = 10.0  # seconds a call to Milvus may take before the request fails
    recall: RecallParams = field(default_factory=RecallParams)

    def __post_init__(self) -> None:
        if self.index not in ("flat", "ivfpq"):
            raise ValueError(f"index must be 'flat' or 'ivfpq', got {self.index!r}")
        if self.store not in ("local", "milvus"):
            raise ValueError(f"store must be 'local' or 'milvus', got {self.store!r}")
        if self.store == "milvus":
            if self.index != "flat":
                raise ValueError("a milvus library is indexed by milvus_index, not index")
            self.milvus_settings(Path("."))  # checks uri, collection and consistency
        if min(self.nprobe, self.audio_nprobe, self.pq_m) < 1 or min(self.nlist, self.train_at) < 0:
            raise ValueError("nprobe, audio_nprobe and pq_m must be >= 1, nlist and train_at >= 0")
        if not (self.rebuild_growth == 0 or self.rebuild_growth > 1):
            raise ValueError(f"rebuild_growth must be 0 or > 1, got {self.rebuild_growth}")
        Verdict.parse(self.verdict)
        if not 0 <= self.fingerprint_interval <= 60:
            raise ValueError(
                f"fingerprint_interval must be 0-60 seconds, got {self.fingerprint_interval}"
            )

    def milvus_settings(self, data_dir: Path) -> MilvusSettings:
        """Where a milvus library's collections live; a relative Lite file is in `data_dir`."""
        uri = self.uri
        if uri and "://" not in uri:
            uri = str((Path(data_dir) / uri).resolve())
        return MilvusSettings(
            uri=uri, token=self.token, prefix=self.collection, index_type=self.milvus_index,
            index_params=dict(self.index_params), search_params=dict(self.search_params),
            consistency=self.consistency, timeout=self.milvus_timeout,
        )  # fmt: skip

    @classmethod
    def from_table(cls, table: dict) -> LibrarySettings:
        """Settings from one [libraries.NAME] table; unknown keys and bad values raise."""
        own = {f.name for f in dataclasses.fields(cls)} - {"recall"}
        recall = {f.name for f in dataclasses.fields(RecallParams)}
        unknown = set(table) - own - recall
        if unknown:
            raise ValueError(f"unknown keys {sorted(unknown)}; known: {sorted(own | recall)}")
        defaults = {**dataclasses.asdict(cls()), **dataclasses.asdict(RecallParams())}
        for name, value in table.items():
            kind = type(defaults[name])
            if kind is bool and isinstance(value, bool):
                continue
            # TOML keeps 2 and 2.0 apart: an int where a float is expected is fine.
            fits = isinstance(value, kind) or (kind is float and isinstance(value, int))
            if isinstance(value, bool) or not fits:
                raise ValueError(f"{name} must be {kind.__name__}, got {value!r}")
        params = RecallParams(**{k: v for k, v in table.items() if k in recall})
        return cls(**{k: v for k, v in table.items() if k in own}, recall=params)


def build_due(
    settings: LibrarySettings, pointer: dict | None, fingerprints: int
) -> list[str] | None:
    """The `rci build-index` condition flag when an IVF-PQ build is due for a library of
    `fingerprints` whose snapshot is `pointer`: ["--if-missing"] past train_at without one,
    ["--if-grown", G] past rebuild_growth; else None."""
    if pointer is None:
        if fingerprints >= max(settings.train_at, MIN_FINGERPRINTS):
            return ["--if-missing"]
    elif settings.rebuild_growth and has_grown(pointer, fingerprints, settings.rebuild_growth):
        return ["--if-grown", str(settings.rebuild_growth)]
    return None


def read_config(path: Path) -> dict[str, LibrarySettings]:
    """Library name -> settings from a TOML file of [libraries.NAME] tables, in file order."""
    try:
        document = tomllib.loads(Path(path).read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ValueError(f"cannot read library configuration {path}: {exc}") from exc
    tables = document.get("libraries")
    if not isinstance(tables, dict) or not tables or set(document) != {"libraries"}:
        raise ValueError(f"{path}: expected [libraries.NAME] tables and nothing else")
    settings = {}
    for name, table in tables.items():
        if not isinstance(table, dict):
            raise ValueError(f"{path}: libraries.{name} must be a table")
        check_library_name(name)
        try:
            settings[name] = LibrarySettings.from_table(table)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{path}: libraries.{name}: {exc}") from exc
    return settings


def check_library_name(name: str) -> str:
    """The name itself if usable as a library's folder: lowercase letters, digits, - and _."""
    if not LIBRARY_NAME.match(name):
        raise ValueError(
            f"library name {quote(name)} must be 1-64 lowercase letters, digits, '-' or '_', "
            "starting with a letter or digit"
        )
    return name


def _python() -> str:
    """This interpreter, or inside a Triton stub (whose executable is not Python) the first
    python3 on PATH, which `rci serve` sets to this environment's."""
    if Path(sys.executable).name.startswith("python"):
        return sys.executable
    return shutil.which("python3") or "python3"


def thin(video: VideoFingerprints, interval: float) -> VideoFingerprints:
    """Keep the first fingerprint, then each one at least `interval` seconds after the last
    kept, less a quarter interval: ingest sampled at the interval may have moved a frame
    that far to a keyframe (rci.preprocess.media.DecodeLimits.keyframe_snap)."""
    if interval <= 0:
        return video
    keep, last = [], -np.inf
    for n, t in enumerate(video.timestamps):
        if t >= last + interval * 0.75:
            keep.append(n)
            last = t
    pictures = video.thumbnails
    return dataclasses.replace(
        video,
        embeddings=video.embeddings[keep],
        timestamps=video.timestamps[keep],
        thumbnails=None if pictures is None else [pictures[n] for n in keep],
    )


MAX_QUERY_FRAMES = 1 << 16  # 18 h at 1 fps: bounds a recall's search time and memory


class Libraries:
    """The configured libraries of one server, opened lazily; unknown names are refused."""

    def __init__(
        self,
        data_dir: Path,
        settings: dict[str, LibrarySettings] | list[str],
        *,
        descriptor: str,
        dim: int,
    ) -> None:
        if not isinstance(settings, dict):  # bare names take the defaults
            settings = {name: LibrarySettings() for name in settings}
        for name, library in settings.items():
            check_library_name(name)
            if library.index == "ivfpq" and dim % library.pq_m:
                raise ValueError(f"library {name!r}: pq_m {library.pq_m} must divide {dim}")
        self.data_dir = Path(data_dir)
        self.settings = dict(settings)
        self.names = list(settings)
        self.descriptor = descriptor
        self.dim = dim
        self._folders: dict[str, LibraryFolder] = {}
        self._indexes: dict[str, LibraryIndex] = {}
        self._milvus: dict[str, MilvusLibrary] = {}
        self._builds: dict[str, subprocess.Popen] = {}
        self._build_started: dict[str, float] = {}  # time.monotonic() seconds

    def _known(self, name: str) -> LibrarySettings:
        if name not in self.settings:
            raise UnknownLibraryError(
                f"unknown library {quote(name)}; this server has {self.names}"
            )
        return self.settings[name]

    def is_milvus(self, name: str) -> bool:
        return self._known(name).store == "milvus"

    def milvus(self, name: str) -> MilvusLibrary:
        """Library `name`'s collections in Milvus, connected on first use (a failed
        connection is tried again by the next request)."""
        if name not in self._milvus:
            settings = self._known(name).milvus_settings(self.data_dir)
            self._milvus[name] = MilvusLibrary(
                settings, name, descriptor=self.descriptor, dim=self.dim
            )
        return self._milvus[name]

    def folder(self, name: str) -> LibraryFolder:
        if self._known(name).store != "local":
            raise RciError(f"library {name!r} is kept in Milvus, not in a folder")
        if name not in self._folders:
            self._folders[name] = LibraryFolder(
                self.data_dir, name, descriptor=self.descriptor, dim=self.dim
            )
        return self._folders[name]

    def fingerprint_interval(self, name: str) -> float:
        """Seconds between the fingerprints library `name` keeps (0: every sampled frame)."""
        return self._known(name).fingerprint_interval

    def writer(self, name: str) -> LibraryWriter:
        return LibraryWriter(self.folder(name))

    def add(self, name: str, video: VideoFingerprints, *, replace: bool = False) -> Stored:
        """Store `video` at the library's fingerprint interval (Stored: fingerprints kept,
        whether it replaced a video of its id).
        The add that takes an IVF-PQ library past train_at starts its first build, and the
        one that grows it rebuild_growth-fold since its snapshot a rebuild."""
        settings = self._known(name)
        video.check(self.dim)  # before thinning reads its times
        if not settings.thumbnails or settings.store == "milvus":  # Milvus keeps no pictures
            video = dataclasses.replace(video, thumbnails=None)
        video = thin(video, settings.fingerprint_interval)
        if settings.store == "milvus":
            return self.milvus(name).add(video, replace=replace)
        stored = self.writer(name).add(video, replace=replace)
        if settings.index == "ivfpq" and settings.auto_build:
            self._start_build(name, settings)
        return stored

    def delete(self, name: str, video_id: str) -> int:
        """Remove `video_id` from library `name`; its fingerprint count. NotFoundError if
        the library does not hold it."""
        if self.is_milvus(name):
            return self.milvus(name).delete(video_id)
        return self.writer(name).delete(video_id)

    def _start_build(self, name: str, settings: LibrarySettings) -> None:
        """`rci build-index` as a detached process when build_due() says so and no build
        started here still runs or failed within BUILD_RETRY_S; the build checks again
        under its lock (another server may have built meanwhile)."""
        last = self._builds.get(name)
        if last is not None and last.poll() is None:
            return
        if last is not None and last.returncode != 0:
            if time.monotonic() - self._build_started[name] < BUILD_RETRY_S:
                return
        folder = self.folder(name)
        fingerprints = folder.live_records.catch_up().fingerprints
        condition = build_due(settings, read_pointer(folder), fingerprints)
        if condition is None:
            return
        self._builds[name] = subprocess.Popen(
            [_python(), "-m", "rci_client.cli", "build-index", *condition, "--library", name,
             "--data-dir", str(self.data_dir), "--descriptor", self.descriptor],
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # a build outlives its request and a stopping server
        )  # fmt: skip
        self._build_started[name] = time.monotonic()

    def index(self, name: str) -> SearchableLibrary:
        """The library's index, caught up with every video acknowledged so far."""
        if self.is_milvus(name):
            return self.milvus(name)  # every read goes to Milvus
        if name not in self._indexes:
            folder = self.folder(name)  # an unknown name fails here
            settings = self.settings[name]
            self._indexes[name] = LibraryIndex(
                folder,
                use_snapshots=settings.index == "ivfpq",
                nprobe=settings.nprobe,
                audio_nprobe=settings.audio_nprobe,
            )
        else:
            self._indexes[name].refresh()
        return self._indexes[name]

    def recall(
        self, names: list[str], query: np.ndarray | QueryViews, audio: np.ndarray | None = None
    ) -> tuple[list[tuple[str, VideoFingerprints]], np.ndarray]:
        """(library, candidate) for a query's (T, D) embeddings or its QueryViews (mirrored
        view, penalties) and its (V, A, 32) uint8 audio views if any, each named library
        searched with its own recall parameters, and each query frame's recurrence (T,)
        int32 summed over the libraries; unknown names fail before any search."""
        views = QueryViews.of(query)
        checked_views(views.embeddings, views.mirrored, views.penalty, self.dim, whole=views.whole)
        audio = check_audio_views(audio, 2 * MAX_QUERY_FRAMES)
        if len(views) > MAX_QUERY_FRAMES:
            raise RciError(f"{len(views)} query frames; at most {MAX_QUERY_FRAMES}")
        if not names or len(set(names)) != len(names):
            raise RciError(f"LIBRARY must name one or more distinct libraries, got {quote(names)}")
        indexes = [self.index(name) for name in names]
        found, recurring = [], np.zeros(len(views), np.int32)
        for name, index in zip(names, indexes, strict=True):
            videos, counts = recall_recurring(index, views, self.settings[name].recall, audio)
            found += [(name, video) for video in videos]
            recurring += counts
        return found, recurring

    def thumbnails(
        self, name: str, video_id: str, times: np.ndarray
    ) -> tuple[np.ndarray, list[bytes]]:
        """Library `name`'s pictures of `video_id` nearest `times` (N,) seconds: the
        fingerprint times they show (N,) and the JPEGs; ((0,), []) when it has none.
        NotFoundError for an id the library does not hold."""
        if self.is_milvus(name):
            self.milvus(name).video(video_id)  # NotFoundError; Milvus keeps no pictures
            return np.zeros(0, np.float32), []
        folder = self.folder(name)
        record = folder.live_records.catch_up().videos.get(video_id)
        if record is None:
            raise NotFoundError(f"video id {quote(video_id)} is not in library {name!r}")
        try:
            return folder.load_thumbnails(record, times)
        except FileNotFoundError:  # replaced or deleted since the record was read
            raise NotFoundError(
                f"video id {quote(video_id)} changed in library {name!r} meanwhile; ask again"
            ) from None

    def status(self, names: list[str]) -> list[dict]:
        """Per library: name, descriptor, videos, fingerprints, index, or what bars it. Read
        from the log and the snapshot pointer, so a status model holds no index."""
        out = []
        for name in names:
            try:
                if self.is_milvus(name):
                    out.append(self._milvus_status(name))
                    continue
                folder = self.folder(name)
            except (DescriptorMismatchError, MilvusUnavailableError) as exc:
                out.append({"name": name, "error": str(exc)})
                continue
            settings = self.settings[name]
            live = folder.live_records.catch_up()
            fingerprints = live.fingerprints
            pointer = read_pointer(folder) if settings.index == "ivfpq" else None
            index = (
                "exact"
                if pointer is None
                else describe_snapshot(pointer, settings.nprobe, settings.audio_nprobe)
            )
            if settings.index == "ivfpq" and pointer is None:  # say what comes next
                at = max(settings.train_at, MIN_FINGERPRINTS)
                later = f"from {at} fingerprints" if settings.auto_build else "by rci build-index"
                index = f"exact (IVF-PQ {later})"
            due = (
                settings.index == "ivfpq" and build_due(settings, pointer, fingerprints) is not None
            )
            out.append(
                {
                    "name": name,
                    "descriptor": folder.meta.descriptor,
                    "dim": folder.meta.dim,
                    "videos": len(live.videos),
                    "fingerprints": fingerprints,
                    "audio_fingerprints": live.audio_fingerprints,
                    # Stored before audio fingerprints existed: found by their pictures only.
                    "videos_without_audio_fingerprints": live.without_audio,
                    "index": index,
                    # When the snapshot in use was published (Unix seconds); None: exact.
                    "index_built_at": None if pointer is None else pointer_time(folder),
                    "build_advised": due,
                }
            )
        return out

    def _milvus_status(self, name: str) -> dict:
        library = self.milvus(name)
        return {
            "name": name,
            "descriptor": self.descriptor,
            "dim": self.dim,
            "videos": library.video_count(),
            "fingerprints": library.fingerprint_count(),
            "audio_fingerprints": library.audio_count(),
            "videos_without_audio_fingerprints": library.videos_without_audio(),
            "index": library.describe(),
            "index_built_at": None,  # Milvus builds and maintains its index itself
            "build_advised": False,
        }
