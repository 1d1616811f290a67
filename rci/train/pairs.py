"""Labelled (query, candidate) pairs for MatchLite, composed at feature level from a
benchmark build (`rci-bench build`, then `rci-bench run` or `replay` for its library and
cached query features).

Each split's queries are taken as they are ("real": every candidate recall gives, as
served) and recomposed ("composed"): a span of one query, a montage of spans of several in
shuffled order, one query with another's span inserted, or spans of the split's
never-copied library videos (copying nothing: their look-alikes, template groups and shared
music are the hard negatives a large library holds); then, by chance, the pictures
obscured (each descriptor pushed toward frames that copy nothing), and a speed change of
the pictures, the audio removed, or the audio swapped for another query's. The truth
follows each span, so a composed query's copied segments are known. Candidates come from
the served recall over the build's library and are matched by the served code (rci.match).
Every source, never-copied ones included, belongs to one split; a composed query, and a
real train query, keeps only candidates of its own split, so pairs for training never
touch a val or test video (real val and test queries keep every candidate, as served). A
fixed seed gives the same pairs.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from rci.bench.edits import EditKind
from rci.bench.metrics import match_records
from rci.bench.replay import load_query_features, served_library
from rci.describe.descriptor import EMBEDDING_DIM, DescriptorModel
from rci.library.background import background_path, read_background
from rci.library.index import LibraryIndex, video_keys
from rci.library.store import VideoFingerprints
from rci.match.intervals import union_length
from rci.match.normalize import Background
from rci.match.pair_input import CHANNELS, SIDE_FEATURES, match_inputs
from rci.match.recall import recall_recurring
from rci.match.verdict import QueryAudio, match_candidates
from rci.match.views import QueryViews
from rci.preprocess.audio_prints import AUDIO_PRINT, HOP, WINDOW_BYTES, AudioPrintParams

EDITS = tuple(k.value for k in EditKind)  # one output of the kind head each
MIN_COPY_SECONDS = 2.0  # a pair sharing less is too short to call either way: left out
PERIOD = 1.0  # seconds between a query's frames (rci.preprocess: 1 fps)
# Composed queries whose pictures are obscured (obscured()): the benchmark's edits leave the
# served rule few borderline pairs; heavier stacks of edits on real uploads leave many.
OBSCURED_SHARE = 0.3


@dataclass
class Clip:
    """A query's features with the truth they carry, times from 0."""

    embeddings: np.ndarray  # (T, D) float32
    mirrored: np.ndarray  # (T, D) float32
    whole: np.ndarray  # (T, D) float32: the frames themselves where no inset was found
    times: np.ndarray  # (T,) float32 seconds
    audio: np.ndarray  # (V, A, B) uint8 query audio views; A = 0 without sound
    audio_times: np.ndarray  # (A,) float32 seconds
    duration: float  # seconds
    truth: list[dict]  # {ref_id, query_start, query_end, ref_start, ref_end, edits}
    # Library videos whose own material the clip shows (never-copied videos made into
    # queries): never candidates of it, since a video matching itself teaches nothing.
    own: frozenset[str] = frozenset()

    def __post_init__(self) -> None:
        t = len(self.times)
        for name in ("embeddings", "mirrored", "whole"):
            if getattr(self, name).shape != (t, EMBEDDING_DIM):
                raise ValueError(f"{name} must be ({t}, {EMBEDDING_DIM})")
        if self.audio.shape[1] != len(self.audio_times):
            raise ValueError(
                f"audio has {self.audio.shape[1]} windows, {len(self.audio_times)} times"
            )


def load_clip(build_dir: Path, query: dict) -> Clip:
    """A manifest query's cached features (rci.bench.replay) as a Clip."""
    f = load_query_features(build_dir, query["query_id"])
    audio = f.audio if f.audio is not None else np.zeros((20, 0, 32), np.uint8)
    times = f.audio_times if f.audio_times is not None else np.zeros(0, np.float32)
    edits = [e["name"] for e in query["edits"]]
    truth = [{**t, "edits": edits} for t in query["truth"]]
    whole = f.whole if f.whole is not None else f.embeddings
    duration = max(float(query["duration"]), float(f.timestamps[-1]) + PERIOD)
    return Clip(f.embeddings, f.mirrored, whole, f.timestamps, audio, times, duration, truth)


class WithoutVideos:
    """`index` searched as if `video_ids` were not in it (a never-copied query's own video):
    each search asks for as many more neighbours as those videos could take, drops theirs
    and keeps the first k, so recall, votes and recurrence are what a library without them
    would give."""

    def __init__(self, index: LibraryIndex, video_ids: frozenset[str]) -> None:
        self.index = index
        self.keys = np.array(sorted(index.keys[v] for v in video_ids), np.int64)
        self.frames = sum(int(index.records[k]["count"]) for k in self.keys.tolist())
        self.windows = sum(int(index.records[k].get("audio_count", 0)) for k in self.keys.tolist())

    @property
    def ntotal(self) -> int:
        return self.index.ntotal - self.frames

    def _first_k(self, D: np.ndarray, I: np.ndarray, owners: np.ndarray, k: int):
        mine = np.isin(owners, self.keys)
        order = np.argsort(mine, axis=1, kind="stable")[:, :k]  # the others first, in order
        D, I = np.take_along_axis(D, order, 1), np.take_along_axis(I, order, 1)
        I[np.take_along_axis(mine, order, 1)] = -1  # fewer than k others: none, as faiss says
        return D, I

    def search(self, xq: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        D, I = self.index.search(xq, min(k + self.frames, self.index.ntotal))
        return self._first_k(D, I, video_keys(I), k)

    def search_means(self, xq: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        D, K = self.index.search_means(xq, min(k + len(self.keys), self.index.video_count()))
        return self._first_k(D, K, K, k)

    def search_audio(self, xq: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        D, I = self.index.search_audio(xq, min(k + self.windows, self.index.audio_count()))
        return self._first_k(D, I, video_keys(I), k)

    def video_count(self) -> int:
        return self.index.video_count() - len(self.keys)

    def audio_count(self) -> int:
        return self.index.audio_count() - self.windows

    def candidate(self, key: int) -> VideoFingerprints | None:
        return self.index.candidate(key)


def shared_shots(manifest: dict) -> dict[str, set[str]]:
    """Per source id, the other sources showing one of its pictures (the build reuses
    photographs when its pool runs short)."""
    users: dict[tuple, set[str]] = {}
    for source in manifest["sources"]:
        for shot in source.get("provenance", {}).get("shots", []):
            users.setdefault((shot["file"], shot.get("member", "")), set()).add(source["id"])
    out: dict[str, set[str]] = {}
    for ids in users.values():
        for v in ids:
            out.setdefault(v, set()).update(ids - {v})
    return out


def never_copied_clip(index: LibraryIndex, video_id: str) -> Clip:
    """A never-copied library video as a query Clip, from its stored fingerprints: its
    descriptors stand for every view (the mirrored and whole-frame ones are not stored), its
    stored audio windows for every tempo and phase view. Its truth is empty: whatever recall
    finds for it (look-alikes, its template group, a reference sharing its music) is a hard
    negative."""
    video = index.video(video_id)
    views = len(AudioPrintParams().tempos) * HOP
    if np.any(np.diff(video.timestamps) > 1.5 * PERIOD):
        raise ValueError(f"{video_id}: stored sparser than a query's {PERIOD} s frames")
    if video.audio is not None and len(video.audio.times) and video.audio.kind == AUDIO_PRINT:
        audio = np.repeat(video.audio.bits[None], views, axis=0)
        audio_times = video.audio.times.astype(np.float32)
    else:
        audio, audio_times = np.zeros((views, 0, WINDOW_BYTES), np.uint8), np.zeros(0, np.float32)
    emb = video.embeddings.astype(np.float32)
    duration = max(video.duration, float(video.timestamps[-1]) + PERIOD)
    return Clip(emb, emb, emb, video.timestamps.astype(np.float32), audio, audio_times,
                duration, [], frozenset({video_id}))  # fmt: skip


def cut(clip: Clip, start: float, end: float) -> Clip:
    """clip's [start, end) s, from 0; truth spans clipped and mapped linearly."""
    keep = (clip.times >= start) & (clip.times < end)
    heard = (clip.audio_times >= start) & (clip.audio_times < end)
    truth = []
    for t in clip.truth:
        lo, hi = max(t["query_start"], start), min(t["query_end"], end)
        if hi <= lo:
            continue
        rate = (t["ref_end"] - t["ref_start"]) / max(t["query_end"] - t["query_start"], 1e-6)
        truth.append(
            {
                **t,
                "query_start": lo - start,
                "query_end": hi - start,
                "ref_start": t["ref_start"] + (lo - t["query_start"]) * rate,
                "ref_end": t["ref_start"] + (hi - t["query_start"]) * rate,
            }
        )
    return Clip(
        clip.embeddings[keep],
        clip.mirrored[keep],
        clip.whole[keep],
        clip.times[keep] - start,
        clip.audio[:, heard],
        clip.audio_times[heard] - start,
        end - start,
        truth,
        clip.own,
    )


def join(clips: list[Clip]) -> Clip:
    """Clips one after the other."""
    offset, parts = 0.0, []
    for c in clips:
        shifted = [
            {**t, "query_start": t["query_start"] + offset, "query_end": t["query_end"] + offset}
            for t in c.truth
        ]
        parts.append((c, offset, shifted))
        offset += c.duration
    return Clip(
        np.concatenate([c.embeddings for c, _, _ in parts]),
        np.concatenate([c.mirrored for c, _, _ in parts]),
        np.concatenate([c.whole for c, _, _ in parts]),
        np.concatenate([c.times + o for c, o, _ in parts]).astype(np.float32),
        np.concatenate([c.audio for c, _, _ in parts], axis=1),
        np.concatenate([c.audio_times + o for c, o, _ in parts]).astype(np.float32),
        offset,
        [t for _, _, shifted in parts for t in shifted],
        frozenset().union(*(c.own for c in clips)),
    )


def faster(clip: Clip, speed: float) -> Clip:
    """The pictures played `speed` times as fast (frames resampled at PERIOD), without sound:
    a fingerprint of sped-up audio cannot be made from the features."""
    duration = clip.duration / speed
    times = np.arange(0.0, duration, PERIOD, dtype=np.float32)
    src = np.clip(np.searchsorted(clip.times, times * speed), 0, len(clip.times) - 1)
    truth = [
        {**t, "query_start": t["query_start"] / speed, "query_end": t["query_end"] / speed}
        for t in clip.truth
    ]
    silent = clip.audio[:, :0]
    return Clip(
        clip.embeddings[src], clip.mirrored[src], clip.whole[src], times, silent,
        clip.audio_times[:0], duration, truth, clip.own,
    )  # fmt: skip


def dubbed(clip: Clip, other: Clip | None) -> Clip:
    """clip with the sound of `other` from its start (None: no sound)."""
    if other is None:
        return dataclasses.replace(clip, audio=clip.audio[:, :0], audio_times=clip.audio_times[:0])
    heard = other.audio_times < clip.duration
    return dataclasses.replace(
        clip, audio=other.audio[:, heard], audio_times=other.audio_times[heard]
    )


def unrelated(clips: list[Clip]) -> Clip:
    """The clips' stretches that copy nothing (the material the benchmark's queries set
    their copies in, and its negatives), one after the other."""
    parts = []
    for c in clips:
        start = 0.0
        for lo, hi in sorted((t["query_start"], t["query_end"]) for t in c.truth):
            if lo > start:
                parts.append(cut(c, start, lo))
            start = max(start, hi)
        if c.duration > start:
            parts.append(cut(c, start, c.duration))
    return join([p for p in parts if len(p.times)])


def obscured(clip: Clip, other: Clip, keep: float, rng: np.random.Generator) -> Clip:
    """clip's pictures pushed toward `other`'s frames (a run of them from a random start)
    until each descriptor keeps cosine `keep` with its own: an overlay, a filmed screen or
    a stack of edits that leaves the descriptor little of the picture, so the copy must be
    found by its sound or by weak but consistent pictures. `other` must copy nothing, or
    the query would copy it too (unrelated())."""
    if not len(clip.times) or not len(other.times):
        return clip
    start = int(rng.integers(len(other.times)))
    pick = (start + np.arange(len(clip.times))) % len(other.times)

    def push(mine: np.ndarray, theirs: np.ndarray) -> np.ndarray:
        away = theirs[pick] - np.sum(theirs[pick] * mine, axis=1, keepdims=True) * mine
        norm = np.linalg.norm(away, axis=1, keepdims=True)
        # A partner frame equal to the query's own gives no direction: take a random one.
        noise = rng.standard_normal(mine.shape).astype(np.float32)
        noise -= np.sum(noise * mine, axis=1, keepdims=True) * mine
        away = np.where(norm > 1e-3, away, noise)
        away /= np.linalg.norm(away, axis=1, keepdims=True)
        out = keep * mine + np.sqrt(1.0 - keep**2) * away
        return (out / np.linalg.norm(out, axis=1, keepdims=True)).astype(np.float32)

    return dataclasses.replace(
        clip,
        embeddings=push(clip.embeddings, other.embeddings),
        mirrored=push(clip.mirrored, other.mirrored),
        whole=push(clip.whole, other.whole),
    )


def compose(
    clips: list[Clip], cover: Clip, rng: np.random.Generator, never: list[Clip] = ()
) -> tuple[str, Clip]:
    """One composed query from a split's clips (`cover`: their unrelated() stretches; `never`:
    its never-copied library videos, never_copied_clip()): its recipe and its Clip."""

    def span(c: Clip, shortest: float = 4.0) -> Clip:
        length = rng.uniform(min(shortest, c.duration), c.duration)
        start = rng.uniform(0.0, c.duration - length)
        return cut(c, start, start + length)

    pick = lambda: clips[rng.integers(len(clips))]  # noqa: E731
    kinds, weights = ["span", "montage", "insert"], [0.4, 0.35, 0.25]
    if never:
        kinds, weights = kinds + ["never-copied"], [0.3, 0.3, 0.2, 0.2]
    kind = rng.choice(kinds, p=weights)
    if kind == "never-copied":
        chosen = [
            never[i]
            for i in rng.choice(len(never), min(len(never), rng.integers(1, 3)), replace=False)
        ]
        clip = join([span(c) for c in chosen])
    elif kind == "span":
        clip = span(pick())
    elif kind == "montage":
        clip = join([span(pick(), 3.0) for _ in range(rng.integers(2, 5))])
    else:
        host, guest = pick(), span(pick(), 3.0)
        at = rng.uniform(0.0, host.duration)
        clip = join([cut(host, 0.0, at), guest, cut(host, at, host.duration)])
    recipe = [str(kind)]
    if rng.random() < OBSCURED_SHARE:
        keep = float(rng.uniform(0.35, 0.8))
        clip, recipe = obscured(clip, cover, keep, rng), recipe + [f"obscured {keep:.2f}"]
    roll = rng.random()
    if roll < 0.15:
        speed = float(rng.choice([0.5, 0.75, 1.25, 1.5, 2.0]))
        clip, recipe = faster(clip, speed), recipe + [f"speed {speed}"]
    elif roll < 0.3:
        clip, recipe = dubbed(clip, None), recipe + ["silent"]
    elif roll < 0.45:
        clip, recipe = dubbed(clip, pick()), recipe + ["dubbed"]
    return " + ".join(recipe), clip


@dataclass
class PairSet:
    """Labelled pairs with what the student and the teacher read. Per pair: maps (C, H, W)
    float16; side (F,) float32; label 1 when the query copies MIN_COPY_SECONDS or more of
    the candidate; weight 0 for a pair sharing less (scored, never trained on); the query's
    share copied; kinds (len(EDITS),) uint8, the copy's edits; the query's row in queries;
    the candidate's id. Per query: {query_id, split, recipe, frames (T, D) float16}, its
    heuristic predictions (runner format) and its truth as a manifest holds it. Per
    candidate: its (Tr, D) float16 library descriptors."""

    maps: list[np.ndarray] = field(default_factory=list)
    side: list[np.ndarray] = field(default_factory=list)
    label: list[float] = field(default_factory=list)
    weight: list[float] = field(default_factory=list)
    fraction: list[float] = field(default_factory=list)
    kinds: list[np.ndarray] = field(default_factory=list)
    query: list[int] = field(default_factory=list)
    ref_ids: list[str] = field(default_factory=list)
    queries: list[dict] = field(default_factory=list)
    records: dict[str, list[dict]] = field(default_factory=dict)
    truth: list[dict] = field(default_factory=list)
    refs: dict[str, np.ndarray] = field(default_factory=dict)


def pairs_of(clip: Clip, matches: list, recurrence: np.ndarray, out: PairSet) -> int:
    """Add the labelled pairs of a query's matches to `out`; how many were added."""
    added = 0
    row = len(out.queries) - 1
    for m, p in zip(matches, match_inputs(matches, clip.times, recurrence), strict=True):
        if m.grid is None:
            continue
        mine = [t for t in clip.truth if t["ref_id"] == m.video_id]
        copied = union_length([(t["query_start"], t["query_end"]) for t in mine])
        kinds = np.zeros(len(EDITS), np.uint8)
        for t in mine:
            for e in t["edits"]:
                if e in EDITS:
                    kinds[EDITS.index(e)] = 1
        out.maps.append(p.maps.astype(np.float16))
        out.side.append(p.side)
        out.label.append(float(copied >= MIN_COPY_SECONDS))
        out.weight.append(float(copied == 0.0 or copied >= MIN_COPY_SECONDS))
        out.fraction.append(min(1.0, copied / max(clip.duration, 1e-6)))
        out.kinds.append(kinds)
        out.query.append(row)
        out.ref_ids.append(m.video_id)
        added += 1
    return added


def build_pairs(
    build_dir: Path,
    splits: dict[str, int],
    seed: int = 0,
    library: str = "bench",
    model: DescriptorModel = DescriptorModel.SSCD_RESNET50,
) -> PairSet:
    """Pairs of each split: its real queries, and splits[split] composed ones."""
    manifest = json.loads((build_dir / "manifest.json").read_text())
    data_dir = build_dir / "server-data"
    index = served_library(data_dir, library, model)
    background = Background(read_background(background_path(data_dir, model), EMBEDDING_DIM))
    split_of = {s["id"]: s["split"] for s in manifest["sources"]}
    rng = np.random.default_rng(seed)
    stored = set(index.video_ids)
    sharing = shared_shots(manifest)
    out = PairSet()
    for split, composed in splits.items():
        chosen = [q for q in manifest["queries"] if q["split"] == split]
        clips = [load_clip(build_dir, q) for q in chosen]
        jobs = [(q["query_id"], "real", c) for q, c in zip(chosen, clips, strict=True)]
        cover = unrelated(clips)
        never = [
            never_copied_clip(index, s["id"])
            for s in manifest["sources"]
            if s["role"] == "library" and s["split"] == split and s["id"] in stored
        ]
        jobs += [(f"{split}-{n:05d}", *compose(clips, cover, rng, never)) for n in range(composed)]
        for query_id, recipe, clip in jobs:
            if not len(clip.times):
                continue
            views = background.normalized(
                QueryViews(clip.embeddings, clip.mirrored, whole=clip.whole)
            )
            audio = clip.audio if clip.audio.shape[1] else None
            # Never-copied videos share some photographs: the videos sharing one with the
            # query's own are left out with them, not labelled as strangers.
            hidden = clip.own.union(*(sharing.get(v, ()) for v in clip.own))
            searched = WithoutVideos(index, hidden) if hidden else index
            candidates, recurrence = recall_recurring(searched, views, audio=audio)
            # Training never sees a val or test video; real val and test queries meet the
            # whole library, as served.
            if recipe != "real" or split == "train":
                candidates = [c for c in candidates if split_of.get(c.video_id) == split]
            sound = QueryAudio(clip.audio, clip.audio_times) if audio is not None else None
            matches = match_candidates(
                dataclasses.replace(views, recurrence=recurrence),
                clip.times,
                [(c.video_id, c.embeddings, c.timestamps) for c in candidates],
                audio=sound,
                candidate_audio=[c.audio for c in candidates] if sound is not None else None,
            )
            for c in candidates:
                out.refs.setdefault(c.video_id, c.embeddings.astype(np.float16))
            frames = clip.embeddings.astype(np.float16)
            out.queries.append(
                {"query_id": query_id, "split": split, "recipe": recipe, "frames": frames}
            )
            pairs_of(clip, matches, recurrence, out)
            out.records[query_id] = match_records(matches)
            kind = next((q["kind"] for q in chosen if q["query_id"] == query_id), "composed")
            truth = [{k: v for k, v in t.items() if k != "edits"} for t in clip.truth]
            out.truth.append({"query_id": query_id, "split": split, "kind": kind, "truth": truth})
    return out


def save_pairs(pairs: PairSet, path: Path, meta: dict) -> None:
    """pairs to one .npz (no pickles), and every query's truth and heuristic predictions
    beside it (.records.json)."""
    shapes = np.array([m.shape[1:] for m in pairs.maps], np.int32).reshape(-1, 2)
    frames = [q["frames"] for q in pairs.queries]
    np.savez(
        path,
        maps=np.concatenate([m.reshape(-1) for m in pairs.maps])
        if pairs.maps
        else np.zeros(0, np.float16),
        shapes=shapes,
        side=np.stack(pairs.side).astype(np.float32),
        label=np.array(pairs.label, np.float32),
        weight=np.array(pairs.weight, np.float32),
        fraction=np.array(pairs.fraction, np.float32),
        kinds=np.stack(pairs.kinds),
        query=np.array(pairs.query, np.int32),
        ref_ids=np.array(pairs.ref_ids, dtype=str),
        query_ids=np.array([q["query_id"] for q in pairs.queries], dtype=str),
        query_splits=np.array([q["split"] for q in pairs.queries], dtype=str),
        recipes=np.array([q["recipe"] for q in pairs.queries], dtype=str),
        frames=np.concatenate(frames),
        frame_counts=np.array([len(f) for f in frames], np.int32),
        ref_table=np.array(list(pairs.refs), dtype=str),
        ref_frames=np.concatenate(list(pairs.refs.values())),
        ref_counts=np.array([len(x) for x in pairs.refs.values()], np.int32),
        channels=np.array(CHANNELS),
        side_features=np.array(SIDE_FEATURES),
        edits=np.array(EDITS),
        meta=np.array(json.dumps(meta)),
    )
    records = {"records": pairs.records, "queries": pairs.truth}
    path.with_suffix(".records.json").write_text(json.dumps(records))
