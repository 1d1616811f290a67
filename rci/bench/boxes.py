"""Content-box accuracy on a built benchmark, without a server: the preprocessing's boxes
against the manifest's ground truth, per edit, and on unedited references (where the whole
frame is content and nothing may be cropped)."""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

import numpy as np

from rci.bench.metrics import box_iou
from rci.preprocess.frames import BorderParams, content_boxes
from rci.preprocess.inset import InsetParams
from rci.preprocess.media import sample_video


def _fractions(boxes: np.ndarray, frames: np.ndarray) -> np.ndarray:
    _, h, w, _ = frames.shape
    return boxes / np.array([w, h, w, h], dtype=np.float64)


def query_iou(query: dict, times: np.ndarray, boxes: np.ndarray) -> float | None:
    """Mean IoU of (T, 4) fractional boxes with the truth box over the copied spans' frames
    (the first and last second left out: they may hold the cut); where copies overlap (one
    inside another), a frame's box counts against the copy it fits best. None without
    truth."""
    best = np.full(len(times), -1.0)
    for truth in query["truth"]:
        inside = (times >= truth["query_start"] + 1) & (times < truth["query_end"] - 1)
        for t in np.flatnonzero(inside):
            best[t] = max(best[t], box_iou(tuple(boxes[t]), tuple(truth["content_box"])))
    values = best[best >= 0]
    return float(values.mean()) if len(values) else None


def box_report(
    build_dir: Path,
    split: str | None,
    params: BorderParams = BorderParams(),
    inset: InsetParams | None = InsetParams(),
) -> dict:
    """Boxes by content_boxes(frames, params, inset) (inset None: bars only) against the
    truth. Returns "single" (edit -> mean IoU over queries with that edit alone), "chains"
    (mean IoU over queries with several edits), "unedited" (mean IoU over the references)
    and "queries" (per query)."""
    manifest = json.loads((build_dir / "manifest.json").read_text())
    chosen = [q for q in manifest["queries"] if q["truth"] and split in (None, q["split"])]
    per_query, single, chains = {}, defaultdict(list), []
    for query in chosen:
        video = sample_video((build_dir / query["path"]).read_bytes())
        boxes = _fractions(content_boxes(video.frames, params, inset), video.frames)
        iou = query_iou(query, video.timestamps, boxes)
        if iou is None:
            continue
        per_query[query["query_id"]] = iou
        names = [e["name"] for e in query["edits"]]
        if len(names) == 1:
            single[names[0]].append(iou)
        else:
            chains.append(iou)
    unedited = []
    for source in manifest["sources"]:
        if (
            source["role"] != "reference"
            or "frame" in source
            or split not in (None, source["split"])
        ):
            continue
        video = sample_video((build_dir / source["path"]).read_bytes())
        boxes = _fractions(content_boxes(video.frames, params, inset), video.frames)
        unedited.append(float(np.mean([box_iou(tuple(b), (0.0, 0.0, 1.0, 1.0)) for b in boxes])))
    return {
        "split": split or "all",
        "single": {k: float(np.mean(v)) for k, v in sorted(single.items())},
        "single_counts": {k: len(v) for k, v in sorted(single.items())},
        "chains": float(np.mean(chains)) if chains else None,
        "unedited": float(np.mean(unedited)) if unedited else None,
        "unedited_min": float(np.min(unedited)) if unedited else None,
        "queries": per_query,
    }


def markdown(report: dict) -> str:
    lines = [f"Content-box IoU, {report['split']} split:", "", "| edit | queries | mean IoU |"]
    lines += ["| --- | --- | --- |"]
    for edit, value in report["single"].items():
        lines.append(f"| {edit} | {report['single_counts'][edit]} | {value:.3f} |")
    if report["chains"] is not None:
        lines.append(f"| chains of 2-4 edits | - | {report['chains']:.3f} |")
    if report["unedited"] is not None:
        lines.append(
            f"| unedited references | - | {report['unedited']:.3f} "
            f"(lowest {report['unedited_min']:.3f}) |"
        )
    return "\n".join(lines + [""])
