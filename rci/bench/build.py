"""Build the benchmark deterministically from a seed: sources, edited queries, a manifest.

Layout of the cache directory (outside git):
    sources/S000.mp4 ...      library videos (references)
    queries/Q000.mp4 ...      edited copies, partial copies, negatives
    assets/                   overlay images the edits drew
    manifest.json             every file with provenance and ground truth
    CREDITS.md                the packages used, with their copyright files
"""

from __future__ import annotations

import json
import subprocess
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from rci.bench import edits as E
from rci.bench.credits import write_credits
from rci.bench.never_copied import (
    BUMPER_SECONDS,
    LibraryKind,
    LibraryPlan,
    LibrarySpec,
    bumper,
    group_seed,
    jingle,
    plan_library,
    pool_photos,
)
from rci.bench.samples import FPS, SIZE
from rci.bench.sources import (
    AUDIO_RATE,
    SourceSpec,
    audio_catalog,
    clip_catalog,
    decode_audio,
    photo_catalog,
    render_frames,
    speech_prompts,
    subject,
    voiceover_track,
    write_clip_source,
    write_source,
)

SPLITS = ("train", "val", "test")
SPEECH_GAP = 0.3  # seconds of silence between joined speech prompts
# Every SHARE_MUSIC_EVERY-th never-copied library video (not a bumper group's) plays the
# opening of a reference's music, as popular soundtracks are reused: copies of that
# reference then share audio with a video they do not copy.
SHARE_MUSIC_EVERY = 8


@dataclass(frozen=True)
class Mode:
    """How big a build is. Durations in seconds."""

    name: str
    sources: int
    min_seconds: float
    max_seconds: float
    music_packages: tuple[str, ...]
    single_edits: bool  # one query per edit kind and split plus chains; else SMALL_QUERIES
    chains: int
    full_copies: int  # a whole reference, edited
    two_source: int  # spans of two references back to back inside unrelated material
    clips: tuple[str, ...]  # real video clips added as references (sources.clip_catalog)
    framed: int  # references shown inside a template or player; near misses reuse the frame
    same_audio: int  # near misses: a reference's audio under unrelated pictures
    library: LibraryPlan  # never-copied library videos
    filmed: int  # copies filmed off a screen (one in three alone, the rest over another edit)
    group_copies: int  # per template group: copies of a reference inside the group's frame
    bumper_copies: int  # per bumper group: copies of a reference after the group's bumper
    group_misses: int  # per group: unrelated pictures inside its frame or after its bumper
    inside: int  # one reference shown picture-in-picture over another: both are copied


SMALL = Mode(
    "small", 8, 20.0, 30.0, ("asterisk-moh-opsound-wav",), False, 2, 1, 1, ("bikes",), 1, 1,
    LibraryPlan(per_kind=1, groups=1, group_size=3, min_seconds=8.0, max_seconds=12.0),
    1, 1, 0, 1, 1,
)  # fmt: skip
FULL = Mode(
    "full",
    100,
    20.0,
    120.0,
    ("wesnoth-1.16-music", "drascula-music", "asterisk-moh-opsound-wav"),
    True,
    40,
    10,
    10,
    ("vtest", "tree", "bikes"),
    4,
    8,
    LibraryPlan(per_kind=25, groups=3, group_size=12, min_seconds=10.0, max_seconds=25.0),
    9,
    2,
    1,
    1,
    6,
)
FRAMES = (E.EditKind.TEMPLATE, E.EditKind.SCREEN_RECORDING)  # what framed references wear


@dataclass
class QueryTruth:
    """A copied span: query [query_start, query_end) s shows ref_id [ref_start, ref_end) s,
    its picture at content_box (fractions of the frame)."""

    ref_id: str
    query_start: float
    query_end: float
    ref_start: float
    ref_end: float
    content_box: tuple[float, float, float, float]


@dataclass
class QueryRecord:
    query_id: str
    path: str
    kind: str  # full | partial | two_source | inside | negative | near_miss
    split: str
    edits: list[dict]
    audio: str  # kept | removed | replaced | noised | voiceover
    duration: float
    truth: list[QueryTruth] = field(default_factory=list)
    # Negatives that resemble a reference: same_audio | same_frame | similar_subject.
    trap: str = ""
    resembles: list[str] = field(default_factory=list)  # the references they resemble
    # Sources no truth names whose sound the query plays too: host material around a copy,
    # a replacement soundtrack (audio reuse's truth reads them).
    other_sound: list[str] = field(default_factory=list)


def _run(command: list[str]) -> None:
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"ffmpeg failed: {' '.join(command)}\n{result.stderr[-2000:]}")


def plan_sources(mode: Mode, rng: np.random.Generator) -> list[SourceSpec]:
    """Photos (or a clip) and audio spans for every source; nothing is used twice. Order:
    `mode.sources` photo sources, then the clips, then the framed references' sources."""
    photos = photo_catalog()
    rng.shuffle(photos)
    # Photos are shared out evenly; a source cuts between several framings of its photos.
    per_source = min(4, len(photos) // mode.sources)
    if per_source < 1:
        raise RuntimeError(f"{len(photos)} photographs for {mode.sources} sources: too few")
    specs = []
    for n in range(mode.sources + mode.framed):
        if n == mode.sources:
            for clip in clip_catalog(mode.clips):
                specs.append(SourceSpec(f"S{len(specs):03d}", [], [], clip=clip))
        if len(photos) < per_source:
            break  # framed references take what photographs are left
        seconds = float(rng.uniform(mode.min_seconds, mode.max_seconds))
        shots = max(2, int(round(seconds / rng.uniform(5, 9))))
        mine, photos = photos[:per_source], photos[per_source:]
        chosen = [mine[k % len(mine)] for k in range(shots)]
        cut = np.sort(rng.uniform(0.2, 0.8, shots - 1)) if shots > 1 else np.array([])
        bounds = np.concatenate([[0.0], np.round((cut * seconds) * FPS) / FPS, [seconds]])
        lengths = [float(b - a) for a, b in zip(bounds[:-1], bounds[1:], strict=True)]
        specs.append(SourceSpec(f"S{len(specs):03d}", chosen, [round(x, 2) for x in lengths]))
    return specs


def _assign_audio(specs: list[SourceSpec | LibrarySpec], mode: Mode) -> None:
    """Every third source gets speech while unused prompts last, the rest music; each takes
    the next unused span of a track. Never-copied videos go silent when the music is spent
    (sources need it: their copies are tested with audio kept)."""
    music = audio_catalog(mode.music_packages)
    prompts = speech_prompts()
    prompt_paths, prompt_seconds = list(prompts), list(prompts.values())
    music_at, prompt_at = [0, 0.0], 0
    for n, spec in enumerate(specs):
        if n % 3 == 2 and sum(prompt_seconds[prompt_at:]) >= spec.duration:
            spec.audio = {"package": "asterisk-core-sounds-en-wav", "files": [], "kind": "speech"}
            total = 0.0
            while total < spec.duration:
                spec.audio["files"].append(prompt_paths[prompt_at])
                total += prompt_seconds[prompt_at] + SPEECH_GAP
                prompt_at += 1
            continue
        # Next track when the current one has less than this source left.
        while music_at[0] < len(music) and (
            music[music_at[0]].duration - music_at[1] < spec.duration
        ):
            music_at = [music_at[0] + 1, 0.0]
        if music_at[0] >= len(music) and isinstance(spec, LibrarySpec):
            spec.audio = {"kind": "silence"}
            continue
        if music_at[0] >= len(music):
            raise RuntimeError(f"out of music at source {n}: install the full packages")
        track = music[music_at[0]]
        spec.audio = {
            "package": track.package,
            "file": track.file,
            "kind": "music",
            "start": round(music_at[1], 2),
            "end": round(music_at[1] + spec.duration, 2),
        }
        music_at[1] += spec.duration


def _share_music(library: list[LibrarySpec], references: list[SourceSpec]) -> None:
    """Give every SHARE_MUSIC_EVERY-th never-copied video (bumper groups' aside: their
    jingle opens them) the opening of a music reference's soundtrack, references in turn."""
    music = [r for r in references if r.audio.get("kind") == "music"]
    sharing = [s for s in library if s.kind is not LibraryKind.BUMPER_GROUP]
    for n, spec in enumerate(sharing[::SHARE_MUSIC_EVERY]):
        ref = music[n % len(music)]
        seconds = min(spec.duration, ref.duration)
        spec.audio = {**ref.audio, "end": round(ref.audio["start"] + seconds, 2)}
        spec.audio["shared_with"] = ref.source_id


def source_audio(spec: SourceSpec) -> np.ndarray:
    """The source's mono samples at AUDIO_RATE, exactly its duration long."""
    n = int(round(spec.duration * AUDIO_RATE))
    if spec.audio["kind"] == "silence":
        return np.zeros(n, np.float32)
    if spec.audio["kind"] == "speech":
        pieces = [decode_audio(f) for f in spec.audio["files"]]
        gap = np.zeros(int(SPEECH_GAP * AUDIO_RATE), np.float32)
        samples = np.concatenate([x for p in pieces for x in (p, gap)])[:n]
        samples = np.pad(samples, (0, n - len(samples)))
    else:
        whole = decode_audio(spec.audio["file"])
        start = int(spec.audio["start"] * AUDIO_RATE)
        end = min(start + n, int(spec.audio["end"] * AUDIO_RATE))  # shared music may be shorter
        samples = whole[start:end]
        samples = np.pad(samples, (0, n - len(samples)))
    return samples.astype(np.float32)


def split_of(count: int, rng: np.random.Generator) -> list[str]:
    """train / val / test by source, 50 / 25 / 25, shuffled by the seed."""
    quarter = count // 4
    labels = ["train"] * (count - 2 * quarter) + ["val"] * quarter + ["test"] * quarter
    rng.shuffle(labels)
    return labels


def render_clip(
    source: Path,
    start: float,
    seconds: float,
    chain: list[E.Edit],
    out: Path,
    audio: str,
    other_audio: Path | None,
) -> float:
    """Edit `seconds` of `source` from `start` into `out` (SIZE, FPS, AAC mono 16 kHz);
    returns the clip's duration in seconds (speed changes shorten or lengthen it)."""
    speed = E.speed_of(chain)
    graph, extras = E.chain_filters(chain, first_extra=2)
    inputs = ["-ss", f"{start:.3f}", "-t", f"{seconds:.3f}", "-i", str(source)]
    inputs += ["-stream_loop", "-1", "-i", str(other_audio or source)]
    for path in extras:
        inputs += (["-loop", "1"] if path.endswith(".png") else ["-stream_loop", "-1"]) + [
            "-i",
            path,
        ]
    graph = graph.replace("[v0]", "[0:v]", 1) if chain else "[0:v]null[vout]"
    graph += f";[vout]fps={FPS},scale={SIZE[0]}:{SIZE[1]},setsar=1,format=yuv420p[v]"
    tempo = f"atempo={speed}," if speed != 1.0 else ""
    duration = seconds / speed
    fmt = f"aresample={AUDIO_RATE},aformat=channel_layouts=mono"
    if audio == "kept":
        graph += f";[0:a]{tempo}{fmt}[a]"
    elif audio == "replaced":
        graph += f";[1:a]{fmt},atrim=0:{duration:.3f}[a]"
    elif audio == "noised":
        graph += (
            f";[0:a]{tempo}{fmt}[clean];anoisesrc=a=0.08:r={AUDIO_RATE}:d={duration:.3f}[hiss];"
            f"[clean][hiss]amix=inputs=2:duration=first[a]"
        )
    elif audio == "voiceover":  # someone speaking over the kept sound, as loud as it
        voice = out.with_name(f"{out.stem}-voice.f32")
        voiceover_track(out.stem, duration).tofile(voice)
        inputs += ["-f", "f32le", "-ar", str(AUDIO_RATE), "-ac", "1", "-i", str(voice)]
        graph += (
            f";[0:a]{tempo}{fmt}[clean];[{2 + len(extras)}:a]{fmt}[voice];"
            f"[clean][voice]amix=inputs=2:duration=first[a]"
        )
    else:  # removed: silence keeps the query's other parts concatenable
        graph += f";anullsrc=r={AUDIO_RATE}:cl=mono,atrim=0:{duration:.3f}[a]"
    command = ["ffmpeg", "-y", "-loglevel", "error", *inputs, "-filter_complex", graph]
    command += ["-map", "[v]", "-map", "[a]", "-t", f"{duration:.3f}"]
    command += ["-c:v", "libx264", "-preset", "veryfast", "-crf", "23", "-c:a", "aac", str(out)]
    if any(e.name == "low_quality" for e in chain):
        command[command.index("23")] = "38"
    _run(command)
    if audio == "voiceover":
        voice.unlink()
    return duration


def concat(parts: list[Path], out: Path) -> None:
    """Join clips of equal size and rate into one MP4 (re-encoded)."""
    inputs = [x for p in parts for x in ("-i", str(p))]
    streams = "".join(f"[{i}:v][{i}:a]" for i in range(len(parts)))
    graph = f"{streams}concat=n={len(parts)}:v=1:a=1[v][a]"
    command = [
        "ffmpeg",
        "-y",
        "-loglevel",
        "error",
        *inputs,
        "-filter_complex",
        graph,
        "-map",
        "[v]",
    ]
    command += ["-map", "[a]", "-c:a", "aac"]
    command += [
        "-c:v",
        "libx264",
        "-preset",
        "veryfast",
        "-crf",
        "23",
        "-movflags",
        "+faststart",
        str(out),
    ]
    _run(command)


def cut(source: Path, start: float, seconds: float, out: Path) -> None:
    """A plain re-encoded span of a source (host material around an inserted copy)."""
    render_clip(source, start, seconds, [], out, "kept", None)


SMALL_QUERIES = [
    [E.EditKind.BLACK_BARS],
    [E.EditKind.PICTURE_IN_PICTURE],
    [E.EditKind.SCREEN_RECORDING],
    [E.EditKind.CROP, E.EditKind.FLIP],
    [E.EditKind.SPEED],
    [E.EditKind.TEMPLATE, E.EditKind.COLOR],
]
AUDIO_MODES = ("kept", "removed", "replaced", "noised", "voiceover")


def _query_plans(mode: Mode, rng: np.random.Generator) -> list[list[E.EditKind]]:
    if not mode.single_edits:
        return [list(k) for k in SMALL_QUERIES]
    kinds = list(E.EditKind)
    plans = [[k] for k in kinds for _ in SPLITS]
    for _ in range(mode.chains):
        size = int(rng.integers(2, 5))
        plans.append([kinds[i] for i in rng.choice(len(kinds), size=size, replace=False)])
    return plans


def build(out: Path, mode: Mode = SMALL, seed: int = 0) -> dict:
    """Build every file into `out` and return (and write) the manifest."""
    rng = np.random.default_rng(seed)
    out.mkdir(parents=True, exist_ok=True)
    specs = plan_sources(mode, rng)
    # Its own random stream, so the sources drawn before it was added stay as they were.
    later = np.random.default_rng([seed, 2])
    library = plan_library(mode.library, pool_photos(photo_catalog()), later, first=len(specs))
    _assign_audio([*specs, *library], mode)
    n_distractors = max(2, mode.sources // 4)
    roles = ["reference"] * (mode.sources - n_distractors) + ["distractor"] * n_distractors
    roles += ["reference"] * (len(specs) - mode.sources)
    _share_music(library, [s for s, r in zip(specs, roles, strict=True) if r == "reference"])
    splits = split_of(mode.sources, rng) + [SPLITS[n % 3] for n in range(len(specs) - mode.sources)]
    framed_from = mode.sources + len(mode.clips)
    sources, frames = [], {}  # frames: source id -> the edit a framed reference wears
    for n, spec in enumerate(specs):
        path = out / "sources" / f"{spec.source_id}.mp4"
        entry = {
            "id": spec.source_id,
            "path": str(path.relative_to(out)),
            "duration": spec.duration,
            "role": roles[n],
            "split": splits[n],
            "provenance": spec.provenance(),
        }
        if spec.photos:
            entry["subject"] = subject(spec.photos[0])
        plain = path if n < framed_from else _work_dir(out) / f"{spec.source_id}-plain.mp4"
        if n >= framed_from:  # a reference inside a template or player, as channels post them
            ctx = E.EditContext(rng=rng, assets=out / "assets", host="")
            frame = E.make_edit(FRAMES[(n - framed_from) % len(FRAMES)], ctx)
            entry["frame"] = {"name": frame.name, "params": frame.params}
            frames[spec.source_id] = frame
        if not path.exists():
            if spec.clip:
                write_clip_source(path, spec.clip, source_audio(spec))
            else:
                write_source(plain, render_frames(spec, seed=seed * 1000 + n), source_audio(spec))
            if plain != path:
                render_clip(plain, 0.0, spec.duration, [frame], path, "kept", None)
                plain.unlink()
        sources.append(entry)
    group_frames = {}  # template group -> the frame its videos wear
    for g in range(mode.library.groups):
        ctx = E.EditContext(rng=later, assets=out / "assets", host="")
        group_frames[f"T{g}"] = E.make_edit(FRAMES[g % len(FRAMES)], ctx)
    for n, spec in enumerate(library):
        sources.append(_never_copied(out, spec, SPLITS[n % len(SPLITS)], group_frames))
    # Framed references are only in the library, as the near misses' look-alikes.
    refs = [s for s in sources if s["role"] == "reference" and "frame" not in s]
    hosts = [s for s in sources if s["role"] == "distractor"]
    queries = []
    for q, kinds in enumerate(_query_plans(mode, rng)):
        ref = refs[q % len(refs)]
        host = hosts[q % len(hosts)]
        background = hosts[(q + 1) % len(hosts)]
        ctx = E.EditContext(rng=rng, assets=out / "assets", host=str(out / background["path"]))
        chain = [E.make_edit(k, ctx) for k in kinds]
        audio = AUDIO_MODES[q % len(AUDIO_MODES)]
        queries.append(_partial_copy(out, f"Q{q:03d}", ref, host, chain, audio, rng, mode))
    # Drawn after the partial copies, so adding kinds never changes the queries before them.
    whole_frame = [E.EditKind.COLOR, E.EditKind.FLIP, E.EditKind.CROP, E.EditKind.BLACK_BARS,
                   E.EditKind.NOISE, E.EditKind.LOW_QUALITY, E.EditKind.WATERMARK]  # fmt: skip
    for n in range(mode.full_copies + mode.two_source):
        first = refs[int(rng.integers(len(refs)))]
        kinds = [whole_frame[i] for i in rng.choice(len(whole_frame), size=2, replace=False)]
        ctx = E.EditContext(rng=rng, assets=out / "assets", host="")
        chain = [E.make_edit(k, ctx) for k in kinds]
        audio = AUDIO_MODES[n % len(AUDIO_MODES)]
        if n < mode.full_copies:
            queries.append(_full_copy(out, f"F{n:03d}", first, chain, audio, hosts[0]))
            continue
        # Both references from one split, so splits stay apart.
        paired = [r for r in refs if sum(o["split"] == r["split"] for o in refs) > 1]
        if first not in paired:
            first = paired[int(rng.integers(len(paired)))]
        others = [r for r in paired if r["split"] == first["split"] and r is not first]
        second = others[int(rng.integers(len(others)))]
        host = hosts[n % len(hosts)]
        queries.append(
            _two_source(
                out, f"T{n - mode.full_copies:03d}", (first, second), host, chain, audio, rng, mode
            )
        )
    subjects = {}
    for r in refs:
        subjects.setdefault(r.get("subject"), []).append(r["id"])
    for n, host in enumerate(hosts):  # negatives: unrelated videos, never ingested
        alike = subjects.get(host.get("subject"), [])
        queries.append(
            QueryRecord(
                f"N{n:03d}",
                host["path"],
                "negative",
                host["split"],
                [],
                "kept",
                host["duration"],
                trap="similar_subject" if alike else "",
                resembles=alike,
                other_sound=[host["id"]],
            )  # fmt: skip
        )
    queries += _near_misses(out, mode, sources, frames, hosts, rng)
    partial = sum(q.kind == "partial" for q in queries)
    queries += _filmed_screens(out, mode, refs, hosts, later, first=partial)
    queries += _group_queries(out, mode, sources, refs, hosts, group_frames, later)
    queries += _inside(out, mode, refs, later)
    manifest = {
        "version": 2,
        "seed": seed,
        "mode": mode.name,
        "size": list(SIZE),
        "fps": FPS,
        "sources": sources,
        "queries": [asdict(q) for q in queries],
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1))
    write_credits(out, manifest)
    return manifest


def _partial_copy(
    out: Path,
    query_id: str,
    ref: dict,
    host: dict,
    chain: list[E.Edit],
    audio: str,
    rng: np.random.Generator,
    mode: Mode,
) -> QueryRecord:
    """A span of `ref`, edited by `chain`, inserted into unrelated `host` material."""
    path = out / "queries" / f"{query_id}.mp4"
    path.parent.mkdir(parents=True, exist_ok=True)
    longest = min(ref["duration"] - 1.0, 15.0 if mode.name == "small" else 60.0)
    seconds = round(float(rng.uniform(5.0, longest)), 2)
    start = round(float(rng.uniform(0.0, ref["duration"] - seconds)), 2)
    before = round(float(rng.uniform(2.0, min(8.0, host["duration"] - 4.0))), 2)
    after = round(min(6.0, host["duration"] - before - 0.5), 2)
    clip = _work_dir(out) / f"{query_id}-copy.mp4"
    copied = render_clip(out / ref["path"], start, seconds, chain, clip, audio, out / host["path"])
    _embed(out, path, host, before, after, [clip])
    truth = QueryTruth(
        ref_id=ref["id"],
        query_start=before,
        query_end=round(before + copied, 3),
        ref_start=start,
        ref_end=round(start + seconds, 3),
        content_box=_box(chain),
    )
    return QueryRecord(
        query_id=query_id,
        path=str(path.relative_to(out)),
        kind="partial",
        split=ref["split"],
        edits=_edit_records(chain),
        audio=audio,
        duration=round(before + copied + after, 3),
        truth=[truth],
        other_sound=[host["id"]],
    )


def _full_copy(
    out: Path, query_id: str, ref: dict, chain: list[E.Edit], audio: str, other: dict
) -> QueryRecord:
    """The whole of `ref`, edited by `chain`."""
    path = out / "queries" / f"{query_id}.mp4"
    path.parent.mkdir(parents=True, exist_ok=True)
    seconds = ref["duration"]
    copied = render_clip(out / ref["path"], 0.0, seconds, chain, path, audio, out / other["path"])
    truth = QueryTruth(ref["id"], 0.0, round(copied, 3), 0.0, seconds, _box(chain))
    return QueryRecord(
        query_id, str(path.relative_to(out)), "full", ref["split"],
        _edit_records(chain), audio, round(copied, 3), [truth],
        other_sound=[other["id"]] if audio == "replaced" else [],
    )  # fmt: skip


def _two_source(
    out: Path,
    query_id: str,
    refs: tuple[dict, dict],
    host: dict,
    chain: list[E.Edit],
    audio: str,
    rng: np.random.Generator,
    mode: Mode,
) -> QueryRecord:
    """Spans of two references, edited alike, back to back inside unrelated `host` material."""
    path = out / "queries" / f"{query_id}.mp4"
    before = round(float(rng.uniform(2.0, min(6.0, host["duration"] - 4.0))), 2)
    after = round(min(4.0, host["duration"] - before - 0.5), 2)
    clips, truths, at = [], [], before
    for k, ref in enumerate(refs):
        longest = min(ref["duration"] - 1.0, 10.0 if mode.name == "small" else 30.0)
        seconds = round(float(rng.uniform(5.0, longest)), 2)
        start = round(float(rng.uniform(0.0, ref["duration"] - seconds)), 2)
        clip = _work_dir(out) / f"{query_id}-copy{k}.mp4"
        copied = render_clip(
            out / ref["path"], start, seconds, chain, clip, audio, out / host["path"]
        )
        clips.append(clip)
        truths.append(
            QueryTruth(
                ref["id"],
                round(at, 3),
                round(at + copied, 3),
                start,
                round(start + seconds, 3),
                _box(chain),
            )  # fmt: skip
        )
        at += copied
    _embed(out, path, host, before, after, clips)
    return QueryRecord(
        query_id, str(path.relative_to(out)), "two_source", refs[0]["split"],
        _edit_records(chain), audio, round(at + after, 3), truths, other_sound=[host["id"]],
    )  # fmt: skip


def _inside(out: Path, mode: Mode, refs: list[dict], rng: np.random.Generator) -> list[QueryRecord]:
    """Queries I000...: a span of reference A picture-in-picture over the opening of
    reference B of the same split, so the query copies both; the sound is A's or B's."""
    queries = []
    for n in range(mode.inside):
        split = SPLITS[n % len(SPLITS)]
        mine = [r for r in refs if r["split"] == split]
        if len(mine) < 2:
            continue
        a, b = (mine[k] for k in rng.choice(len(mine), size=2, replace=False))
        longest = min(a["duration"], b["duration"], 10.0 if mode.name == "small" else 25.0) - 1
        seconds = round(float(rng.uniform(min(6.0, longest), longest)), 2)
        start = round(float(rng.uniform(0.0, a["duration"] - seconds)), 2)
        ctx = E.EditContext(rng=rng, assets=out / "assets", host=str(out / b["path"]))
        chain = [E.make_edit(E.EditKind.PICTURE_IN_PICTURE, ctx)]  # B plays from its start
        audio = "kept" if n % 2 == 0 else "replaced"  # replaced: B's own sound
        path = out / "queries" / f"I{n:03d}.mp4"
        path.parent.mkdir(parents=True, exist_ok=True)
        copied = render_clip(out / a["path"], start, seconds, chain, path, audio, out / b["path"])
        end = round(copied, 3)
        truth = [
            QueryTruth(a["id"], 0.0, end, start, round(start + seconds, 3), _box(chain)),
            QueryTruth(b["id"], 0.0, end, 0.0, round(seconds, 3), (0.0, 0.0, 1.0, 1.0)),
        ]
        queries.append(
            QueryRecord(
                f"I{n:03d}",
                str(path.relative_to(out)),
                "inside",
                split,
                _edit_records(chain),
                audio,
                round(copied, 3),
                truth,
            )  # fmt: skip
        )
    return queries


def _near_misses(
    out: Path,
    mode: Mode,
    sources: list[dict],
    frames: dict[str, E.Edit],
    hosts: list[dict],
    rng: np.random.Generator,
) -> list[QueryRecord]:
    """Negatives built to resemble a reference: each framed reference's frame (`frames`, by
    source id) around unrelated pictures, and references' audio under unrelated pictures.
    None copies a reference's picture, so each must not be reported."""
    queries = []
    framed = [s for s in sources if s["role"] == "reference" and "frame" in s]
    refs = [s for s in sources if s["role"] == "reference" and "frame" not in s]
    for n, ref in enumerate(framed):
        host = hosts[(n + 2) % len(hosts)]
        seconds = round(float(rng.uniform(10.0, min(25.0, host["duration"]))), 2)
        start = round(float(rng.uniform(0.0, host["duration"] - seconds)), 2)
        path = out / "queries" / f"M{n:03d}.mp4"
        path.parent.mkdir(parents=True, exist_ok=True)
        edit = frames[ref["id"]]
        duration = render_clip(out / host["path"], start, seconds, [edit], path, "kept", None)
        queries.append(
            QueryRecord(
                f"M{n:03d}",
                str(path.relative_to(out)),
                "near_miss",
                ref["split"],
                _edit_records([edit]),
                "kept",
                round(duration, 3),
                trap="same_frame",
                resembles=[ref["id"]],
                other_sound=[host["id"]],
            )  # fmt: skip
        )
    for n in range(mode.same_audio):
        ref = refs[int(rng.integers(len(refs)))]
        host = hosts[(n + 1) % len(hosts)]
        seconds = round(float(rng.uniform(10.0, min(25.0, ref["duration"], host["duration"]))), 2)
        ref_start = round(float(rng.uniform(0.0, ref["duration"] - seconds)), 2)
        path = out / "queries" / f"M{len(framed) + n:03d}.mp4"
        _dub(out / host["path"], out / ref["path"], ref_start, seconds, path)
        queries.append(
            QueryRecord(
                path.stem,
                str(path.relative_to(out)),
                "near_miss",
                ref["split"],
                [],
                "kept",
                seconds,
                trap="same_audio",
                resembles=[ref["id"]],
            )  # fmt: skip
        )
    return queries


def _never_copied(out: Path, spec: LibrarySpec, split: str, group_frames: dict) -> dict:
    """Write one never-copied library video (a template group's inside its group's frame,
    a bumper group's after its bumper, with the bumper's jingle) and return its entry."""
    path = out / "sources" / f"{spec.source_id}.mp4"
    entry = {
        "id": spec.source_id,
        "path": str(path.relative_to(out)),
        "duration": spec.duration,
        "role": "library",
        "split": split,
        "library_kind": spec.kind.value,
        "group": spec.group,
        "provenance": spec.provenance(),
    }
    frame = group_frames.get(spec.group) if spec.kind is LibraryKind.TEMPLATE_GROUP else None
    if frame is not None:
        entry["frame"] = {"name": frame.name, "params": frame.params}
    if path.exists():
        return entry
    audio = source_audio(spec)
    if spec.kind is LibraryKind.BUMPER_GROUP:
        intro = jingle(group_seed(spec.group))
        audio[: len(intro)] = intro
    plain = path if frame is None else _work_dir(out) / f"{spec.source_id}-plain.mp4"
    write_source(plain, spec.frames(), audio)
    if frame is not None:
        render_clip(plain, 0.0, spec.duration, [frame], path, "kept", None)
        plain.unlink()
    return entry


STACKED_UNDER = [E.EditKind.COLOR, E.EditKind.CROP, E.EditKind.BLACK_BARS, E.EditKind.TEMPLATE,
                 E.EditKind.WATERMARK, E.EditKind.DANMAKU, E.EditKind.FLIP]  # fmt: skip


def _filmed_screens(
    out: Path, mode: Mode, refs: list[dict], hosts: list[dict], rng: np.random.Generator,
    first: int,
) -> list[QueryRecord]:  # fmt: skip
    """Partial copies filmed off a screen, splits in turn; one in three filmed as it is, the
    rest over another edit (an edited upload played on a monitor and filmed)."""
    queries = []
    for n in range(mode.filmed):
        split = SPLITS[n % len(SPLITS)]
        mine = [r for r in refs if r["split"] == split] or refs
        ref = mine[int(rng.integers(len(mine)))]
        host, background = hosts[n % len(hosts)], hosts[(n + 1) % len(hosts)]
        ctx = E.EditContext(rng=rng, assets=out / "assets", host=str(out / background["path"]))
        kinds = [E.EditKind.FILMED_SCREEN]
        if n // len(SPLITS) % 3:
            kinds.insert(0, STACKED_UNDER[int(rng.integers(len(STACKED_UNDER)))])
        chain = [E.make_edit(k, ctx) for k in kinds]
        audio = AUDIO_MODES[n % len(AUDIO_MODES)]
        queries.append(_partial_copy(out, f"Q{first + n:03d}", ref, host, chain, audio, rng, mode))
    return queries


def _group_queries(
    out: Path, mode: Mode, sources: list[dict], refs: list[dict], hosts: list[dict],
    group_frames: dict[str, E.Edit], rng: np.random.Generator,
) -> list[QueryRecord]:  # fmt: skip
    """Queries that share a group's frame or bumper with never-copied library videos: copies
    of a reference inside the frame or after the bumper (the group's videos must not be
    reported with the reference), and unrelated pictures inside it or after it (near
    misses: nothing may be reported)."""
    members: dict[str, list[str]] = {}
    for s in sources:
        if s.get("group"):
            members.setdefault(s["group"], []).append(s["id"])
    queries, copies, misses = [], 0, 0
    near_at = 1000  # near-miss ids M1000...: the others' numbering stays as it was
    for group, ids in members.items():
        framed = group in group_frames
        intro = None if framed else _bumper_clip(out, group)
        for _ in range(mode.group_copies if framed else mode.bumper_copies):
            ref = refs[int(rng.integers(len(refs)))]
            audio = AUDIO_MODES[copies % len(AUDIO_MODES)]
            query_id = f"G{copies:03d}"
            if framed:
                host = hosts[(copies + 3) % len(hosts)]
                record = _partial_copy(
                    out, query_id, ref, host, [group_frames[group]], audio, rng, mode
                )
            else:
                ctx = E.EditContext(rng=rng, assets=out / "assets", host="")
                chain = [E.make_edit(E.EditKind.COLOR, ctx)]
                record = _after_bumper(out, query_id, intro, ref, chain, audio, rng, mode)
            record.resembles = list(ids)
            queries.append(record)
            copies += 1
        for _ in range(mode.group_misses):
            host = hosts[(misses + 4) % len(hosts)]
            seconds = round(float(rng.uniform(8.0, min(20.0, host["duration"] - 1.0))), 2)
            start = round(float(rng.uniform(0.0, host["duration"] - seconds)), 2)
            path = out / "queries" / f"M{near_at + misses:03d}.mp4"
            if framed:
                edit = group_frames[group]
                duration = render_clip(
                    out / host["path"], start, seconds, [edit], path, "kept", None
                )
                edits, trap = _edit_records([edit]), "same_frame"
            else:
                clip = _work_dir(out) / f"{path.stem}-host.mp4"
                duration = render_clip(out / host["path"], start, seconds, [], clip, "kept", None)
                concat([intro, clip], path)
                clip.unlink()
                duration += BUMPER_SECONDS
                edits, trap = [], "same_bumper"
            queries.append(
                QueryRecord(
                    path.stem,
                    str(path.relative_to(out)),
                    "near_miss",
                    SPLITS[misses % 3],
                    edits,
                    "kept",
                    round(duration, 3),
                    trap=trap,
                    resembles=list(ids),
                    other_sound=[host["id"]],
                )  # fmt: skip
            )
            misses += 1
    return queries


def _bumper_clip(out: Path, group: str) -> Path:
    """The group's bumper with its jingle as a clip (SIZE, FPS, AAC), written once."""
    path = _work_dir(out) / f"bumper-{group}.mp4"
    if not path.exists():
        write_source(path, iter(bumper(group_seed(group))), jingle(group_seed(group)))
    return path


def _after_bumper(
    out: Path, query_id: str, intro: Path, ref: dict, chain: list[E.Edit], audio: str,
    rng: np.random.Generator, mode: Mode,
) -> QueryRecord:  # fmt: skip
    """A channel's re-upload: its bumper, then a span of `ref` edited by `chain`."""
    path = out / "queries" / f"{query_id}.mp4"
    path.parent.mkdir(parents=True, exist_ok=True)
    longest = min(ref["duration"] - 1.0, 15.0 if mode.name == "small" else 40.0)
    seconds = round(float(rng.uniform(5.0, longest)), 2)
    start = round(float(rng.uniform(0.0, ref["duration"] - seconds)), 2)
    clip = _work_dir(out) / f"{query_id}-copy.mp4"
    copied = render_clip(out / ref["path"], start, seconds, chain, clip, audio, None)
    concat([intro, clip], path)
    clip.unlink()
    truth = QueryTruth(
        ref["id"], BUMPER_SECONDS, round(BUMPER_SECONDS + copied, 3), start,
        round(start + seconds, 3), _box(chain),
    )  # fmt: skip
    return QueryRecord(
        query_id, str(path.relative_to(out)), "partial", ref["split"], _edit_records(chain),
        audio, round(BUMPER_SECONDS + copied, 3), [truth],
    )  # fmt: skip


def _dub(pictures: Path, sound: Path, sound_start: float, seconds: float, out: Path) -> None:
    """`seconds` of `pictures`' video from its start under `sound`'s audio from
    `sound_start`: the same music over different pictures."""
    command = [
        "ffmpeg", "-y", "-loglevel", "error", "-t", f"{seconds:.3f}", "-i", str(pictures),
        "-ss", f"{sound_start:.3f}", "-t", f"{seconds:.3f}", "-i", str(sound),
        "-map", "0:v", "-map", "1:a", "-c:v", "libx264", "-preset", "veryfast", "-crf", "23",
        "-c:a", "aac", "-movflags", "+faststart", str(out),
    ]  # fmt: skip
    _run(command)


def _work_dir(out: Path) -> Path:
    work = out / "work"
    work.mkdir(exist_ok=True)
    return work


def _embed(out: Path, path: Path, host: dict, before: float, after: float, clips: list[Path]):
    """Write `path`: `before` s of `host`, the clips, then the `after` s of host that follow;
    the clips are deleted."""
    path.parent.mkdir(parents=True, exist_ok=True)
    head, tail = _work_dir(out) / f"{path.stem}-a.mp4", _work_dir(out) / f"{path.stem}-b.mp4"
    cut(out / host["path"], 0.0, before, head)
    cut(out / host["path"], before, after, tail)
    parts = [head, *clips, tail]
    concat(parts, path)
    for part in parts:
        part.unlink()


def _box(chain: list[E.Edit]) -> tuple[float, float, float, float]:
    """The chain's content box, rounded for the manifest."""
    return tuple(round(v, 4) for v in E.content_box(chain))


def _edit_records(chain: list[E.Edit]) -> list[dict]:
    return [{"name": e.name, "params": e.params} for e in chain]
