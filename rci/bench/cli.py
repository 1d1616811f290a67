"""`rci-bench build` makes the benchmark; `rci-bench run` scores the served system on it;
`rci-bench scale` measures the fingerprint index at millions of fingerprints."""

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
from rci.bench.peers import PeerKind
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
    from client import RciClient

    peers = tuple(PeerKind(p) for p in args.peers.split(",") if p)
    if args.url:
        with RciClient(args.url, protocol=args.protocol) as client:
            report = run(args.out, client, args.library, peers, reuse_peers=args.reuse_peers)
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
                args.out, client, args.library, peers, server.peak_memory_mb, args.reuse_peers
            )
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
    from rci.bench.speed import cpu_stages, gpu_stages, make_clip, table
    from rci.preprocess.media import sample_video

    data = make_clip(args.clip, args.seconds).read_bytes()
    video = sample_video(data)
    frames, seconds = len(video.frames), video.duration
    print(f"{args.clip}: {seconds:.1f} s, {video.frames.shape[2]}x{video.frames.shape[1]}, "
          f"{frames} sampled frames; medians of {args.repeats} runs\n")  # fmt: skip
    print(table(cpu_stages(data, args.repeats), frames, seconds, "cpu target (PyAV, numpy)"))
    if args.gpu:
        print()
        print(table(gpu_stages(data, args.repeats), frames, seconds, "gpu target (NVDEC, DALI)"))
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
    command = shlex.join(["rci-bench", *sys.argv[1:]])
    header = f"Machine: {machine(threads)}. Command: `{command}`"
    text = markdown(rows, header)
    print(text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    report = {"machine": machine(threads), "command": command, "rows": rows}
    args.out.with_suffix(".json").write_text(json.dumps(report, indent=1))
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
    p = sub.add_parser("speed", help="preprocessing speed by stage on a 720p H.264 clip")
    p.add_argument("--clip", type=Path, default=Path(".rci/speed/bunny-720p-60s.mp4"))
    p.add_argument("--seconds", type=int, default=60, help="length of the clip to make")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--gpu", action="store_true", help="also the gpu target (DALI and a GPU)")
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
    p.set_defaults(func=cmd_scale)
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
