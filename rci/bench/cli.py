"""`rci-bench build` makes the benchmark; `rci-bench run` scores the served system on it;
`rci-bench replay` re-runs matching offline with other parameters; `rci-bench scale`
measures the fingerprint index at millions of fingerprints."""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import sys
import time
from pathlib import Path

from rci.bench.build import FULL, SMALL, build
from rci.bench.peers import PeerKind, missing
from rci.bench.run import compare, run


def cmd_build(args: argparse.Namespace) -> int:
    start = time.perf_counter()
    manifest = build(args.out, FULL if args.full else SMALL, seed=args.seed)
    print(
        f"{len(manifest['sources'])} sources, {len(manifest['queries'])} queries in {args.out} "
        f"({time.perf_counter() - start:.0f} s); manifest: {args.out / 'manifest.json'}"
    )
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from rci_client import RciClient

    try:
        peers = tuple(PeerKind(p) for p in args.peers.split(",") if p)
    except ValueError as e:
        print(f"{e}; known peers: {', '.join(k.value for k in PeerKind)}", file=sys.stderr)
        return 2
    # Said before the hour-long run, not found in its report after it.
    lacking = [why for kind in peers if (why := missing(kind))]
    if lacking and not args.reuse_peers:
        for why in lacking:
            print(why, file=sys.stderr)
        print("or leave those peers out: --peers phash,signature", file=sys.stderr)
        return 2
    if args.url:
        with RciClient(args.url, protocol=args.protocol) as client:
            report = run(
                args.out, client, args.library, peers, reuse_peers=args.reuse_peers,
                verdict=args.verdict,
            )  # fmt: skip
    else:
        from rci.serving.server import ServerOptions, TritonServer

        data = args.out / "server-data"
        shutil.rmtree(data, ignore_errors=True)
        options = ServerOptions(
            data_dir=data, work_dir=args.out / "server", libraries=[args.library],
            descriptor=args.descriptor,
        )  # fmt: skip
        with TritonServer(options) as server, RciClient(server.http_url) as client:
            report = run(
                args.out, client, args.library, peers, server.peak_memory_mb, args.reuse_peers,
                args.verdict,
            )  # fmt: skip
    print((args.out / "results.md").read_text())
    print(json.dumps(report["overall"], indent=1))
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from rci.bench.run import rescore

    report = rescore(args.out)
    print((args.out / "results.md").read_text())
    print(json.dumps(report["overall"], indent=1))
    return 0


def cmd_boxes(args: argparse.Namespace) -> int:
    from rci.bench.boxes import box_report, markdown
    from rci.preprocess.inset import InsetParams

    report = box_report(
        args.out, args.split or None, inset=None if args.bars_only else InsetParams()
    )
    print(markdown(report))
    if args.json:
        args.json.write_text(json.dumps(report, indent=1))
    return 0


def cmd_score(args: argparse.Namespace) -> int:
    """Score another system's predictions (runner format) against a build's manifest."""
    manifest = json.loads((args.out / "manifest.json").read_text())
    records = json.loads(args.predictions.read_text())
    known = {q["query_id"] for q in manifest["queries"]}
    given = {r["query_id"] for r in records}
    if given != known:
        missing, unknown = sorted(known - given), sorted(given - known)
        print(f"predictions must cover every query once: missing {missing}, unknown {unknown}")
        return 2
    for record in records:
        record.setdefault("box_iou", None)
    scores = compare(manifest, {args.name: records})[f"{args.name} (all)"]
    print(json.dumps(scores, indent=1))
    return 0


def cmd_speed(args: argparse.Namespace) -> int:
    from rci.bench import speed
    from rci.preprocess.media import sample_video

    data = speed.make_clip(args.clip, args.seconds, args.music).read_bytes()
    video = sample_video(data)
    frames, seconds = len(video.frames), video.duration
    print(f"{args.clip}: {seconds:.1f} s, {video.frames.shape[2]}x{video.frames.shape[1]}, "
          f"{frames} sampled frames; medians of {args.repeats} runs\n")  # fmt: skip
    clips = {
        name: args.clip if every == 10.0 else speed.with_keyframes_every(args.clip, every)
        for name, every in speed.KEYFRAME_SPACINGS.items()
    }
    rows, paths = {}, {}
    for name, path in clips.items():
        decoded, paths[name] = speed.planned_decode(path.read_bytes(), args.repeats)
        rows[name] = {**speed.decode_bound(path, args.repeats), **decoded}
    result = None
    if not args.no_served:
        result = speed.served(clips, args.clip.parent / "served", args.repeats)
        for name in clips:
            rows[name].update(result.seconds[name])
    print("### Video seconds per second (ratio to ffmpeg decoding every frame)\n")
    print(speed.ratio_table(seconds, rows, paths))
    if result is not None:
        print(f"\nserver's peak memory (tritonserver and its stubs, VmHWM): {result.peak:,.0f} MiB")
        print("\n### Peak memory per path: MiB above the server before the step (bound)\n")
        uploads = {name: path.stat().st_size / 2**20 for name, path in clips.items()}
        print(speed.memory_table(result, uploads))
    if result is not None and not args.no_peers:  # their cost is given against RCI's served
        costs, skipped = speed.peer_costs(args.clip, args.repeats)
        if costs:
            first = result.seconds[next(iter(clips))]
            rci = {"index": first["rci_ingest, every sampled frame (1 s)"],
                   "detect": first["rci_detect, 1 frame per s"]}  # fmt: skip
            print(f"\n### Peers on the same clip ({next(iter(clips))})\n")
            print(speed.peer_table(seconds, costs, rci))
        for line in skipped:
            print(f"peer left out: {line}")
    print()
    print(speed.table(speed.cpu_stages(data, args.repeats), frames, seconds,
                      "cpu target (PyAV, numpy), x264 default keyframes"))  # fmt: skip
    if args.gpu:
        print()
        stages = speed.gpu_stages(data, args.repeats)
        print(speed.table(stages, frames, seconds, "gpu target (NVDEC, DALI)"))
    stages, shares = speed.audio_cost(data, args.repeats)
    print()
    print(
        speed.table(stages, frames, seconds, "audio beside the whole (cpu target, sscd_resnet50)")
    )
    print()
    print(f"audio's share: ingest {shares['ingest']:.1%}, detect {shares['detect']:.1%} "
          "(audio decode, log-mel and MFCC, fingerprints, query views, alignment)")  # fmt: skip
    return 0


def cmd_scale(args: argparse.Namespace) -> int:
    import faiss

    from rci.bench.scale import machine, markdown, scale

    threads = args.threads or os.cpu_count()
    faiss.omp_set_num_threads(threads)
    print(f"faiss threads: {threads}", file=sys.stderr)
    sizes = [int(n) for n in args.sizes.split(",")]
    nprobes = [int(p) for p in args.nprobe.split(",")]
    rows = scale(
        args.real, sizes, queries=args.queries, nprobes=nprobes, max_flat=args.max_flat,
        pq=args.pq,
    )  # fmt: skip
    if args.milvus:  # the same database, queries and ground truth in Milvus Lite
        from rci.bench.scale import query_set
        from rci.bench.scale_milvus import bench_milvus

        gauss, xq, sources = query_set(args.real, sizes, args.queries)
        work = args.out.with_suffix(".milvus")
        for n in sizes:
            rows += bench_milvus(
                n, gauss, xq, sources, work, indexes=args.milvus.split(","), seed=0
            )
        shutil.rmtree(work, ignore_errors=True)
    command = shlex.join(["rci-bench", *sys.argv[1:]])
    header = f"Machine: {machine(threads)}. Command: `{command}`"
    text = markdown(rows, header)
    print(text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    report = {"machine": machine(threads), "command": command, "rows": rows}
    args.out.with_suffix(".json").write_text(json.dumps(report, indent=1))
    return 0


def cmd_latency(args: argparse.Namespace) -> int:
    from rci.bench import latency, speed

    clip = speed.make_clip(args.clip, args.seconds)
    sizes = [int(n) for n in args.sizes.split(",")]
    real = args.real if args.real and args.real.exists() else None
    source = real or "the score-normalization background"
    print(f"{clip}; fillers fitted to {source}", file=sys.stderr)
    rows = latency.measure(clip, sizes, args.work, args.repeats, real,
                           log=lambda m: print(m, file=sys.stderr, flush=True))  # fmt: skip
    print(f"Command: `{shlex.join(['rci-bench', *sys.argv[1:]])}`\n")
    print(latency.markdown(rows, args.repeats))
    return 0


def cmd_parity(args: argparse.Namespace) -> int:
    from rci.bench import parity

    result = parity.measure(args.build, args.work, log=lambda m: print(m, file=sys.stderr))
    print(f"Command: `{shlex.join(['rci-bench', *sys.argv[1:]])}`\n")
    print(parity.markdown(result))
    return 0


def _print_per_edit(manifest: dict, records: list[dict]) -> None:
    """Decision recall per edit (a query counts for each edit of its chain; every true pair
    of it), on the test split and on all splits, and never-copied videos reported by kind."""
    from rci.bench.run import never_copied

    by_id = {r["query_id"]: r for r in records}
    print("\n| edit | test: pairs | test: decision recall | all: pairs | all: decision recall |")
    print("| --- | --- | --- | --- | --- |")
    edits = sorted({e["name"] for q in manifest["queries"] for e in q["edits"]})
    for edit in edits:
        cells = []
        for split in ("test", "all"):
            pairs = found = 0
            for q in manifest["queries"]:
                if split not in ("all", q["split"]) or edit not in {e["name"] for e in q["edits"]}:
                    continue
                said = {m["ref_id"] for m in by_id[q["query_id"]]["matches"] if m["reproduced"]}
                pairs += len(q["truth"])
                found += sum(t["ref_id"] in said for t in q["truth"])
            cells += [str(pairs), f"{found / pairs:.3f}" if pairs else "-"]
        print(f"| {edit} | " + " | ".join(cells) + " |")
    print("\n| never-copied kind | videos | queries reporting one / wrong pairs (all) |")
    print("| --- | --- | --- |")
    for kind, row in never_copied(manifest, manifest["queries"], by_id).items():
        print(f"| {kind} | {row['videos']} | {row['flagged_queries']} / {row['false_pairs']} |")


def cmd_replay(args: argparse.Namespace) -> int:
    """Recall and alignment replayed on cached features as the server runs them (mirrored
    and whole views, normalization, recurrence), with parameters set by --set and --hub."""
    import dataclasses

    from rci.bench.replay import cache_query_features, replay, scores_by_split, served_library
    from rci.bench.run import never_copied
    from rci.describe.descriptor import EMBEDDING_DIM, DescriptorModel
    from rci.match.alignment import AlignParams
    from rci.match.recall import RecallParams
    from rci.match.verdict import FusionParams
    from rci.serving.backend import from_parameters

    model = DescriptorModel.parse(args.descriptor)
    written = cache_query_features(args.out, model, screen=not args.no_screen)
    if written:
        print(f"cached the features of {written} queries", file=sys.stderr)
    settings = dict(item.split("=", 1) for item in args.set)
    recall_fields = {f.name for f in dataclasses.fields(RecallParams)}
    recall_params = from_parameters(
        RecallParams, {k: v for k, v in settings.items() if k in recall_fields}
    )
    rest = {k: v for k, v in settings.items() if k not in recall_fields}
    fusion = from_parameters(  # rci_match's audio_* parameters
        FusionParams, {k.removeprefix("audio_"): v for k, v in rest.items() if k[:6] == "audio_"}
    )
    align_params = from_parameters(
        AlignParams, {k: v for k, v in rest.items() if not k.startswith("audio_")}
    )
    data_dir = args.data_dir or args.out / "server-data"
    index = served_library(data_dir, args.library, model)
    background = None
    if not args.no_normalize:
        from rci.library.background import background_path, read_background
        from rci.match.normalize import Background, HubParams

        hub = from_parameters(HubParams, dict(item.split("=", 1) for item in args.hub))
        path = args.background or background_path(data_dir, model)
        background = Background(read_background(path, EMBEDDING_DIM), hub)
    records = replay(
        args.out, index, recall_params=recall_params, align_params=align_params,
        mirror=not args.no_mirror,
        background=background, whole=not args.no_whole, screen=not args.no_screen,
        audio_recall=not args.no_audio, audio_match=not args.no_audio, fusion=fusion,
    )  # fmt: skip
    manifest = json.loads((args.out / "manifest.json").read_text())
    by_id = {r["query_id"]: r for r in records}
    columns = ["pair_uap", "decision_precision", "decision_recall", "decision_f1"]
    print("| split | queries | " + " | ".join(columns) + " | never-copied flagged |")
    print("| --- " * (len(columns) + 3) + "|")
    for split, row in scores_by_split(manifest, records).items():
        chosen = [q for q in manifest["queries"] if split in ("all", q["split"])]
        flagged = never_copied(manifest, chosen, by_id)["all"]
        cells = [f"{row.get(c, 0.0):.3f}" for c in columns]
        print(f"| {split} | {len(chosen)} | " + " | ".join(cells)
              + f" | {flagged['flagged_queries']}/{len(chosen)} |")  # fmt: skip
    if args.per_edit:
        _print_per_edit(manifest, records)
    if args.predictions:
        args.predictions.write_text(json.dumps(records))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="rci-bench", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("build", help="build sources, queries and the manifest")
    p.add_argument("--out", type=Path, default=Path(".rci/bench"))
    p.add_argument("--full", action="store_true", help="the full benchmark (default: small)")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=cmd_build)
    p = sub.add_parser("run", help="ingest the references, detect every query, score")
    p.add_argument("--out", type=Path, default=Path(".rci/bench"))
    p.add_argument("--url", default=None, help="a running server (default: start one)")
    p.add_argument("--protocol", choices=["http", "grpc"], default="http")
    p.add_argument("--library", default="bench", help="an empty library to ingest into")
    p.add_argument("--descriptor", default="sscd_resnet50")
    p.add_argument(
        "--verdict",
        choices=["matchlite", "heuristic"],
        help="who decides each detect (default: the library's, MatchLite); MatchLite is "
        "trained for sscd_resnet50, so another --descriptor needs heuristic",
    )
    p.add_argument(
        "--peers",
        default="phash,chromaprint,signature,videohash",
        help="comma-separated peers to run too ('' for none)",
    )
    p.add_argument(
        "--reuse-peers",
        action="store_true",
        help="take the peers' predictions from an earlier run's predictions/ folder",
    )
    p.set_defaults(func=cmd_run)
    p = sub.add_parser("boxes", help="content-box IoU per edit, no server needed")
    p.add_argument("--out", type=Path, default=Path(".rci/bench"))
    p.add_argument("--split", default="val", help="train, val or test ('' for all)")
    p.add_argument("--json", type=Path, default=None, help="also write the report here")
    p.add_argument("--bars-only", action="store_true", help="skip the inset search (baseline)")
    p.set_defaults(func=cmd_boxes)
    p = sub.add_parser("score", help="score your own system's predictions (JSON) on a build")
    p.add_argument("--out", type=Path, default=Path(".rci/bench"))
    p.add_argument("--predictions", type=Path, required=True, help="a JSON list, one per query")
    p.add_argument("--name", default="mine")
    p.set_defaults(func=cmd_score)
    p = sub.add_parser("replay", help="recall and alignment again, offline, other parameters")
    p.add_argument("--out", type=Path, default=Path(".rci/bench"))
    p.add_argument("--data-dir", type=Path, default=None, help="default: OUT/server-data")
    p.add_argument("--library", default="bench")
    p.add_argument("--descriptor", default="sscd_resnet50")
    p.add_argument("--no-mirror", action="store_true", help="leave the mirrored view out")
    p.add_argument("--no-whole", action="store_true", help="leave the whole-frame view out")
    p.add_argument(
        "--no-audio",
        action="store_true",
        help="pictures only: no audio recall, no audio alignment (visual-only RCI)",
    )
    p.add_argument(
        "--per-edit", action="store_true", help="also decision recall per edit, FPs per kind"
    )
    p.add_argument(
        "--no-screen",
        action="store_true",
        help="query features made without the tilted-screen search (cached apart)",
    )
    p.add_argument("--no-normalize", action="store_true", help="no score normalization")
    p.add_argument(
        "--set", action="append", default=[], metavar="NAME=VALUE",
        help="a RecallParams or AlignParams field (e.g. threshold=0.6), or one of rci_match's "
        "audio_* parameters (e.g. audio_support=0.08); repeatable",
    )  # fmt: skip
    p.add_argument(
        "--background", type=Path, default=None,
        help="a background .npy (default: the data directory's, as the server used)",
    )  # fmt: skip
    p.add_argument("--hub", action="append", default=[], metavar="NAME=VALUE",
                   help="a HubParams field (k, floor, beta); repeatable")  # fmt: skip
    p.add_argument("--predictions", type=Path, default=None, help="write the records here")
    p.set_defaults(func=cmd_replay)
    p = sub.add_parser("report", help="score a run's saved predictions again, no server")
    p.add_argument("--out", type=Path, default=Path(".rci/bench"))
    p.set_defaults(func=cmd_report)
    p = sub.add_parser("speed", help="preprocessing speed by stage on a 720p H.264 clip")
    p.add_argument("--clip", type=Path, default=Path(".rci/speed/bunny-720p-60s.mp4"))
    p.add_argument("--seconds", type=int, default=60, help="length of the clip to make")
    p.add_argument(
        "--music", type=Path, help="audio file the clip to make plays (default: a 440 Hz tone)"
    )
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--gpu", action="store_true", help="also the gpu target (DALI and a GPU)")
    p.add_argument(
        "--no-served", action="store_true", help="skip rci_ingest and rci_detect through Triton"
    )
    p.add_argument(
        "--no-peers", action="store_true", help="skip the peers' cost (needs the served steps)"
    )
    p.set_defaults(func=cmd_speed)
    p = sub.add_parser("scale", help="exact search and IVF-PQ over millions of fingerprints")
    p.add_argument("--sizes", default="1000000,10000000", help="comma-separated vector counts")
    p.add_argument(
        "--real",
        type=Path,
        default=Path(".rci/bench-full/server-data/bench"),
        help="a library folder whose descriptors the synthetic ones imitate",
    )
    p.add_argument("--queries", type=int, default=1000, help="query frames")
    p.add_argument("--nprobe", default="16,64,128", help="comma-separated IVF lists visited")
    p.add_argument("--pq", default="PQ32np", help="the factory's PQ part (default: the product's)")
    p.add_argument("--max-flat", type=int, default=2_000_000, help="largest exact flat index")
    p.add_argument("--threads", type=int, default=0, help="faiss threads (default: all cores)")
    p.add_argument("--out", type=Path, default=Path(".rci/scale.md"), help="also a .json beside")
    p.add_argument(
        "--milvus", default="", help="also Milvus Lite with these index types (FLAT,IVF_FLAT)"
    )
    p.set_defaults(func=cmd_scale)
    p = sub.add_parser("latency", help="served detect latency against library size")
    p.add_argument("--clip", type=Path, default=Path(".rci/speed/bunny-720p-60s.mp4"))
    p.add_argument("--seconds", type=int, default=60, help="length of the clip to make")
    p.add_argument("--sizes", default="10000,100000,1000000", help="comma-separated fingerprints")
    p.add_argument("--repeats", type=int, default=10, help="timed detects per library and size")
    p.add_argument(
        "--real",
        type=Path,
        default=Path(".rci/bench-full/server-data/bench"),
        help="a library folder whose descriptors the fillers imitate (default: the server's "
        "score-normalization background)",
    )
    p.add_argument("--work", type=Path, default=Path(".rci/latency"), help="libraries, server")
    p.set_defaults(func=cmd_latency)
    p = sub.add_parser("parity", help="the same library in the local store and Milvus Lite")
    p.add_argument("build", type=Path, help="a benchmark build (rci-bench build --out)")
    p.add_argument("--work", type=Path, default=Path(".rci/parity"), help="libraries, server")
    p.set_defaults(func=cmd_parity)
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
