"""Matching replayed offline: the served recall and alignment code over cached features.

`rci-bench run` leaves the served library in the build folder (server-data/); this module
caches every query's descriptor embeddings once (the cpu target's embed_video, run in
process), then re-runs recall and alignment with other parameters in seconds, scored like
`rci-bench run`. Parameters are chosen this way on train and val; the figures reported
come from a served run.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rci.bench.metrics import match_records
from rci.bench.run import score
from rci.describe.descriptor import EMBEDDING_DIM, Descriptor, DescriptorModel
from rci.library.index import LibraryIndex
from rci.library.store import LibraryFolder
from rci.match.alignment import AlignParams
from rci.match.matchlite import MatchLite, Verdict, decide
from rci.match.normalize import Background
from rci.match.recall import RecallParams, recall_recurring
from rci.match.verdict import FusionParams, Match, QueryAudio, match_candidates
from rci.match.views import QueryViews
from rci.preprocess.pipeline import embed_video
from rci.preprocess.screen import ScreenParams

FEATURES = "features"  # folder of the build holding one .npz per query
NO_SCREEN = "features-no-screen"  # ... made without the tilted-screen search


@dataclass(frozen=True)
class QueryFeatures:
    """One query as the matcher sees it."""

    embeddings: np.ndarray  # (T, 512) float32, unit rows
    mirrored: np.ndarray  # (T, 512) float32: the same frames flipped left to right
    timestamps: np.ndarray  # (T,) float32 seconds
    whole: np.ndarray | None = None  # (T, 512) float32: frames with an inset whole, or None
    # (V, A, 32) uint8: the audio's query views (rci.preprocess.audio_prints) and (A,)
    # float32 their windows' times in seconds, or None for features cached before the audio
    # channel (replayed without it).
    audio: np.ndarray | None = None
    audio_times: np.ndarray | None = None

    def __post_init__(self) -> None:
        if self.mirrored.shape != self.embeddings.shape:
            raise ValueError(f"mirrored {self.mirrored.shape} != {self.embeddings.shape}")
        if self.timestamps.shape != (len(self.embeddings),):
            raise ValueError(f"timestamps must be ({len(self.embeddings)},)")


def cache_query_features(
    build_dir: Path, model: DescriptorModel, rebuild: bool = False, screen: bool = True
) -> int:
    """Write features/QUERY.npz for every query of the manifest that has none (all with
    `rebuild`); returns how many were written. `screen` False: without the tilted-screen
    search, in features-no-screen/."""
    manifest = json.loads((build_dir / "manifest.json").read_text())
    folder = build_dir / (FEATURES if screen else NO_SCREEN)
    folder.mkdir(exist_ok=True)
    descriptor, written = None, 0
    for query in manifest["queries"]:
        path = folder / f"{query['query_id']}.npz"
        if path.exists() and not rebuild:
            continue
        descriptor = descriptor or Descriptor(model)
        # The served pipeline itself, in process: rci_preprocess runs this function.
        data = (build_dir / query["path"]).read_bytes()
        search = ScreenParams() if screen else None
        video = embed_video(
            data, descriptor.embed, mirror=True, whole=True, screen=search, query_audio=True
        )
        views = {"mirrored": video.mirrored, "timestamps": video.timestamps}
        views["audio"] = video.audio_views
        views["audio_times"] = video.audio_prints.times
        if video.whole is not None:
            views["whole"] = video.whole
        np.savez(path, embeddings=video.embeddings, **views)
        written += 1
    return written


def load_query_features(build_dir: Path, query_id: str, screen: bool = True) -> QueryFeatures:
    folder = FEATURES if screen else NO_SCREEN
    with np.load(build_dir / folder / f"{query_id}.npz", allow_pickle=False) as data:
        whole = data["whole"] if "whole" in data.files else None
        audio = data["audio"] if "audio" in data.files else None
        times = data["audio_times"] if "audio_times" in data.files else None
        return QueryFeatures(
            data["embeddings"], data["mirrored"], data["timestamps"], whole, audio, times
        )


def served_library(data_dir: Path, library: str, model: DescriptorModel) -> LibraryIndex:
    """The exact index over a library a server left in `data_dir` (`rci-bench run`:
    BUILD/server-data)."""
    folder = LibraryFolder(data_dir, library, descriptor=model.value, dim=EMBEDDING_DIM)
    return LibraryIndex(folder)


def replay(build_dir: Path, index: LibraryIndex, **options) -> list[dict]:
    """Prediction records (runner format, box_iou None) for every query of the build;
    `options` are replay_matches'."""
    return [
        {"query_id": query_id, "matches": match_records(found), "box_iou": None}
        for query_id, found in replay_matches(build_dir, index, **options).items()
    ]


def replay_matches(
    build_dir: Path,
    index: LibraryIndex,
    recall_params: RecallParams = RecallParams(),
    align_params: AlignParams = AlignParams(),
    mirror: bool = False,
    background: Background | None = None,
    whole: bool = False,
    screen: bool = True,
    audio_recall: bool = True,
    audio_match: bool = True,
    fusion: FusionParams = FusionParams(),
    verdict: Verdict | None = Verdict.MATCHLITE,
) -> dict[str, list[Match]]:
    """Every query's matches, by query id in manifest order (their segments keep the audio
    score and support a verdict is decided from). With `mirror`, each query is matched by
    its frames and their mirror images, with `whole` also by its frames with an inset whole,
    and with `background`, normalized against it; `screen` False: on the features made
    without the tilted-screen search; `audio_recall` False: candidates by pictures only;
    `audio_match` False: verdicts by pictures only. `verdict`: who decides, as served
    (MatchLite's probability and copied share on every match); None: the hand-set rule,
    unscored."""
    manifest = json.loads((build_dir / "manifest.json").read_text())
    scorer = MatchLite() if verdict is not None else None
    out = {}
    for query in manifest["queries"]:
        features = load_query_features(build_dir, query["query_id"], screen)
        views = QueryViews(
            features.embeddings,
            features.mirrored if mirror else None,
            whole=features.whole if whole else None,
        )
        if background is not None:
            views = background.normalized(views)
        audio = features.audio if audio_recall else None
        candidates, recurring = recall_recurring(index, views, recall_params, audio)
        sound = None
        if audio_match and features.audio is not None and features.audio_times is not None:
            sound = QueryAudio(features.audio, features.audio_times)
        matches = match_candidates(
            dataclasses.replace(views, recurrence=recurring),
            features.timestamps,
            [(c.video_id, c.embeddings, c.timestamps) for c in candidates],
            align_params,
            audio=sound,
            candidate_audio=[c.audio for c in candidates] if sound is not None else None,
            fusion=fusion,
        )
        if verdict is not None:
            matches = decide(
                matches, features.timestamps, recurring, verdict, scorer, fusion.threshold
            )
        out[query["query_id"]] = matches
    return out


def scores_by_split(manifest: dict, records: list[dict]) -> dict[str, dict]:
    """score() over each split's queries and over all of them."""
    by_id = {r["query_id"]: r for r in records}
    out = {}
    for split in ("train", "val", "test", "all"):
        chosen = [q for q in manifest["queries"] if split in ("all", q["split"])]
        out[split] = score(chosen, [by_id[q["query_id"]] for q in chosen])
    return out
