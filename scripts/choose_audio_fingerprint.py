"""Which audio fingerprint: each candidate scores every (query, library video) pair of a
built benchmark's train and val splits by aligning the two soundtracks, and a table shows
how well each finds the library audio a query holds, per audio slice.

    .venv/bin/python scripts/choose_audio_fingerprint.py --out .rci/bench-full

A pair is an audio copy when the query carries the reference's sound: a copy with its audio
kept or mixed with noise or a voice-over, a same-audio near miss, or the background video
of an inside query whose sound it keeps. Copies with the audio removed or replaced are
audio negatives, as are all other pairs. Candidates:
- chromaprint: rci.preprocess.audio_prints (libchromaprint in process, 8 items a window as bits,
  quiet windows dropped, queries read at five tempos and four phases); also without the
  tempos, and without dropping quiet windows;
- logmel-centred / -sign / -slope: windows of the log-mel filter bank rci_preprocess
  computes, pooled into 24 bands x 16 steps a second: centred per band, the signs of its
  band-and-time second difference (Philips-style bits), or that difference itself; read
  at the same tempos (as window spans) and five phases.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rci.bench.metrics import SegmentMatch, micro_average_precision, vcsl_f_score
from rci.match.alignment import AlignParams, align_similarities
from rci.match.verdict import Match, without_chrome
from rci.preprocess.audio import AudioParams, audio_features, decode_audio
from rci.preprocess.audio_prints import (
    HOP,
    ITEM_SECONDS,
    AudioPrintParams,
    audio_prints,
    query_prints,
    unpack_signs,
)

AUDIO_TRUTH = ("kept", "noised", "voiced")


@dataclass(frozen=True)
class LogMelParams:
    """Times in seconds, levels in dB."""

    window: float = 1.0  # a library fingerprint's span
    hop: float = 0.5  # between fingerprint starts
    steps: int = 16  # time cells per window
    bands: int = 24  # frequency cells, from the filter bank's low_band-th band up
    low_band: int = 4  # skip the lowest mel bands (below ~250 Hz: rumble, hum)
    min_activity: float = 1.5  # RMS dB of a centred window below which it is silent
    # Spans a query is read at: tempo changes of 0.75x to 1.33x, a step of about 15%.
    tempos: tuple[float, ...] = (0.75, 0.87, 1.0, 1.15, 1.33)
    # Query windows per hop: a copy's start falls anywhere between two library windows.
    phases: int = 5
    form: str = "centred"

    def __post_init__(self) -> None:
        if not (0 < self.hop <= self.window):
            raise ValueError("need 0 < hop <= window")
        if self.steps < 2 or self.bands < 2:
            raise ValueError("need at least 2 steps and 2 bands")
        if self.phases < 1:
            raise ValueError("need at least 1 phase")
        if 1.0 not in self.tempos or any(not 0.25 <= t <= 4.0 for t in self.tempos):
            raise ValueError("tempos must include 1.0 and lie in 0.25-4.0")

    @property
    def dim(self) -> int:
        if self.form == "centred":
            return self.steps * self.bands
        return (self.steps - 1) * (self.bands - 1)


def _band_edges(n_mels: int, params: LogMelParams) -> np.ndarray:
    return np.linspace(params.low_band, n_mels, params.bands + 1).round().astype(int)


def _pooled_bands(fbank: np.ndarray, params: LogMelParams) -> np.ndarray:
    """(F + 1, bands) running sums over time of the bands' mean dB (cumulative, row 0 zero)."""
    edges = _band_edges(fbank.shape[1], params)
    bands = np.stack(
        [fbank[:, a:b].mean(axis=1) for a, b in zip(edges[:-1], edges[1:], strict=True)], axis=1
    )
    return np.concatenate([np.zeros((1, params.bands)), np.cumsum(bands, axis=0, dtype=np.float64)])


def _windows(
    running: np.ndarray, starts: np.ndarray, span: float, rate: float, params: LogMelParams
) -> np.ndarray:
    """(W, bands, steps) mean dB of each window [start, start + span) s in `steps` cells."""
    edges = starts[:, None] + span * np.arange(params.steps + 1)[None, :] / params.steps
    frames = np.clip(np.round(edges * rate).astype(int), 0, len(running) - 1)
    lo, hi = frames[:, :-1], frames[:, 1:]
    hi = np.maximum(hi, lo + 1).clip(max=len(running) - 1)
    sums = running[hi] - running[lo]  # (W, steps, bands)
    return (sums / np.maximum(hi - lo, 1)[..., None]).transpose(0, 2, 1)


def _unit(cells: np.ndarray, form: str = "centred") -> tuple[np.ndarray, np.ndarray]:
    """(W, D) unit vectors of (W, bands, steps) cells, and (W,) the RMS dB of the
    band-centred cells (activity)."""
    centred = cells - cells.mean(axis=2, keepdims=True)
    flat = centred.reshape(len(cells), cells.shape[1] * cells.shape[2])
    rms = np.sqrt(np.mean(flat**2, axis=1))
    if form == "sign":
        # Philips-style bits: the sign of the band-to-band energy step's change over time.
        steps = np.diff(np.diff(cells, axis=1), axis=2).reshape(
            len(cells), (cells.shape[1] - 1) * (cells.shape[2] - 1)
        )
        return (np.sign(steps) / np.sqrt(steps.shape[1])).astype(np.float32), rms
    if form == "slope":
        steps = np.diff(np.diff(cells, axis=1), axis=2).reshape(
            len(cells), (cells.shape[1] - 1) * (cells.shape[2] - 1)
        )
        norm = np.maximum(np.linalg.norm(steps, axis=1, keepdims=True), 1e-6)
        return (steps / norm).astype(np.float32), rms
    return (flat / np.maximum(rms, 1e-6)[:, None] / np.sqrt(flat.shape[1])).astype(np.float32), rms


def logmel_prints(
    fbank: np.ndarray,
    params: LogMelParams = LogMelParams(),
    audio: AudioParams = AudioParams(),
    query: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """(A,) float32 window start times in seconds and (V, A, D) float32 unit fingerprints of
    a (F, n_mels) log-mel filter bank.

    A library video has one view (V = 1). A query has one view per tempo and phase: the
    window of span window / tempo, started phase x hop / phases after its slot's start, so
    a copy that begins anywhere, at any of the tempos, meets a library window closely.
    A slot is kept when its plain window is active (AudioPrintParams.min_activity).
    """
    rate = audio.frame_rate
    seconds = len(fbank) / rate
    tempos, phases = (params.tempos, params.phases) if query else ((1.0,), 1)
    if seconds < params.window:
        return np.zeros(0, np.float32), np.zeros((len(tempos) * phases, 0, params.dim), np.float32)
    starts = np.arange(0.0, seconds - params.window + 1e-9, params.hop)
    running = _pooled_bands(fbank.astype(np.float64), params)
    _, activity = _unit(_windows(running, starts, params.window, rate, params))
    # A view that runs past the audio's end reads its last frame there.
    starts = starts[activity >= params.min_activity]
    views = [
        _unit(
            _windows(running, starts + p * params.hop / phases, params.window / t, rate, params),
            params.form,
        )[0]
        for t in tempos
        for p in range(phases)
    ]
    return starts.astype(np.float32), np.stack(views)


def audio_truth(query: dict) -> list[dict]:
    """The library sounds a query carries: truth spans whose audio survived, a same-audio near
    miss's reference (span unknown), an inside query's background when it keeps that sound."""
    if query["trap"] == "same_audio":
        return [{"ref_id": r} for r in query["resembles"]]
    if query["kind"] == "inside":
        keep = 0 if query["audio"] == "kept" else 1
        return [query["truth"][keep]] if query["audio"] in ("kept", "replaced") else []
    return query["truth"] if query["audio"] in AUDIO_TRUTH else []


def score_pairs(
    queries: dict[str, tuple], library: dict[str, tuple], params: AlignParams, period: float
) -> tuple[dict, list[SegmentMatch]]:
    """Best aligned segment score of every (query, library video) pair, chrome removed as
    rci_match removes it, and the segments."""
    scores, segments = {}, []
    for qid, (qt, qv) in queries.items():
        matches = []
        for rid, (rt, rv) in library.items():
            if qv.shape[1] == 0 or rv.shape[1] == 0:
                continue
            S = qv.reshape(-1, qv.shape[2]) @ rv[0].T
            best = S.reshape(qv.shape[0], qv.shape[1], -1).max(axis=0)
            if (best.max(axis=1) >= params.min_similarity).sum() < params.min_matches:
                continue
            found = align_similarities(best, qt, rt, params, frame_period=period)
            score = max((seg.score for seg in found), default=0.0)
            matches.append(Match(rid, score, score >= params.threshold, found))
        for m in without_chrome(matches, params):
            if m.segments:
                scores[(qid, m.video_id)] = m.score
                segments += [SegmentMatch(qid, m.video_id, *s.as_row()) for s in m.segments]
    return scores, segments


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(".rci/bench-full"))
    parser.add_argument("--splits", default="train,val")
    parser.add_argument("--only", default="", help="candidates to run, comma-separated")
    args = parser.parse_args()
    manifest = json.loads((args.out / "manifest.json").read_text())
    splits = args.splits.split(",")
    queries = [q for q in manifest["queries"] if q["split"] in splits]
    library = [s for s in manifest["sources"] if s["role"] in ("reference", "library")]
    audio = AudioParams()
    samples: dict[str, np.ndarray] = {}
    began = time.monotonic()
    for item in [*library, *queries]:
        key = item.get("query_id") or item["id"]
        samples[key] = decode_audio((args.out / item["path"]).read_bytes(), audio)
    print(f"decoded {len(samples)} soundtracks in {time.monotonic() - began:.0f} s")
    fbanks = {k: audio_features(v, audio).fbank for k, v in samples.items()}

    rate = audio.sample_rate
    chroma = AudioPrintParams()

    def chromaprint(params: AudioPrintParams):
        def ref(k):
            p = audio_prints(samples[k], rate, params)
            return p.times, unpack_signs(p.bits)[None]

        def query(k):
            times, views = query_prints(samples[k], rate, params)
            return times, unpack_signs(views)

        return ref, query, HOP * ITEM_SECONDS, AlignParams(min_similarity=0.45, bias=0.4)

    def logmel(form: str):
        params = LogMelParams(form=form)
        return (
            lambda k: logmel_prints(fbanks[k], params, audio),
            lambda k: logmel_prints(fbanks[k], params, audio, query=True),
            params.hop,
            AlignParams(min_similarity=0.3, bias=0.25),
        )

    candidates: dict[str, tuple[Callable, Callable, float, AlignParams]] = {
        "chromaprint": chromaprint(chroma),
        "chromaprint, tempo 1 only": chromaprint(dataclasses.replace(chroma, tempos=(1.0,))),
        "chromaprint, quiet kept": chromaprint(dataclasses.replace(chroma, min_level=-1e9)),
        **{f"logmel-{form}": logmel(form) for form in ("centred", "sign", "slope")},
    }
    truth = {(q["query_id"], t["ref_id"]) for q in queries for t in audio_truth(q)}
    true_segments = [
        SegmentMatch(q["query_id"], t["ref_id"], t["query_start"], t["query_end"],
                     t["ref_start"], t["ref_end"])
        for q in queries for t in audio_truth(q) if "query_start" in t
    ]  # fmt: skip
    print(f"{len(queries)} queries, {len(library)} library videos, {len(truth)} audio pairs")
    header = "| fingerprint | pair uAP | VCSL F | threshold | P | R | R kept | R noised | R speed "
    header += "| s/min |"
    print(header + "\n|" + "---|" * 10)
    speed = {q["query_id"] for q in queries if any(e["name"] == "speed" for e in q["edits"])}
    minutes = sum(len(v) for v in samples.values()) / audio.sample_rate / 60
    modes = {q["query_id"]: q["audio"] for q in queries}
    chosen = args.only.split(",") if args.only else list(candidates)
    for name, (ref_fn, query_fn, period, params) in candidates.items():
        if name not in chosen:
            continue
        began = time.monotonic()
        refs = {s["id"]: ref_fn(s["id"]) for s in library}
        qs = {q["query_id"]: query_fn(q["query_id"]) for q in queries}
        cost = time.monotonic() - began
        scores, segments = score_pairs(qs, refs, params, period)
        uap = micro_average_precision(truth, scores)
        scored = sorted({s.pair for s in true_segments})
        mine = [s for s in segments if s.pair in set(scored)]
        _, _, f = vcsl_f_score(mine, true_segments, scored)
        threshold, p, r = best_f1(truth, scores)
        above = {pair for pair, v in scores.items() if v >= threshold}
        by_mode = [
            _share([t for t in truth if modes[t[0]] == m], above) for m in ("kept", "noised")
        ]
        print(
            f"| {name} | {uap:.3f} | {f:.3f} | {threshold:.3f} | {p:.3f} | {r:.3f} "
            f"| {by_mode[0]} | {by_mode[1]} | {_share([t for t in truth if t[0] in speed], above)} "
            f"| {cost / minutes:.2f} |"
        )
        false = sorted((v, k) for k, v in scores.items() if k not in truth)[-5:]
        missed = sorted((scores.get(k, 0.0), k) for k in truth)[:5]
        print(f"  strongest false: {false}\n  weakest true: {missed}")
    return 0


def best_f1(truth: set, scores: dict) -> tuple[float, float, float]:
    """(threshold, precision, recall) of the score threshold with the best pair F1."""
    best = (0.0, 0.0, 0.0, -1.0)
    for threshold in sorted(set(scores.values())):
        above = {k for k, v in scores.items() if v >= threshold}
        hits = len(above & truth)
        p, r = hits / max(len(above), 1), hits / len(truth)
        f1 = 2 * p * r / max(p + r, 1e-9)
        if f1 > best[3]:
            best = (threshold, p, r, f1)
    return best[:3]


def _share(pairs: list, found: set) -> str:
    return f"{sum(p in found for p in pairs)}/{len(pairs)}"


if __name__ == "__main__":
    raise SystemExit(main())
