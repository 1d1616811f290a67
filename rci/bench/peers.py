"""Peers a platform could pick instead, run on the same benchmark and scored the same way.

- pHash: a 64-bit DCT perceptual hash per frame at 1 fps, searched and aligned with RCI's own
  recall and alignment (only the frame descriptor differs).
- Chromaprint (fpcalc): audio fingerprints matched by offset voting; audio-only.
- MPEG-7 video signature: FFmpeg's `signature` filter, detectmode=full, compares every pair
  of its inputs; scored on one split (see SignaturePeer).
- videohash: one 64-bit hash per whole video (a collage of frames), compared by Hamming
  distance; it has no time axis, so a match spans both whole videos.
Each peer returns, per query, the same prediction records the runner makes from the server.
"""

from __future__ import annotations

import abc
import enum
import importlib.util
import json
import re
import shutil
import subprocess
import tempfile
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import faiss
import numpy as np
from PIL import Image
from scipy.fft import dctn

from rci.bench.metrics import match_records
from rci.errors import MediaError
from rci.library.store import VideoFingerprints
from rci.match.alignment import AlignParams
from rci.match.recall import RecallParams, vote
from rci.match.verdict import match_candidates
from rci.preprocess.media import sample_video

CHROMAPRINT_ITEM = 4096 / 3 / 11025  # seconds per fingerprint item (fpcalc's defaults)


class Peer(abc.ABC):
    name: str

    @abc.abstractmethod
    def index(self, references: dict[str, Path]) -> None:
        """Take in every reference video (id -> path)."""

    @abc.abstractmethod
    def detect(self, query: Path) -> list[dict]:
        """Prediction records for one query: ref_id, score, reproduced, segments."""

    def notes(self) -> str:
        """Anything the report should say about this run of the peer ('' for nothing)."""
        return ""

    def detect_all(self, queries: dict[str, Path]) -> dict[str, list[dict]]:
        """query id -> prediction records; a query that fails to decode has none."""
        out = {}
        for query_id, path in queries.items():
            try:
                out[query_id] = self.detect(path)
            except MediaError:
                out[query_id] = []
        return out


def phash(frames: np.ndarray) -> np.ndarray:
    """(T, H, W, 3) uint8 -> (T, 64) float32 of +-1/8: the sign of each of the 8x8 lowest
    DCT coefficients of a 32x32 grey image against their median, so cosine = 1 - 2 h / 64
    for Hamming distance h."""
    out = np.empty((len(frames), 64), dtype=np.float32)
    for i, frame in enumerate(frames):
        grey = np.asarray(Image.fromarray(frame).convert("L").resize((32, 32), Image.LANCZOS))
        low = dctn(grey.astype(np.float64), norm="ortho")[:8, :8].reshape(-1)
        out[i] = np.where(low > np.median(low), 1.0, -1.0) / 8.0
    return out


class _MemoryIndex:
    """A flat index whose rows map to videos, held in memory."""

    def __init__(self, dim: int) -> None:
        self.index = faiss.IndexFlatIP(dim)
        self.videos: list[VideoFingerprints] = []
        self.row_video = np.zeros(0, dtype=np.int64)

    def add(self, video: VideoFingerprints) -> None:
        self.index.add(video.embeddings)
        self.row_video = np.concatenate(
            [self.row_video, np.full(len(video.embeddings), len(self.videos))]
        )
        self.videos.append(video)


class PHashPeer(Peer):
    name = "phash"

    def __init__(self, recall: RecallParams = RecallParams(), align: AlignParams = AlignParams()):
        self.recall, self.align = recall, align
        self._index = _MemoryIndex(64)

    def _describe(self, path: Path) -> tuple[np.ndarray, np.ndarray]:
        video = sample_video(path.read_bytes())
        return phash(video.frames), video.timestamps

    def index(self, references: dict[str, Path]) -> None:
        for ref_id, path in references.items():
            embeddings, times = self._describe(path)
            self._index.add(VideoFingerprints(ref_id, embeddings, times, float(times[-1] + 1)))

    def detect(self, query: Path) -> list[dict]:
        embeddings, times = self._describe(query)
        k = min(self.recall.k, self._index.index.ntotal)
        D, I = self._index.index.search(embeddings, k)
        near = np.where(I >= 0, self._index.row_video[I], -1)
        chosen = [self._index.videos[v] for v in vote(D, near, self.recall)]
        matches = match_candidates(
            embeddings,
            times,
            [(c.video_id, c.embeddings, c.timestamps) for c in chosen],
            self.align,
        )
        return match_records(matches)


def chromaprint(path: Path) -> np.ndarray:
    """(N,) uint32 raw Chromaprint items of a file's audio; empty when it has none."""
    result = subprocess.run(
        ["fpcalc", "-raw", "-json", "-length", "0", str(path)], capture_output=True, text=True
    )
    # fpcalc exits 3 on a harmless end-of-file decode error after printing a whole result.
    try:
        items = json.loads(result.stdout)["fingerprint"]
    except (json.JSONDecodeError, KeyError):
        return np.zeros(0, dtype=np.uint32)
    return np.array(items, dtype=np.uint32)


class ChromaprintPeer(Peer):
    """Offset voting on exactly equal items, then the run of items within `max_bits` bit
    errors at the winning offset is the segment; score = matched items / query items."""

    name = "chromaprint"

    def __init__(self, max_bits: int = 8, threshold: float = 0.2, min_votes: int = 5) -> None:
        self.max_bits, self.threshold, self.min_votes = max_bits, threshold, min_votes
        self._refs: dict[str, np.ndarray] = {}
        self._postings: dict[int, list[tuple[str, int]]] = {}

    def index(self, references: dict[str, Path]) -> None:
        for ref_id, path in references.items():
            items = chromaprint(path)
            self._refs[ref_id] = items
            for pos, value in enumerate(items.tolist()):
                self._postings.setdefault(value, []).append((ref_id, pos))

    def detect(self, query: Path) -> list[dict]:
        items = chromaprint(query)
        votes: Counter = Counter()
        for qpos, value in enumerate(items.tolist()):
            for ref_id, rpos in self._postings.get(value, ()):
                votes[(ref_id, rpos - qpos)] += 1
        best: dict[str, tuple[int, int]] = {}
        for (ref_id, offset), count in votes.most_common():
            if count >= self.min_votes and ref_id not in best:
                best[ref_id] = (offset, count)
        out = []
        for ref_id, (offset, _) in best.items():
            segment = self._segment(items, self._refs[ref_id], offset)
            if segment is None:
                continue
            q0, q1, matched = segment
            score = matched / max(len(items), 1)
            out.append(
                {
                    "ref_id": ref_id,
                    "score": score,
                    "reproduced": score >= self.threshold,
                    "segments": [
                        [
                            q0 * CHROMAPRINT_ITEM,
                            q1 * CHROMAPRINT_ITEM,
                            (q0 + offset) * CHROMAPRINT_ITEM,
                            (q1 + offset) * CHROMAPRINT_ITEM,
                            score,
                        ]
                    ],  # fmt: skip
                }
            )
        return sorted(out, key=lambda m: -m["score"])

    def _segment(self, q: np.ndarray, r: np.ndarray, offset: int) -> tuple[int, int, int] | None:
        """Query item span [q0, q1) that stays within max_bits at `offset`, and its matches."""
        lo, hi = max(0, -offset), min(len(q), len(r) - offset)
        if hi <= lo:
            return None
        errors = np.unpackbits((q[lo:hi] ^ r[lo + offset : hi + offset]).view(np.uint8)).reshape(
            -1, 32
        )
        good = np.nonzero(errors.sum(axis=1) <= self.max_bits)[0]
        if len(good) == 0:
            return None
        return lo + int(good[0]), lo + int(good[-1]) + 1, len(good)


SIGNATURE_MATCH = re.compile(
    r"matching of video (\d+) at ([\d.]+) and (\d+) at ([\d.]+), (\d+) frames matching"
)


class SignaturePeer(Peer):
    """FFmpeg's MPEG-7 video signature filter, detectmode=full, run on each (query,
    reference) pair; its own decision (a match reported) is `reproduced`, the score is the
    matched seconds.

    The filter compares every pair of its inputs inside one run (about 0.2 s per pair of
    one-minute videos here, and a run with all references would compare every pair of
    references too), so each pair gets its own run, on one split's references and queries.
    Every video is first reduced once to raw 320x180 luma at `fps` frames per second (the
    filter reads block averages of luma), which keeps decoding and memory (the filter
    buffers its inputs' frames) small. FFmpeg 5.1's lookup crashes (SIGSEGV) on some pairs:
    such a pair counts as no match and is listed in `crashed`.
    """

    name = "signature"

    def __init__(self, split: str = "test", fps: int = 10) -> None:
        self.split, self.fps = split, fps
        self._scratch = tempfile.TemporaryDirectory(prefix="rci-signature-")
        self._refs: dict[str, Path] = {}
        self.crashed: list[tuple[str, str]] = []  # (query file, reference id)

    def _reduce(self, path: Path, name: str) -> Path:
        out = Path(self._scratch.name) / f"{name}.nut"
        command = [
            "ffmpeg", "-y", "-loglevel", "error", "-i", str(path), "-an",
            "-vf", f"fps={self.fps},scale=320:180,format=gray",
            "-c:v", "rawvideo", "-f", "nut", str(out),
        ]  # fmt: skip
        if subprocess.run(command, capture_output=True).returncode != 0:
            raise MediaError(f"ffmpeg could not decode {path.name}")
        return out

    def index(self, references: dict[str, Path]) -> None:
        self._refs = {r: self._reduce(p, f"ref-{r}") for r, p in references.items()}

    def notes(self) -> str:
        if not self.crashed:
            return ""
        pairs = ", ".join(f"{q}/{r}" for q, r in self.crashed)
        return f"FFmpeg's lookup crashed on {len(self.crashed)} pairs, counted as no match: {pairs}"

    def _pair(self, query: Path, ref_id: str, name: str) -> dict | None:
        command = ["ffmpeg", "-hide_banner", "-nostats", "-loglevel", "info"]
        command += ["-i", str(query), "-i", str(self._refs[ref_id]), "-filter_complex"]
        command += ["[0:v][1:v]signature=nb_inputs=2:detectmode=full", "-f", "null", "-"]
        result = subprocess.run(command, capture_output=True, text=True)
        found = SIGNATURE_MATCH.search(result.stderr)
        if result.returncode != 0:
            self.crashed.append((name, ref_id))
            return None
        if found is None:
            return None
        q0, r0, seconds = float(found[2]), float(found[4]), int(found[5]) / self.fps
        segment = [q0, q0 + seconds, r0, r0 + seconds, seconds]
        return {"ref_id": ref_id, "score": seconds, "reproduced": True, "segments": [segment]}

    def detect(self, query: Path) -> list[dict]:
        reduced = self._reduce(query, "query")
        # Two runs at a time: each is one ffmpeg process on one core.
        with ThreadPoolExecutor(max_workers=2) as pool:
            found = pool.map(lambda r: self._pair(reduced, r, query.stem), list(self._refs))
            out = [m for m in found if m is not None]
        return sorted(out, key=lambda m: -m["score"])


class VideohashPeer(Peer):
    """videohash 3.0.1 (PyPI): 64 bits per whole video; score = 1 - Hamming distance / 64,
    reproduced at videohash's own similarity cut (distance <= 15 bits)."""

    name = "videohash"
    max_distance = 15

    def __init__(self) -> None:
        self._refs: dict[str, np.ndarray] = {}
        self._durations: dict[str, float] = {}

    @staticmethod
    def _hash(path: Path) -> tuple[np.ndarray, float]:
        from videohash import VideoHash  # an optional benchmark dependency

        # videohash 3.0.1 (its last release) resizes with Image.ANTIALIAS, which Pillow 10
        # removed; it was always an alias of LANCZOS.
        if not hasattr(Image, "ANTIALIAS"):
            Image.ANTIALIAS = Image.LANCZOS
        with tempfile.TemporaryDirectory() as scratch:
            try:
                # videohash tells folders from files by a trailing separator.
                video = VideoHash(path=str(path), storage_path=scratch + "/")
            except Exception as error:  # videohash raises bare exceptions on bad input
                raise MediaError(f"videohash failed on {path.name}: {error}") from error
        bits = np.array([int(c) for c in video.hash[2:]], dtype=np.uint8)
        return bits, float(video.video_duration)

    def index(self, references: dict[str, Path]) -> None:
        for ref_id, path in references.items():
            self._refs[ref_id], self._durations[ref_id] = self._hash(path)

    def detect(self, query: Path) -> list[dict]:
        bits, duration = self._hash(query)
        out = []
        for ref_id, ref_bits in self._refs.items():
            distance = int(np.count_nonzero(bits != ref_bits))
            score = 1.0 - distance / len(bits)
            segment = [0.0, duration, 0.0, self._durations[ref_id], score]
            out.append(
                {
                    "ref_id": ref_id,
                    "score": score,
                    "reproduced": distance <= self.max_distance,
                    "segments": [segment],
                }
            )
        return sorted(out, key=lambda m: -m["score"])[:5]


class PeerKind(enum.Enum):
    PHASH = "phash"
    CHROMAPRINT = "chromaprint"
    SIGNATURE = "signature"
    VIDEOHASH = "videohash"


def missing(kind: PeerKind) -> str | None:
    """What a peer needs that this machine lacks, and how to get it; None when nothing."""
    if kind is PeerKind.VIDEOHASH and importlib.util.find_spec("videohash") is None:
        return (
            "videohash needs the dev extra: pip install -c constraints.txt -e '.[dev]' "
            "(make install does it)"
        )
    if kind is PeerKind.CHROMAPRINT and shutil.which("fpcalc") is None:
        return "chromaprint needs fpcalc: scripts/system_deps.sh (Debian's libchromaprint-tools)"
    return None


def make_peer(kind: PeerKind) -> Peer:
    return {
        PeerKind.PHASH: PHashPeer,
        PeerKind.CHROMAPRINT: ChromaprintPeer,
        PeerKind.SIGNATURE: SignaturePeer,
        PeerKind.VIDEOHASH: VideohashPeer,
    }[kind]()


INGESTED = ("reference", "library")  # the roles a library holds; "distractor" is never ingested


def predict(peer: Peer, build_dir: Path, manifest: dict) -> list[dict]:
    """Index the library (references and never-copied videos), then one prediction record
    per query (runner format); a peer bound to one split sees only that split's library and
    queries."""
    split = getattr(peer, "split", None)
    refs = {
        s["id"]: build_dir / s["path"]
        for s in manifest["sources"]
        if s["role"] in INGESTED and split in (None, s["split"])
    }
    peer.index(refs)
    queries = {
        q["query_id"]: build_dir / q["path"]
        for q in manifest["queries"]
        if split in (None, q["split"])
    }
    found = peer.detect_all(queries)
    return [{"query_id": q, "matches": found[q], "box_iou": None} for q in queries]
