"""Score the served system on a built benchmark: ingest references, detect every query.

Writes results.json (every prediction and metric) and results.md (tables) into the build
directory. Metrics: pair uAP, VSC segment AP, VCSL P/R/F, decisions at the served
threshold, content-box IoU, and cost; overall, per split and per edit.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rci.bench.boxes import query_iou
from rci.bench.metrics import (
    SegmentMatch,
    decision_scores,
    match_records,
    micro_average_precision,
    segment_average_precision,
    vcsl_f_score,
)
from rci.bench.peers import PeerKind, make_peer, predict
from rci.match.alignment import AlignParams
from rci.match.verdict import FusionParams
from rci_client import RciClient


def run(
    build_dir: Path,
    client: RciClient,
    library: str,
    peers: tuple[PeerKind, ...] = (),
    peak_memory_mb: Callable[[], float] | None = None,
    reuse_peers: bool = False,
    verdict: str | None = None,
) -> dict:
    """Ingest the manifest's references into `library` (empty) and detect every query
    (system "rci-refs-only"), then ingest the never-copied library videos and detect every
    query again ("rci"), score; then the same for each peer, on the same data.
    `peak_memory_mb` reads the server's peak resident memory when the runner started the
    server. Every system's predictions are kept
    in predictions/NAME.json; `reuse_peers` takes the peers' from there when present (they
    do not depend on RCI). A peer that fails is reported in peer_errors and left out.
    `verdict`: who decides each detect ("matchlite" or "heuristic"; None: the library's)."""
    manifest = json.loads((build_dir / "manifest.json").read_text())
    references = [s for s in manifest["sources"] if s["role"] == "reference"]
    never_copied_videos = [s for s in manifest["sources"] if s["role"] == "library"]
    ingest_seconds, ingested = 0.0, 0.0
    # Twice: against the references alone, then with the never-copied videos added, so the
    # cost of a realistic library to precision is measured on the same queries.
    passes = {}
    for name, adding in ((REFS_ONLY, references), ("rci", never_copied_videos)):
        for source in adding:
            result = client.ingest(build_dir / source["path"], source["id"], library)
            ingest_seconds += result.seconds
            ingested += result.duration
        if name == REFS_ONLY and not never_copied_videos:
            continue
        passes[name] = [
            _detect(client, build_dir, query, library, verdict) for query in manifest["queries"]
        ]
    predictions = passes["rci"]
    cost = {
        "ingest_seconds_per_video_minute": 60 * ingest_seconds / max(ingested, 1e-9),
        "detect_seconds_per_video_minute": 60
        * sum(p["seconds"] for p in predictions)
        / max(sum(p["duration"] for p in predictions), 1e-9),
        "server_peak_memory_mb": peak_memory_mb() if peak_memory_mb else None,
    }
    saved = build_dir / "predictions"
    saved.mkdir(exist_ok=True)
    for name, records in passes.items():
        (saved / f"{name}.json").write_text(json.dumps(records))
    systems, seconds, errors, notes = dict(passes), {}, {}, {}
    for kind in peers:
        path = saved / f"{kind.value}.json"
        if reuse_peers and path.exists():
            systems[kind.value] = json.loads(path.read_text())
            continue
        start = time.perf_counter()
        peer = make_peer(kind)
        try:
            systems[kind.value] = predict(peer, build_dir, manifest)
        except Exception as error:  # a peer's failure must not cost RCI's results
            errors[kind.value] = f"{type(error).__name__}: {str(error)[-500:]}"
            continue
        if peer.notes():
            notes[kind.value] = peer.notes()
        seconds[kind.value] = time.perf_counter() - start
        path.write_text(json.dumps(systems[kind.value]))
    cost["peer_seconds"] = seconds
    return report(build_dir, systems, cost, errors, notes)


def rescore(build_dir: Path) -> dict:
    """The report again from the predictions and cost a run saved (predictions/*.json,
    results.json): scoring changes need no new run."""
    previous = json.loads((build_dir / "results.json").read_text())
    saved = build_dir / "predictions"
    # The run's order (its tables' columns), then any system saved since.
    names = [k.rsplit(" (", 1)[0] for k in previous["systems"]]
    names += sorted(p.stem for p in saved.glob("*.json"))
    systems = {n: json.loads((saved / f"{n}.json").read_text()) for n in dict.fromkeys(names)
               if (saved / f"{n}.json").exists()}  # fmt: skip
    return report(
        build_dir, systems, previous["cost"], previous.get("peer_errors", {}),
        previous.get("peer_notes", {}),
    )  # fmt: skip


def report(
    build_dir: Path, systems: dict[str, list[dict]], cost: dict, errors: dict, notes: dict
) -> dict:
    """Score every system's predictions ("rci" the served RCI; its visual and audio views
    are added), write results.json and results.md, return the report."""
    manifest = json.loads((build_dir / "manifest.json").read_text())
    predictions = systems["rci"]
    out = {
        "mode": manifest["mode"],
        "seed": manifest["seed"],
        "references": sum(s["role"] == "reference" for s in manifest["sources"]),
        "never_copied": sum(s["role"] == "library" for s in manifest["sources"]),
        "queries": len(manifest["queries"]),
        "cost": cost,
        "per_split": {},
        "predictions": predictions,
    }
    by_id = {p["query_id"]: p for p in predictions}
    for split in sorted({q["split"] for q in manifest["queries"]}):
        chosen = [q for q in manifest["queries"] if q["split"] == split]
        out["per_split"][split] = score(chosen, [by_id[q["query_id"]] for q in chosen])
    systems = {k: v for k, v in systems.items() if not k.startswith("rci ")}
    ordered = {k: systems[k] for k in (REFS_ONLY, "rci") if k in systems}
    for modality in ("visual", "audio"):  # the same run, one modality deciding alone
        view = modality_view(predictions, modality)
        if view is not None:
            ordered[f"rci {modality}"] = view
    ordered.update(systems)
    out["peer_errors"], out["peer_notes"] = errors, notes
    out["systems"] = compare(manifest, ordered)
    out["thresholds"] = {
        name: choose_threshold(manifest["queries"], records) for name, records in ordered.items()
    }
    out["overall"] = out["systems"]["rci (all)"]["overall"]
    out["per_edit"] = out["systems"]["rci (all)"]["per_edit"]
    (build_dir / "results.json").write_text(json.dumps(out, indent=1))
    (build_dir / "results.md").write_text(markdown(out))
    return out


REFS_ONLY = "rci-refs-only"  # RCI with only the references ingested


def _detect(
    client: RciClient, build_dir: Path, query: dict, library: str, verdict: str | None = None
) -> dict:
    """One query's prediction record (runner format), with its wall time and content boxes."""
    detected = client.detect(build_dir / query["path"], library, verdict=verdict)
    return {
        "query_id": query["query_id"],
        "seconds": detected.seconds,
        "duration": detected.duration,
        "matches": match_records(detected.matches),
        "box_iou": query_iou(query, detected.frame_times, detected.content_boxes),
    }


def score(queries: list[dict], predictions: list[dict], reuse: ReuseTruth | None = None) -> dict:
    """All metrics over these queries and their predictions (same order); with `reuse`, the
    (query, video) pairs that share audio without copying pictures (audio_reuse_truth),
    the precision and recall of the predictions' audio_reuse flags too."""
    truth_pairs = {(q["query_id"], t["ref_id"]) for q in queries for t in q["truth"]}
    pair_scores: dict[tuple[str, str], float] = {}
    decided, flagged, predicted_segments, true_segments = set(), set(), [], []
    listed = {(q["query_id"], m["ref_id"]) for q, p in zip(queries, predictions, strict=True)
              for m in p["matches"]}  # fmt: skip
    for q, p in zip(queries, predictions, strict=True):
        for t in q["truth"]:
            true_segments.append(
                SegmentMatch(
                    q["query_id"],
                    t["ref_id"],
                    t["query_start"],
                    t["query_end"],
                    t["ref_start"],
                    t["ref_end"],
                )  # fmt: skip
            )
        for m in p["matches"]:
            pair = (q["query_id"], m["ref_id"])
            pair_scores[pair] = max(pair_scores.get(pair, 0.0), m["score"])
            if m["reproduced"]:
                decided.add(pair)
            if m.get("audio_reuse"):
                flagged.add(pair)
            kinds = m.get("modalities") or ["visual"] * len(m["segments"])
            for (q0, q1, r0, r1, s), kind in zip(m["segments"], kinds, strict=True):
                if kind == "audio" and not m["reproduced"]:
                    continue  # shared sound without the pictures: reuse, not a copy claim
                predicted_segments.append(
                    SegmentMatch(q["query_id"], m["ref_id"], q0, q1, r0, r1, s)
                )
    pairs = {s.pair for s in true_segments} | {s.pair for s in predicted_segments}
    precision, recall, f1 = decision_scores(truth_pairs, decided)
    ious = [p["box_iou"] for p in predictions if p["box_iou"] is not None]
    out = {
        "queries": len(queries),
        "true_pairs": len(truth_pairs),
        "decision_precision": precision,
        "decision_recall": recall,
        "decision_f1": f1,
        "box_iou": float(np.mean(ious)) if ious else None,
        # Recall's ceiling: true sources among the candidates handed to alignment.
        "source_recall": len(truth_pairs & listed) / len(truth_pairs) if truth_pairs else None,
    }
    if reuse is not None and any("audio_reuse" in m for p in predictions for m in p["matches"]):
        ids = {q["query_id"] for q in queries}
        expected = {pair for pair in reuse.pairs if pair[0] in ids}
        counted = flagged - reuse.unsure
        hits = len(expected & flagged)
        out["audio_reuse_pairs"] = len(expected)
        out["audio_reuse_unsure_flagged"] = len(flagged & reuse.unsure)
        out["audio_reuse_precision"] = hits / len(counted) if counted else None
        out["audio_reuse_recall"] = hits / len(expected) if expected else None
    if truth_pairs:
        out["pair_uap"] = micro_average_precision(truth_pairs, pair_scores)
        out["segment_ap"] = segment_average_precision(true_segments, predicted_segments)
        vp, vr, vf = vcsl_f_score(predicted_segments, true_segments, sorted(pairs))
        out.update(vcsl_precision=vp, vcsl_recall=vr, vcsl_f=vf)
    return out


SPLIT_BOUND = {PeerKind.SIGNATURE.value}
AUDIO_MODES = ("kept", "noised", "voiceover", "replaced", "removed")
SHARED_SECONDS = 5.0  # audio shared this long is reuse; shorter is chrome (a jingle)


@dataclass(frozen=True)
class ReuseTruth:
    """(query, library video) pairs for audio reuse: `pairs` share SHARED_SECONDS or more of
    one recording while the pictures are not copied; `unsure` play other parts of the same
    music track, which may or may not repeat what the query plays (a loop, a chorus): a
    flag there is not counted against precision, and none is required there."""

    pairs: set[tuple[str, str]]
    unsure: set[tuple[str, str]]


def _track_span(audio: dict, start: float, end: float) -> tuple[str, float, float] | None:
    """The music track and the span of it that a video's [start, end) s plays."""
    if audio.get("kind") != "music":
        return None
    played = audio["end"] - audio["start"]
    lo, hi = max(start, 0.0), min(end, played)
    return (audio["file"], audio["start"] + lo, audio["start"] + hi) if hi > lo else None


def audio_reuse_truth(manifest: dict) -> ReuseTruth:
    """Audio reuse's truth: the same-audio near misses and the reference whose sound they
    play; and a query carrying a reference's sound (kept, noised, voiced over; an inside
    query, the one it plays) or another source's (`other_sound`: host material, a
    replacement soundtrack) with every other library video that plays SHARED_SECONDS or
    more of the same stretch of that music track (a never-copied video sharing the
    reference's music, manifest audio `shared_with`), unsure where it plays another
    stretch of that track."""
    sources = {s["id"]: s["provenance"]["audio"] for s in manifest["sources"]}
    library = [s for s in manifest["sources"] if s["role"] in ("reference", "library")]
    pairs, unsure = set(), set()
    for q in manifest["queries"]:
        if q.get("trap") == "same_audio":  # a reference's whole sound under other pictures
            heard = [{"ref_id": r, "ref_start": 0.0, "ref_end": float("inf")}
                     for r in q["resembles"]]  # fmt: skip
            pairs |= {(q["query_id"], r) for r in q["resembles"]}
        elif q["kind"] == "inside":  # one reference over another: the sound of one of them
            heard = q["truth"][:1] if q["audio"] == "kept" else q["truth"][1:2]
        elif q["audio"] in ("kept", "noised", "voiceover"):
            heard = q["truth"]
        else:
            heard = []
        heard = heard + [{"ref_id": s, "ref_start": 0.0, "ref_end": float("inf")}
                         for s in q.get("other_sound", [])]  # fmt: skip
        for t in heard:
            span = _track_span(sources[t["ref_id"]], t["ref_start"], t["ref_end"])
            if span is None:
                continue
            for s in library:
                audio = s["provenance"]["audio"]
                if s["id"] == t["ref_id"] or audio.get("file") != span[0]:
                    continue
                other = _track_span(audio, 0.0, float("inf"))
                shared = 0.0 if other is None else min(span[2], other[2]) - max(span[1], other[1])
                pair = (q["query_id"], s["id"])
                (pairs if shared >= SHARED_SECONDS else unsure).add(pair)
    truth = {(q["query_id"], t["ref_id"]) for q in manifest["queries"] for t in q["truth"]}
    return ReuseTruth(pairs - truth, unsure - pairs - truth)


def modality_view(records: list[dict], modality: str) -> list[dict]:
    """Prediction records as one modality of RCI alone decides them: its score (visual or
    audio), its segments (those it found, alone or with the other), its decision at its
    served threshold; audio_reuse dropped. Records without per-modality scores: None."""
    scored = f"{modality}_score"
    threshold = AlignParams().threshold if modality == "visual" else FusionParams().threshold
    out = []
    for r in records:
        matches = []
        for m in r["matches"]:
            if scored not in m:
                return None
            rows = [seg for seg, k in zip(m["segments"], m["modalities"], strict=True)
                    if k in (modality, "both")]  # fmt: skip
            matches.append(
                {
                    "ref_id": m["ref_id"],
                    "score": m[scored],
                    "segments": rows,
                    "reproduced": m[scored] >= threshold,
                }  # fmt: skip
            )
        out.append({**r, "matches": matches})
    return out


def compare(manifest: dict, systems: dict[str, list[dict]]) -> dict:
    """Scores keyed "name (slice)": overall, per_edit, traps, never_copied. Every system is
    scored on every slice (all queries; the queries of each audio mode, with the negatives
    and near misses; each split; a split-bound peer's splits), a split-bound peer on its
    splits only; per edit on its first slice."""
    queries = manifest["queries"]
    reuse = audio_reuse_truth(manifest)
    unrelated = ("negative", "near_miss")
    slices = {"all": queries}
    for mode in AUDIO_MODES:
        chosen = [q for q in queries if q["audio"] == mode and q["kind"] not in unrelated]
        if chosen:
            slices[f"audio {mode}"] = chosen + [q for q in queries if q["kind"] in unrelated]
    for split in sorted({q["split"] for q in queries}):
        slices[f"{split} split"] = [q for q in queries if q["split"] == split]
    own = {}
    for name, records in systems.items():
        if name in SPLIT_BOUND:
            split = {
                q["split"] for q in queries if q["query_id"] in {r["query_id"] for r in records}
            }
            own[name] = [f"{'/'.join(sorted(split))} split"]
            slices[own[name][0]] = [q for q in queries if q["split"] in split]
    for name in systems:  # the others on every slice, split-bound peers' too (side by side)
        own.setdefault(name, list(slices))
    out = {}
    for name, records in systems.items():
        by_id = {r["query_id"]: r for r in records}
        for n, slice_name in enumerate(own[name]):
            chosen = slices[slice_name]
            # Every edit's slice has the same negatives, so its uAP stays comparable.
            negatives = [q for q in chosen if q["kind"] == "negative"]
            per_edit = {}
            for edit in sorted({e["name"] for q in chosen for e in q["edits"]}) if n == 0 else []:
                picked = [q for q in chosen if edit in {e["name"] for e in q["edits"]}] + negatives
                per_edit[edit] = score(picked, [by_id[q["query_id"]] for q in picked])
            out[f"{name} ({slice_name})"] = {
                "overall": score(chosen, [by_id[q["query_id"]] for q in chosen], reuse),
                "per_edit": per_edit,
                "traps": traps(chosen, by_id),
                "never_copied": never_copied(manifest, chosen, by_id),
            }
    return out


def copied_by_none(manifest: dict) -> dict[str, str]:
    """Library videos no query copies, id -> kind: a never-copied video's kind
    ("gradient", "template_group", ...), "framed_reference", or "uncopied_reference"."""
    copied = {t["ref_id"] for q in manifest["queries"] for t in q["truth"]}
    kinds = {}
    for s in manifest["sources"]:
        if s["role"] == "library":
            kinds[s["id"]] = s["library_kind"]
        elif s["role"] == "reference" and s["id"] not in copied:
            kinds[s["id"]] = "framed_reference" if "frame" in s else "uncopied_reference"
    return kinds


def never_copied(manifest: dict, queries: list[dict], by_id: dict[str, dict]) -> dict:
    """Per kind of library video that no query copies (and "all"): its videos, and over
    `queries` how many reported one of them reproduced (flagged) and how many (query,
    video) pairs were reported."""
    kinds = copied_by_none(manifest)
    out = {}
    for kind in [*sorted(set(kinds.values())), "all"]:
        ids = {v for v, k in kinds.items() if kind in (k, "all")}
        pairs = [
            (q["query_id"], m["ref_id"])
            for q in queries
            for m in by_id[q["query_id"]]["matches"]
            if m["reproduced"] and m["ref_id"] in ids
        ]
        out[kind] = {
            "videos": len(ids),
            "queries": len(queries),
            "flagged_queries": len({p[0] for p in pairs}),
            "false_pairs": len(pairs),
        }
    return out


def traps(queries: list[dict], by_id: dict[str, dict]) -> dict:
    """Per kind of near miss: queries, how many were reported reproduced (false positives),
    and their mean top score."""
    out: dict[str, dict] = {}
    for q in queries:
        if not q.get("trap"):
            continue
        matches = by_id[q["query_id"]]["matches"]
        row = out.setdefault(q["trap"], {"queries": 0, "false_positives": 0, "top_scores": []})
        row["queries"] += 1
        row["false_positives"] += any(m["reproduced"] for m in matches)
        row["top_scores"].append(max((m["score"] for m in matches), default=0.0))
    for row in out.values():
        row["mean_top_score"] = float(np.mean(row.pop("top_scores")))
    return out


def choose_threshold(queries: list[dict], records: list[dict]) -> dict | None:
    """The pair-score threshold with the best decision F1 on the val split, and the test
    split's decisions at it; None when the system has no val or test queries."""
    by_id = {r["query_id"]: r for r in records}
    split = {
        s: [q for q in queries if q["split"] == s and q["query_id"] in by_id]
        for s in ("val", "test")
    }
    if not split["val"] or not split["test"]:
        return None

    def pairs(chosen: list[dict]) -> tuple[set, dict]:
        truth = {(q["query_id"], t["ref_id"]) for q in chosen for t in q["truth"]}
        scores: dict = {}
        for q in chosen:
            for m in by_id[q["query_id"]]["matches"]:
                key = (q["query_id"], m["ref_id"])
                scores[key] = max(scores.get(key, float("-inf")), m["score"])
        return truth, scores

    truth, scores = pairs(split["val"])
    levels = sorted(set(scores.values()))
    best = (-1.0, float("inf"))
    for n, level in enumerate(levels):
        f1 = decision_scores(truth, {k for k, v in scores.items() if v >= level})[2]
        # Between this score and the next lower one: the widest margin for the same decisions.
        cut = (level + levels[n - 1]) / 2 if n else level
        if f1 > best[0]:
            best = (f1, cut)
    test_truth, test_scores = pairs(split["test"])
    p, r, f1 = decision_scores(test_truth, {k for k, v in test_scores.items() if v >= best[1]})
    return {
        "threshold": best[1],
        "val_f1": best[0],
        "test_precision": p,
        "test_recall": r,
        "test_f1": f1,
    }


def _fmt(value) -> str:
    return "-" if value is None else f"{value:.3f}" if isinstance(value, float) else str(value)


COLUMNS = [
    "queries", "source_recall", "pair_uap", "segment_ap", "vcsl_f", "decision_precision",
    "decision_recall", "decision_f1", "box_iou",
]  # fmt: skip


def _by_system(systems: dict, label: str, part: str, cell: Callable[[dict], str]) -> list[str]:
    """A table: one row per key of every system's `part`, one column per system, `cell` of
    each entry ("-" where a system has none)."""
    keys = sorted({k for v in systems.values() for k in v[part]})
    lines = [f"| {label} | " + " | ".join(systems) + " |", "| --- " * (len(systems) + 1) + "|"]
    for key in keys:
        cells = [cell(v[part][key]) if key in v[part] else "-" for v in systems.values()]
        lines.append(f"| {key} | " + " | ".join(cells) + " |")
    return lines


def _audio_tables(systems: dict) -> list[str]:
    """Pair uAP and VCSL F of every system on every audio slice, and audio reuse."""
    names = list(dict.fromkeys(k.rsplit(" (", 1)[0] for k in systems))
    named = [k.rsplit(" (", 1)[1][:-1] for k in systems]
    slices = list(dict.fromkeys(s for s in named if s.startswith("audio ")))
    splits = [f"{s} split" for s in ("train", "val", "test") if f"{s} split" in named]
    if not slices:
        return []
    table = {n: {s: systems.get(f"{n} ({s})") for s in ["all", *slices]} for n in names}
    lines = ["", "## Audio slices", "", "Pair uAP / VCSL F per audio slice (each slice with"]
    lines += ["the negatives and near misses):", ""]
    lines += ["| system | " + " | ".join(["all", *slices]) + " |"]
    lines += ["| --- " * (len(slices) + 2) + "|"]
    for name, row in table.items():
        cells = [
            "-" if v is None else
            f"{_fmt(v['overall'].get('pair_uap'))} / {_fmt(v['overall'].get('vcsl_f'))}"
            for v in row.values()
        ]  # fmt: skip
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    if splits:
        lines += ["", "Pair uAP / VCSL F / decision F1 per split:", ""]
        lines += ["| system | " + " | ".join(splits) + " |", "| --- " * (len(splits) + 1) + "|"]
        for name in names:
            cells = []
            for split in splits:
                v = systems.get(f"{name} ({split})")
                row = {} if v is None else v["overall"]
                cells.append(" / ".join(_fmt(row.get(c)) for c in ("pair_uap", "vcsl_f",
                                                                    "decision_f1")))  # fmt: skip
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
    reuse = {n: systems[f"{n} (all)"]["overall"] for n in names if f"{n} (all)" in systems}
    reuse = {n: v for n, v in reuse.items() if "audio_reuse_pairs" in v}
    if reuse:
        lines += ["", "Audio reuse (the same audio, pictures not copied), all queries; flags on "
                  "other stretches of the same track are not counted:", ""]  # fmt: skip
        lines += ["| system | pairs | precision | recall | flags on the same track |",
                  "| --- | --- | --- | --- | --- |"]  # fmt: skip
        for name, v in reuse.items():
            cells = [v["audio_reuse_pairs"], v["audio_reuse_precision"], v["audio_reuse_recall"],
                     v["audio_reuse_unsure_flagged"]]  # fmt: skip
            lines.append(f"| {name} | " + " | ".join(_fmt(c) for c in cells) + " |")
    return lines


def markdown(report: dict) -> str:
    """The report's tables: overall, per split, per edit, and cost."""
    lines = [
        f"# RCI benchmark ({report['mode']}, seed {report['seed']})",
        "",
        f"{report['references']} reference videos, {report.get('never_copied', 0)} never-copied "
        f"library videos, {report['queries']} queries.",
        "",
        "| slice | " + " | ".join(COLUMNS) + " |",
        "| --- " * (len(COLUMNS) + 1) + "|",
    ]
    rows = [("all", report["overall"])]
    rows += [(f"split {k}", v) for k, v in report["per_split"].items()]
    rows += [(f"edit {k}", v) for k, v in report["per_edit"].items()]
    for name, values in rows:
        lines.append(f"| {name} | " + " | ".join(_fmt(values.get(c)) for c in COLUMNS) + " |")
    everything = report.get("systems", {})
    # Tables by edit, near miss and never-copied kind: each system on its first slice.
    first = {}
    for key in everything:  # compare() scores each system's own slice first
        first.setdefault(key.rsplit(" (", 1)[0], key)
    systems = {k: everything[k] for k in first.values()}
    if len(systems) > 1:
        lines += ["", "## RCI and its peers, same data", ""]
        lines += ["| system | " + " | ".join(COLUMNS) + " |", "| --- " * (len(COLUMNS) + 1) + "|"]
        for name, values in systems.items():
            row = values["overall"]
            lines.append(f"| {name} | " + " | ".join(_fmt(row.get(c)) for c in COLUMNS) + " |")
        lines += ["", "Per edit, VCSL F (pair uAP):", ""]
        lines += _by_system(
            systems, "edit", "per_edit",
            lambda row: f"{_fmt(row.get('vcsl_f'))} ({_fmt(row.get('pair_uap'))})",
        )  # fmt: skip
    lines += _audio_tables(everything)
    if any(len(v["never_copied"]) > 1 for v in systems.values()):
        lines += ["", "Library videos no query copies, by kind: queries that reported one"]
        lines += ["reproduced / queries (wrong pairs):", ""]
        lines += _by_system(
            systems, "never copied", "never_copied",
            lambda row: f"{row['flagged_queries']}/{row['queries']} ({row['false_pairs']})",
        )  # fmt: skip
    if any(v["traps"] for v in systems.values()):
        lines += ["", "Near misses, negatives built to resemble a reference: false positives /"]
        lines += ["queries (mean top score):", ""]
        lines += _by_system(
            systems, "near miss", "traps",
            lambda row: f"{row['false_positives']}/{row['queries']} ({row['mean_top_score']:.2f})",
        )  # fmt: skip
    thresholds = {k: v for k, v in report.get("thresholds", {}).items() if v}
    if thresholds:
        lines += ["", "Decision threshold chosen on the val split, applied to the test split:", ""]
        lines += ["| system | threshold | val F1 | test precision | test recall | test F1 |"]
        lines += ["| --- | --- | --- | --- | --- | --- |"]
        for name, t in thresholds.items():
            cells = [t["threshold"], t["val_f1"], t["test_precision"], t["test_recall"]]
            lines.append(
                f"| {name} | " + " | ".join(_fmt(c) for c in cells) + f" | {_fmt(t['test_f1'])} |"
            )
    cost = report["cost"]
    memory = cost.get("server_peak_memory_mb")
    lines += [
        "",
        f"Cost: ingest {cost['ingest_seconds_per_video_minute']:.2f} s per minute of video, "
        f"detect {cost['detect_seconds_per_video_minute']:.2f} s per minute of query video"
        + (f"; server peak memory {memory:.0f} MiB." if memory else "."),
    ]
    for name, error in report.get("peer_errors", {}).items():
        lines += ["", f"Peer {name} failed and is left out: {error}"]
    for name, note in report.get("peer_notes", {}).items():
        lines += ["", f"Peer {name}: {note}."]
    if cost.get("peer_seconds"):
        spent = ", ".join(f"{k} {v:.0f} s" for k, v in cost["peer_seconds"].items())
        lines += ["", f"Peers' wall time (index and detect, whole run): {spent}."]
    return "\n".join(lines + [""])
