"""The reviewer's page: one self-contained HTML file per query (pictures inline) showing, for
each candidate reproduced, flagged for its audio or aligned without being reproduced, the
query's frames beside the reference's stored pictures at each segment's start, middle and
end (the content box drawn on the query's), a timeline of both videos with the copied
spans, the pair's similarity heatmap with the aligned path, and every score with its
threshold. The reference's own file is never needed: its pictures come from the library
(rci_thumbnails)."""

from __future__ import annotations

import base64
import html
import io
import math
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np
from PIL import Image, ImageDraw

from rci.match.verdict import Match

from .rci_client import DetectResult, RciClient, RciClientError, found_something

QUERY_WIDTH = 240  # pixels of a query frame in the page
HEATMAP_SIDE = 288  # pixels of the heatmap's longer side
HEURISTIC_CUT = 0.5  # the hand-set rule's cut (rci.match.alignment.AlignParams.threshold)
# Viridis at five stops: a heatmap readable in grey and by the colour-blind.
STOPS = np.array(
    [[68, 1, 84], [59, 82, 139], [33, 145, 140], [94, 201, 98], [253, 231, 37]], np.float32
)


@dataclass(frozen=True)
class Moment:
    """One compared moment of a segment: query and reference seconds and their pictures."""

    query_time: float
    ref_time: float
    query_jpeg: bytes | None
    ref_jpeg: bytes | None
    ref_shown: float | None  # the stored picture's own time, nearest ref_time


def query_frames(
    path: Path, times: list[float], boxes: list[np.ndarray | None]
) -> list[bytes | None]:
    """JPEGs of the query's frames nearest `times` (seconds), each with its content box
    (fractions x0, y0, x1, y1) drawn; None where the video has no frame there."""
    out: list[bytes | None] = [None] * len(times)
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        for n, t in sorted(enumerate(times), key=lambda x: x[1]):
            container.seek(max(0, int(t / stream.time_base)), stream=stream, backward=True)
            best = None
            for frame in container.decode(stream):
                if frame.time is None:
                    continue
                if best is None or abs(frame.time - t) < abs(best.time - t):
                    best = frame
                if frame.time >= t:
                    break
            if best is None:
                continue
            picture = best.to_image()
            scale = QUERY_WIDTH / picture.width
            picture = picture.resize((QUERY_WIDTH, max(1, round(picture.height * scale))))
            if boxes[n] is not None:
                x0, y0, x1, y1 = boxes[n]
                w, h = picture.size
                ImageDraw.Draw(picture).rectangle(
                    [x0 * w, y0 * h, x1 * w - 1, y1 * h - 1], outline=(255, 64, 64), width=2
                )
            out[n] = _jpeg(picture)
    return out


def heatmap(maps: np.ndarray, mask: np.ndarray) -> bytes:
    """A PNG of a pair's visual similarity (rows query time, columns reference time; cells
    outside the mask dark) with the aligned path's cells outlined in white."""
    rows = int(mask[0].any(axis=1).sum()) or 1
    cols = int(mask[0].any(axis=0).sum()) or 1
    similarity = np.clip(maps[0, :rows, :cols], 0.0, 1.0)
    position = similarity * (len(STOPS) - 1)
    low = np.floor(position).astype(int).clip(0, len(STOPS) - 2)
    frac = (position - low)[..., None]
    rgb = STOPS[low] * (1 - frac) + STOPS[low + 1] * frac
    rgb[maps[2, :rows, :cols] > 0.5] = (255, 255, 255)
    scale = max(1, HEATMAP_SIDE // max(rows, cols))
    picture = Image.fromarray(rgb.astype(np.uint8)).resize(
        (cols * scale, rows * scale), Image.NEAREST
    )
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG")
    return buffer.getvalue()


def timeline(match: Match, query_seconds: float) -> str:
    """An SVG of both videos as bars, the copied spans marked on each and joined."""
    ref_seconds = max([s.ref_end for s in match.segments] + [1.0])
    width, left = 640, 90
    span = width - left - 10

    def x(t: float, whole: float) -> float:
        return left + span * min(max(t / max(whole, 1e-6), 0.0), 1.0)

    parts = [
        f'<svg class="timeline" viewBox="0 0 {width} 96" width="{width}" height="96" '
        'role="img" aria-label="timeline of the query and the reference">',
        '<text x="4" y="28">query</text><text x="4" y="82">reference</text>',
        f'<rect x="{left}" y="16" width="{span}" height="16" fill="#ddd"/>',
        f'<rect x="{left}" y="70" width="{span}" height="16" fill="#ddd"/>',
        f'<text x="{left + span}" y="12" text-anchor="end">{query_seconds:.0f} s</text>',
        f'<text x="{left + span}" y="66" text-anchor="end">'
        f"{ref_seconds:.0f} s (last copied)</text>",
    ]
    for s in match.segments:
        colour = {"visual": "#c0392b", "audio": "#2471a3", "both": "#7d3c98"}.get(
            s.modality, "#c0392b"
        )
        q0, q1 = x(s.query_start, query_seconds), x(s.query_end, query_seconds)
        r0, r1 = x(s.ref_start, ref_seconds), x(s.ref_end, ref_seconds)
        parts += [
            f'<polygon points="{q0:.1f},32 {q1:.1f},32 {r1:.1f},70 {r0:.1f},70" '
            f'fill="{colour}" opacity="0.15"/>',
            f'<rect x="{q0:.1f}" y="16" width="{max(q1 - q0, 1):.1f}" height="16" '
            f'fill="{colour}"/>',
            f'<rect x="{r0:.1f}" y="70" width="{max(r1 - r0, 1):.1f}" height="16" '
            f'fill="{colour}"/>',
        ]
    parts.append("</svg>")
    return "".join(parts)


def moments(match: Match, period: float = 1.0) -> list[tuple[float, float]]:
    """(query s, reference s) at each segment's start, middle and last sampled frame (a
    segment's end is exclusive: `period` seconds, the query's sampling, before it), in
    query order."""
    out = []
    for s in sorted(match.segments, key=lambda s: (s.query_start, s.query_end)):
        length = s.query_end - s.query_start
        last = max(length - min(period, length / 2), 0.0)
        rate = (s.ref_end - s.ref_start) / length if length > 0 else 1.0
        for q in (0.0, last / 2, last):
            out.append((s.query_start + q, s.ref_start + q * rate))
    return out


def write_report(
    client: RciClient,
    query: Path,
    result: DetectResult,
    out: Path,
    cuts: tuple[float, float] | None = None,
) -> Path:
    """Write the reviewer's page for `result` (a detect of the video file `query`, made with
    maps=True) to `out`; `cuts` are MatchLite's (with a segment, without one; inf: never),
    shown beside its probabilities."""
    candidates = [(k, m) for k, m in enumerate(result.matches) if found_something(m)]
    sections = []
    for k, m in candidates:
        pairs = moments(m)[: 3 * 8]  # a segment's three moments, for at most 8 segments
        times = [q for q, _ in pairs]
        boxes = [_box_at(result, t) for t in times]
        query_pictures = query_frames(query, times, boxes) if pairs else []
        ref_pictures = []
        if pairs:
            try:
                ref_pictures = client.thumbnails(m.video_id, [r for _, r in pairs], m.library)
            except RciClientError:  # deleted or replaced since the detect: a page all the same
                ref_pictures = []
        rows = [
            Moment(q, r, qp, rp[1] if rp else None, rp[0] if rp else None)
            for (q, r), qp, rp in zip(
                pairs, query_pictures, ref_pictures or [None] * len(pairs), strict=True
            )
        ]
        maps = None
        if result.pair_maps is not None and k < len(result.pair_maps):
            maps = heatmap(result.pair_maps[k], result.pair_mask[k])
        sections.append(_section(m, rows, maps, result.duration, cuts))
    page = PAGE.format(
        title=html.escape(f"RCI review: {query.name}"),
        query=html.escape(str(query)),
        duration=f"{result.duration:.1f}",
        verdict=html.escape(
            ", ".join(f"{m.library}/{m.video_id}" for m in result.reproduced) or "nothing"
        ),
        count=len(candidates),
        total=len(result.matches),
        sections="\n".join(sections) or "<p>No candidate was aligned, reproduced or flagged.</p>",
    )
    out.write_text(page, encoding="utf-8")
    return out


def _box_at(result: DetectResult, t: float) -> np.ndarray | None:
    if not len(result.frame_times):
        return None
    return result.content_boxes[int(np.argmin(np.abs(result.frame_times - t)))]


def _jpeg(picture: Image.Image) -> bytes:
    buffer = io.BytesIO()
    picture.convert("RGB").save(buffer, format="JPEG", quality=80)
    return buffer.getvalue()


def _img(data: bytes | None, kind: str, alt: str) -> str:
    if data is None:
        return f'<div class="missing">{html.escape(alt)}: no picture</div>'
    encoded = base64.b64encode(data).decode()
    return f'<img src="data:image/{kind};base64,{encoded}" alt="{html.escape(alt)}">'


def _section(
    m: Match,
    rows: list[Moment],
    maps: bytes | None,
    query_seconds: float,
    cuts: tuple[float, float] | None,
) -> str:
    name = html.escape(f"{m.library}/{m.video_id}" if m.library else m.video_id)
    decision = (
        "REPRODUCED" if m.reproduced else ("audio reuse" if m.audio_reuse else "not reproduced")
    )
    probability = "-" if m.probability is None else f"{m.probability:.3f}"
    threshold = None if cuts is None else cuts[0] if m.segments else cuts[1]
    cut = "-" if threshold is None else f"{threshold:.3f}"
    if threshold == math.inf:  # a pair without a segment has its own cut
        cut = "never without a segment"
    fraction = "-" if m.copied_fraction is None else f"{m.copied_fraction:.0%}"
    scores = (
        "<table class=scores><tr><th>score</th><th>value</th><th>threshold</th></tr>"
        f"<tr><td>MatchLite probability</td><td>{probability}</td><td>{cut}</td></tr>"
        f"<tr><td>heuristic (alignment)</td><td>{m.score:.3f}</td><td>{HEURISTIC_CUT}</td></tr>"
        f"<tr><td>visual</td><td>{m.visual_score:.3f}</td><td></td></tr>"
        f"<tr><td>audio</td><td>{m.audio_score:.3f}</td><td></td></tr>"
        f"<tr><td>query copied (MatchLite)</td><td>{fraction}</td><td></td></tr></table>"
    )
    segments = "".join(
        f"<tr><td>{s.query_start:.1f}-{s.query_end:.1f} s</td>"
        f"<td>{s.ref_start:.1f}-{s.ref_end:.1f} s</td>"
        f"<td>{s.score:.2f}</td><td>{html.escape(s.modality)}</td></tr>"
        for s in sorted(m.segments, key=lambda s: (s.query_start, s.query_end))
    )
    frames = "".join(
        "<tr>"
        f"<td>{_img(r.query_jpeg, 'jpeg', f'query at {r.query_time:.1f} s')}"
        f"<div>query {r.query_time:.1f} s</div></td>"
        f"<td>{_img(r.ref_jpeg, 'jpeg', f'reference at {r.ref_time:.1f} s')}"
        f"<div>reference {r.ref_time:.1f} s"
        + ("" if r.ref_shown is None else f" (stored picture at {r.ref_shown:.1f} s)")
        + "</div></td></tr>"
        for r in rows
    )
    return f"""<section class="{"copy" if m.reproduced else "other"}">
<h2>{name} <span class="decision">{decision}</span></h2>
<div class="row">{scores}
<table class=segments><tr><th>query</th><th>reference</th><th>score</th><th>found by</th></tr>
{segments or "<tr><td colspan=4>no aligned segment</td></tr>"}</table></div>
{timeline(m, query_seconds)}
<div class="row"><table class=frames>
<tr><th>query (content box in red)</th><th>reference (stored picture)</th></tr>
{frames}</table>
<figure>{_img(maps, "png", "similarity heatmap") if maps else '<div class="missing">no maps</div>'}
<figcaption>frame similarity, query time down, reference time across (dark to yellow:
0 to 1); the aligned path in white</figcaption></figure></div>
</section>"""


PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<style>
body {{ font: 14px/1.4 system-ui, sans-serif; margin: 24px; color: #222; }}
section {{ border: 1px solid #ccc; border-radius: 6px; padding: 12px 16px; margin: 16px 0; }}
section.copy {{ border-color: #c0392b; }}
.decision {{ font-size: 13px; padding: 2px 8px; border-radius: 4px; background: #eee; }}
section.copy .decision {{ background: #c0392b; color: white; }}
.row {{ display: flex; gap: 24px; flex-wrap: wrap; align-items: flex-start; }}
table {{ border-collapse: collapse; }}
td, th {{ padding: 3px 8px; border-bottom: 1px solid #eee; text-align: left; vertical-align: top; }}
img {{ display: block; image-rendering: auto; }}
figure img {{ image-rendering: pixelated; }}
.missing {{ width: 112px; height: 112px; background: #f4f4f4; color: #888; font-size: 12px; }}
.timeline text {{ font-size: 12px; }}
</style></head>
<body>
<h1>{title}</h1>
<p>Query <code>{query}</code>, {duration} s. Reproduces: <b>{verdict}</b>. {count} of {total}
candidates shown (reproduced, flagged for their audio, or aligned).</p>
{sections}
<script>
// The count of pictures the browser could show, for checks that load this page.
window.addEventListener("load", () => {{
  const images = Array.from(document.images);
  const ok = images.filter((i) => i.complete && i.naturalWidth > 0).length;
  document.body.dataset.imagesShown = ok + "/" + images.length;
}});
</script>
</body></html>
"""
