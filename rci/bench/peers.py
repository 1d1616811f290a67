"""Peers a platform could pick instead, run on the same benchmark and scored the same way.

- pHash: a 64-bit DCT perceptual hash per frame at 1 fps, searched and aligned with RCI's own
  recall and alignment (only the frame descriptor differs).
- Chromaprint (fpcalc): audio fingerprints matched by offset voting; audio-only.
Each peer returns, per query, the same prediction records the runner makes from the server.
"""

from __future__ import annotations

import abc
import enum
import json
import subprocess
from collections import Counter
from pathlib import Path

import faiss
import numpy as np
from PIL import Image
from scipy.fft import dctn

from rci.alignment import AlignParams, match_candidates
from rci.errors import MediaError
from rci.library import VideoFingerprints
from rci.media import sample_video
from rci.recall import RecallParams, vote

CHROMAPRINT_ITEM = 4096 / 3 / 11025  # seconds per fingerprint item (fpcalc's defaults)


class Peer(abc.ABC):
    name: str

    @abc.abstractmethod
    def index(self, references: dict[str, Path]) -> None:
        """Take in every reference video (id -> path)."""

    @abc.abstractmethod
    def detect(self, query: Path) -> list[dict]:
        """Prediction records for one query: ref_id, score, reproduced, segments."""


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
    """The parts of rci.library.LibraryIndex that recall() uses, held in memory."""

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
        chosen = [self._index.videos[v] for v in vote(D, I, self._index.row_video, self.recall)]
        matches = match_candidates(
            embeddings,
            times,
            [(c.video_id, c.embeddings, c.timestamps) for c in chosen],
            self.align,
        )
        return [
            {
                "ref_id": m.video_id,
                "score": m.score,
                "reproduced": m.reproduced,
                "segments": [s.as_row() for s in m.segments],
            }
            for m in matches
        ]


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


class PeerKind(enum.Enum):
    PHASH = "phash"
    CHROMAPRINT = "chromaprint"


def make_peer(kind: PeerKind) -> Peer:
    return {PeerKind.PHASH: PHashPeer, PeerKind.CHROMAPRINT: ChromaprintPeer}[kind]()


def predict(peer: Peer, build_dir: Path, manifest: dict) -> list[dict]:
    """Index the references, then one prediction record per query (runner format)."""
    refs = {s["id"]: build_dir / s["path"] for s in manifest["sources"] if s["role"] == "reference"}
    peer.index(refs)
    records = []
    for query in manifest["queries"]:
        try:
            matches = peer.detect(build_dir / query["path"])
        except MediaError:
            matches = []
        records.append({"query_id": query["query_id"], "matches": matches, "box_iou": None})
    return records
