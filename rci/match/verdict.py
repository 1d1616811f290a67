"""Match, step 3: each candidate's verdict, from its pictures and its sound.

The pictures' alignment (rci.match.alignment) gives visual segments; the best one's mean
similarity is the visual score. The sound's (rci.match.audio_alignment) gives audio
segments; the best one's mean similarity is the audio score. An audio segment on the same
diagonal as a visual one marks it "both".

Shared music is common, so sound alone never makes a reproduction. An audio segment counts
toward `reproduced` only when the pictures along it agree beyond chance: its support is how
much more similar each query frame is to the reference frame the sound maps it to than to
the reference's frames at large. A segment whose audio and support both reach their
thresholds scores the decision threshold (more as either grows); a candidate's score is the
best of its visual score and its audio segments' scores. Sound without the pictures'
support is reported as `audio_reuse`, never as `reproduced`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import numpy as np
from scipy.ndimage import maximum_filter1d

from rci.errors import RciError, quote
from rci.library.checks import check_embeddings, check_times
from rci.match.alignment import AlignParams, Segment, align_similarities
from rci.match.audio_alignment import align_audio
from rci.match.intervals import intersection_length
from rci.match.pair_input import PairGrid, pair_grid
from rci.match.recall import check_audio_views
from rci.match.views import QueryViews, check_views
from rci.preprocess.audio_prints import AudioPrints

# Similarities one pair may need (float32: 256 MB): 30 min of query at 1 fps against 10 h
# of reference. A client calling rci_match directly cannot ask for more.
MAX_PAIR_CELLS = 1 << 26
# ... and one request's pairs all together (alignment is a Python loop per pair): what the
# ensemble sends by default is 10 candidates per library searched.
MAX_CANDIDATES = 256
MAX_REQUEST_CELLS = 1 << 28


@dataclass(frozen=True)
class FusionParams:
    """The sound's alignment and its weight in the verdict; similarities are 1 - 2 x bit
    errors / bits, support is cosine."""

    node_similarity: float = 0.45  # an audio window pair below this is not a node
    bias: float = 0.4  # subtracted from each node's similarity in a path's score
    threshold: float = 0.82  # an audio segment this similar plays the same audio
    support: float = 0.15  # the pictures agree along an audio segment from this similarity

    def __post_init__(self) -> None:
        if not (0.0 < self.threshold <= 1.0 and 0.0 < self.support <= 2.0):
            raise ValueError(f"threshold must be in (0, 1] and support in (0, 2], got {self}")
        if not (-1.0 <= self.node_similarity <= 1.0 and -1.0 <= self.bias <= 1.0):
            raise ValueError(f"node_similarity and bias must be in [-1, 1], got {self}")

    def alignment(self, visual: AlignParams) -> AlignParams:
        """The audio alignment's parameters: the pictures' gaps and speeds, its own nodes."""
        return dataclasses.replace(visual, min_similarity=self.node_similarity, bias=self.bias)


@dataclass(frozen=True)
class QueryAudio:
    """A query's audio as matching reads it: (V, A, B) uint8 views (one per tempo and phase,
    rci.preprocess.audio_prints.query_prints) of windows at times (A,) float32 seconds."""

    views: np.ndarray
    times: np.ndarray


def checked_query_audio(views: np.ndarray | None, times: np.ndarray | None) -> QueryAudio | None:
    """A client's QUERY_AUDIO_PRINTS (V, A, 32) uint8 and QUERY_AUDIO_TIMES (A,) float32
    seconds as QueryAudio, None when both are absent; RciError otherwise."""
    if views is None and times is None:
        return None
    if views is None or times is None:
        raise RciError("QUERY_AUDIO_PRINTS and QUERY_AUDIO_TIMES come together or not at all")
    views = check_audio_views(views, MAX_PAIR_CELLS)
    return QueryAudio(views, check_times(times, views.shape[1], "QUERY_AUDIO_TIMES"))


@dataclass(frozen=True)
class Match:
    """A candidate's verdict: segments best first, its score (the best of the visual score
    and its audio segments' scores), and the scores of each modality."""

    video_id: str
    score: float
    reproduced: bool
    segments: list[Segment]
    library: str = ""  # the library the video was found in
    visual_score: float = 0.0
    audio_score: float = 0.0
    audio_reuse: bool = False  # the same audio, without the pictures: not a reproduction
    # MatchLite's (rci_matchlite) probability of a copy and the query's share copied; None
    # where no learned scorer ran (matching in process, rci_match called alone).
    probability: float | None = None
    copied_fraction: float | None = None
    # What the learned scorer reads of the pair (rci.match.pair_input); None: no frames.
    grid: PairGrid | None = field(default=None, compare=False, repr=False)


def visual_support(
    S: np.ndarray, query_times: np.ndarray, ref_times: np.ndarray, seg: Segment
) -> float:
    """How well the pictures agree along `seg`: over the query frames in its span, the mean
    similarity at the reference moment it maps them to (the best of the nearest reference
    frame and its two neighbours). S: (Tq, Tr), normalized similarities (hub-like frames
    already pay their penalty), at query_times (Tq,) and ref_times (Tr,) seconds."""
    rows = np.nonzero((query_times >= seg.query_start) & (query_times < seg.query_end))[0]
    if S.size == 0 or not len(rows):
        return 0.0
    rate = (seg.ref_end - seg.ref_start) / max(seg.query_end - seg.query_start, 1e-6)
    mapped = seg.ref_start + (query_times[rows] - seg.query_start) * rate
    right = np.clip(np.searchsorted(ref_times, mapped), 0, len(ref_times) - 1)
    left = np.maximum(right - 1, 0)
    nearest = np.where(mapped - ref_times[left] < ref_times[right] - mapped, left, right)
    local = maximum_filter1d(S[rows], size=3, axis=1, mode="nearest")
    return float(np.mean(local[np.arange(len(rows)), nearest]))


def with_audio(visual: list[Segment], audio: list[Segment], max_gap: float) -> list[Segment]:
    """Visual segments, each marked "both" where an audio segment lies on its diagonal (half
    the shorter query span shared, reference times within max_gap s there), then the audio
    segments that lie on none."""
    merged = list(visual)
    alone = []
    for a in audio:
        for n, v in enumerate(merged):
            if _same_diagonal(v, a, max_gap):
                merged[n] = dataclasses.replace(
                    v,
                    modality="both",
                    audio_score=max(v.audio_score, a.score),
                    support=max(v.support, a.support),
                )
                break
        else:
            alone.append(dataclasses.replace(a, modality="audio", audio_score=a.score))
    return merged + alone


def _same_diagonal(v: Segment, a: Segment, max_gap: float) -> bool:
    start, end = max(v.query_start, a.query_start), min(v.query_end, a.query_end)
    shorter = min(v.query_end - v.query_start, a.query_end - a.query_start)
    if end - start < 0.5 * shorter:
        return False
    middle = (start + end) / 2
    return abs(_ref_time(v, middle) - _ref_time(a, middle)) <= max_gap


def _ref_time(seg: Segment, query_time: float) -> float:
    rate = (seg.ref_end - seg.ref_start) / max(seg.query_end - seg.query_start, 1e-6)
    return seg.ref_start + (query_time - seg.query_start) * rate


def audio_visual_score(seg: Segment, params: AlignParams, fusion: FusionParams) -> float:
    """A segment's score from its sound and the pictures' support along it, on the visual
    score's scale: params.threshold where the weaker of the two just reaches its threshold."""
    if seg.modality == "visual":
        return 0.0
    ratio = min(seg.audio_score / fusion.threshold, seg.support / fusion.support)
    return float(np.clip(params.threshold * ratio, 0.0, 1.0))


def decide(m: Match, segments: list[Segment], params: AlignParams, fusion: FusionParams) -> Match:
    """`m` with `segments` and the verdict they give. Audio below fusion.threshold is not
    the same audio: an audio segment that weak is dropped, a both segment becomes visual."""
    segments = [
        s if s.modality == "visual" or s.audio_score >= fusion.threshold
        else dataclasses.replace(s, modality="visual", audio_score=0.0, support=0.0)
        for s in segments
        if s.modality != "audio" or s.audio_score >= fusion.threshold
    ]  # fmt: skip
    visual = max((s.score for s in segments if s.modality != "audio"), default=0.0)
    audio = max((s.audio_score for s in segments), default=0.0)
    score = max([visual] + [audio_visual_score(s, params, fusion) for s in segments])
    reproduced = score >= params.threshold
    return dataclasses.replace(
        m,
        segments=segments,
        score=score,
        reproduced=reproduced,
        visual_score=visual,
        audio_score=audio,
        audio_reuse=not reproduced and audio >= fusion.threshold,
    )


def match(
    video_id: str,
    query: np.ndarray | QueryViews,
    query_times: np.ndarray,
    ref: np.ndarray,
    ref_times: np.ndarray,
    params: AlignParams = AlignParams(),
    audio: QueryAudio | None = None,
    ref_audio: AudioPrints | None = None,
    fusion: FusionParams = FusionParams(),
) -> Match:
    """Align and judge one candidate: its (Tr, D) descriptors at ref_times (Tr,) s against
    the query's, and its audio fingerprints against the query's audio when both are given."""
    views = QueryViews.of(query)
    S = np.zeros((len(views), len(ref)), np.float32)
    if len(views) and len(ref):
        S = views.similarities(ref)  # (Tq, Tr), less any penalty
    segments = align_similarities(S, query_times, ref_times, params)
    grid = None
    if S.size:
        heard = audio is not None and ref_audio is not None
        grid = pair_grid(
            S,
            query_times,
            ref_times,
            audio.views if heard else None,
            audio.times if heard else None,
            ref_audio.bits if heard else None,
            ref_audio.times if heard else None,
        )
    if audio is not None and ref_audio is not None and len(ref_audio.times):
        found = align_audio(
            audio.views, audio.times, ref_audio.bits, ref_audio.times, fusion.alignment(params)
        )
        found = [
            dataclasses.replace(a, support=visual_support(S, query_times, ref_times, a))
            for a in found
        ]
        segments = with_audio(segments, found, params.max_gap)
    return decide(Match(video_id, 0.0, False, [], grid=grid), segments, params, fusion)


def match_candidates(
    query: np.ndarray | QueryViews,
    query_times: np.ndarray,
    candidates: list[tuple[str, np.ndarray, np.ndarray]],
    params: AlignParams = AlignParams(),
    libraries: list[str] | None = None,
    audio: QueryAudio | None = None,
    candidate_audio: list[AudioPrints | None] | None = None,
    fusion: FusionParams = FusionParams(),
) -> list[Match]:
    """Match every (video_id, embeddings (T, D), timestamps (T,)) candidate, labelled with
    its library when `libraries` (one name per candidate) is given, and with its audio
    (`candidate_audio`, one per candidate, None for none) against the query's `audio`;
    best score first. The query (its embeddings, or QueryViews) must be unit rows with
    increasing times, and each pair's similarity matrices at most MAX_PAIR_CELLS (RciError
    otherwise)."""
    views = QueryViews.of(query)
    query = views.embeddings
    check_embeddings(query, "EMBEDDINGS")
    check_times(query_times, len(query), "TIMESTAMPS")
    check_views(views)
    if len(candidates) > MAX_CANDIDATES:
        raise RciError(f"{len(candidates)} candidates; at most {MAX_CANDIDATES} per request")
    sounds = [None] * len(candidates) if candidate_audio is None else candidate_audio
    if len(sounds) != len(candidates):
        raise RciError(f"{len(sounds)} candidates' audio for {len(candidates)} candidates")
    windows = 0 if audio is None else audio.views.shape[1]
    cells = len(query) * sum(len(emb) for _, emb, _ in candidates)
    cells += windows * sum(len(a.times) for a in sounds if a is not None)
    if cells > MAX_REQUEST_CELLS:
        raise RciError(f"{cells} similarities over all pairs; at most {MAX_REQUEST_CELLS}")
    for (video_id, emb, _), sound in zip(candidates, sounds, strict=True):
        if emb.shape[1] != query.shape[1]:
            raise RciError(
                f"candidate {quote(video_id)} has {emb.shape[1]} columns, "
                f"the query {query.shape[1]}"
            )
        pair = max(len(query) * len(emb), windows * (0 if sound is None else len(sound.times)))
        if pair > MAX_PAIR_CELLS:
            raise RciError(
                f"the query x candidate {quote(video_id)} need {pair} similarities; at most "
                f"{MAX_PAIR_CELLS} per pair"
            )
    labels = [""] * len(candidates) if libraries is None else libraries
    matches = [
        dataclasses.replace(
            match(vid, views, query_times, emb, times, params, audio, sound, fusion), library=lib
        )
        for (vid, emb, times), lib, sound in zip(candidates, labels, sounds, strict=True)
    ]
    recurring = None
    if views.recurrence is not None:

        def recurring(seg: Segment) -> float:
            inside = (query_times >= seg.query_start) & (query_times < seg.query_end)
            return float(np.median(views.recurrence[inside])) if inside.any() else 0.0

    chromeless = without_chrome(matches, params, recurring, fusion)
    return sorted(chromeless, key=lambda m: -m.score)


def without_chrome(
    matches: list[Match],
    params: AlignParams,
    recurring=None,
    fusion: FusionParams = FusionParams(),
) -> list[Match]:
    """`matches` less their chrome segments (AlignParams.chrome_seconds), rescored.

    A short segment counts as shared when at least chrome_videos matches (itself included)
    have a segment of its kind (pictures: visual or both; sound: audio or both) covering
    half or more of its query span, or, for pictures, when `recurring(segment)` (the
    library videos holding its query frames, median over them) reaches chrome_videos.
    Long segments always stay: a video copied many times is still copied. Kinds stay apart
    so that music several videos share never makes a short copied picture chrome.
    """
    if not params.chrome_videos:
        return matches

    def heard(seg: Segment) -> bool:
        return seg.modality == "audio"

    def shared(seg: Segment) -> bool:
        span = seg.query_end - seg.query_start
        if span > params.chrome_seconds:
            return False
        if recurring is not None and not heard(seg) and recurring(seg) >= params.chrome_videos:
            return True
        holders = sum(
            any(
                intersection_length(
                    [(seg.query_start, seg.query_end)], [(o.query_start, o.query_end)]
                )
                >= 0.5 * span
                for o in m.segments
                if o.modality == "both" or heard(o) == heard(seg)
            )
            for m in matches
        )
        return holders >= params.chrome_videos

    out = []
    for m in matches:
        kept = [seg for seg in m.segments if not shared(seg)]
        if len(kept) == len(m.segments):
            out.append(m)
            continue
        out.append(decide(m, kept, params, fusion))
    return out


def pack_matches(matches: list[Match]) -> dict[str, np.ndarray]:
    """Matches as tensors: VIDEO_IDS (N,) bytes, VIDEO_LIBRARIES (N,) bytes, SCORES,
    VISUAL_SCORES and AUDIO_SCORES (N,) float32, REPRODUCED and AUDIO_REUSE (N,) bool,
    SEGMENTS (S, 5) float32 [query_start, query_end, ref_start, ref_end, score] in seconds,
    SEGMENT_VIDEO (S,) int32, the row in VIDEO_IDS each segment belongs to, and
    SEGMENT_MODALITIES (S,) bytes, b"visual", b"audio" or b"both"."""
    segments = [seg for m in matches for seg in m.segments]
    owner = [n for n, m in enumerate(matches) for _ in m.segments]
    return {
        "VIDEO_IDS": np.array([m.video_id.encode() for m in matches], dtype=object),
        "VIDEO_LIBRARIES": np.array([m.library.encode() for m in matches], dtype=object),
        "SCORES": np.array([m.score for m in matches], dtype=np.float32),
        "VISUAL_SCORES": np.array([m.visual_score for m in matches], dtype=np.float32),
        "AUDIO_SCORES": np.array([m.audio_score for m in matches], dtype=np.float32),
        "REPRODUCED": np.array([m.reproduced for m in matches], dtype=bool),
        "AUDIO_REUSE": np.array([m.audio_reuse for m in matches], dtype=bool),
        "SEGMENTS": np.array([s.as_row() for s in segments], dtype=np.float32).reshape(-1, 5),
        "SEGMENT_VIDEO": np.array(owner, dtype=np.int32),
        "SEGMENT_MODALITIES": np.array([s.modality.encode() for s in segments], dtype=object),
    }


def unpack_matches(tensors: dict[str, np.ndarray]) -> list[Match]:
    """Inverse of pack_matches (segment match counts, audio scores and support are not
    carried and read as 0), with rci_matchlite's PROBABILITIES and COPIED_FRACTIONS where
    given. Tensors a server before the audio channel sent lack the audio outputs: every
    segment is then visual and the visual score the score."""
    ids = tensors["VIDEO_IDS"].reshape(-1)
    n = len(ids)

    def column(name: str, default) -> list:
        values = tensors.get(name)
        return [default] * n if values is None else values.reshape(-1).tolist()

    libraries = column("VIDEO_LIBRARIES", b"")
    scores = column("SCORES", 0.0)
    probabilities, fractions = column("PROBABILITIES", None), column("COPIED_FRACTIONS", None)
    visual = [float(x) for x in tensors.get("VISUAL_SCORES", np.array(scores)).reshape(-1)]
    audio, reuse = column("AUDIO_SCORES", 0.0), column("AUDIO_REUSE", False)
    owners = tensors["SEGMENT_VIDEO"].reshape(-1)
    modalities = tensors.get("SEGMENT_MODALITIES")
    modalities = [b"visual"] * len(owners) if modalities is None else modalities.reshape(-1)
    segments: dict[int, list[Segment]] = {}
    for row, owner, modality in zip(
        tensors["SEGMENTS"].reshape(-1, 5), owners, modalities, strict=True
    ):
        q0, q1, r0, r1, score = (float(x) for x in row)
        seg = Segment(q0, q1, r0, r1, score, matches=0, modality=_text(modality))
        segments.setdefault(int(owner), []).append(seg)
    return [
        Match(
            video_id=_text(raw),
            score=float(scores[k]),
            reproduced=bool(flag),
            segments=segments.get(k, []),
            library=_text(libraries[k]),
            visual_score=visual[k],
            audio_score=float(audio[k]),
            audio_reuse=bool(reuse[k]),
            probability=_finite(probabilities[k]),
            copied_fraction=_finite(fractions[k]),
        )
        for k, (raw, flag) in enumerate(zip(ids, column("REPRODUCED", False), strict=True))
    ]


def _finite(value) -> float | None:
    """A served probability or fraction; None where none was given or it is NaN (pairs the
    student could not score, decided by the rule)."""
    return None if value is None or not np.isfinite(value) else float(value)


def _text(raw) -> str:
    return raw.decode() if isinstance(raw, bytes) else str(raw)
