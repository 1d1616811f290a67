"""The `rci` command against a running server, and the demo end to end."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from rci_client import RciClient, RciClientError
from tests.conftest import free_port


def rci(*args, check=True):
    return subprocess.run(
        [sys.executable, "-m", "rci_client.cli", *args], capture_output=True, text=True, check=check
    )


def test_ingest_detect_status(server, media, tmp_path):
    url = ["--url", server.http_url]
    out = rci(
        "ingest", str(media["library"]["bikes"]), "--library", "second", "--id", "cli-bikes", *url
    )
    assert "cli-bikes: added, 10 fingerprints" in out.stdout
    again = ["--library", "second", "--id", "cli-bikes", "--replace", *url]
    out = rci("ingest", str(media["library"]["bikes"]), *again)
    assert "cli-bikes: replaced, 10 fingerprints" in out.stdout
    detected = json.loads(rci("detect", str(media["query"]), "--json", *url).stdout)
    assert detected["matches"][0]["video_id"] == media["truth"].video_id
    assert detected["matches"][0]["reproduced"] is True
    assert 0.0 <= detected["matches"][0]["probability"] <= 1.0
    by_rule = json.loads(
        rci("detect", str(media["query"]), "--json", "--verdict", "heuristic", *url).stdout
    )
    assert all(m["reproduced"] == (m["score"] >= 0.5) for m in by_rule["matches"])
    table = rci(
        "detect", str(media["query"]), "--protocol", "grpc", "--url", server.grpc_url
    ).stdout
    assert media["truth"].video_id in table and "YES" in table
    status = rci("status", *url).stdout
    assert "main" in status and "sscd_resnet50" in status
    libraries = {lib["name"]: lib for lib in json.loads(rci("status", "--json", *url).stdout)}
    assert libraries["second"]["videos"] >= 1 and libraries["second"]["fingerprints"] >= 10
    assert libraries["main"]["descriptor"] == "sscd_resnet50"
    out = rci("delete", "cli-bikes", "--library", "second", *url)
    assert "cli-bikes: deleted from second (10 fingerprints)" in out.stdout
    again = rci("delete", "cli-bikes", "--library", "second", *url, check=False)
    assert again.returncode == 1 and "not in library 'second'" in again.stdout


def test_cli_errors_exit_nonzero(server, tmp_path):
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"not a video")
    result = rci("detect", str(bad), "--url", server.http_url, check=False)
    assert result.returncode == 2 and "not a decodable media container" in result.stdout
    result = rci("ingest", str(bad), "--url", server.http_url, check=False)
    assert result.returncode == 1


def test_detect_takes_a_folder_and_paths_with_jobs_and_exits_by_what_it_found(
    server, media, tmp_path
):
    import shutil

    folder = tmp_path / "uploads"
    folder.mkdir()
    shutil.copy(media["query"], folder / "b-copy.mp4")
    shutil.copy(media["unrelated"], folder / "a-unrelated.mp4")
    (folder / "notes.txt").write_text("not a video: left out")
    url = ["--url", server.http_url]
    out = rci("detect", str(folder), "--jobs", "2", "--json", *url, check=False)
    lines = [json.loads(line) for line in out.stdout.splitlines()]
    assert [Path(x["path"]).name for x in lines] == ["a-unrelated.mp4", "b-copy.mp4"]
    assert not any(m["reproduced"] for m in lines[0]["matches"])
    assert lines[1]["matches"][0]["video_id"] == media["truth"].video_id
    assert out.returncode == 0  # a copy found
    none = rci("detect", str(folder / "a-unrelated.mp4"), *url, check=False)
    assert none.returncode == 1 and "reproduces: nothing" in none.stdout
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"not a video")
    both = rci("detect", str(bad), str(folder / "b-copy.mp4"), "--jobs", "2", *url, check=False)
    assert both.returncode == 2  # an error outweighs the copy found beside it
    assert "not a decodable media container" in both.stdout
    assert f"reproduces: {media['truth'].video_id}" in both.stdout
    empty = tmp_path / "empty"
    empty.mkdir()
    nothing = rci("detect", str(empty), *url, check=False)
    assert nothing.returncode == 2 and "no video files" in nothing.stdout


def test_demo_finds_the_copy_and_leaves_a_server_in_the_same_folder_alone(tmp_path):
    # What `rci serve --work-dir W` keeps in W: its log (and its assembled repository).
    log = tmp_path / "tritonserver.log"
    log.write_text("the running server's log\n")
    result = rci("demo", "--work-dir", str(tmp_path), check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "reproduces: photos-people-food" in result.stdout
    assert "stopping tritonserver" in result.stdout
    assert log.read_text() == "the running server's log\n"
    assert not (tmp_path / "model_repository").exists()
    assert (tmp_path / "demo" / "tritonserver.log").exists()


def _processes_mentioning(text: str) -> list[int]:
    pids = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                if text in (proc / "cmdline").read_bytes().decode(errors="replace"):
                    pids.append(int(proc.name))
            except OSError:
                continue
    return pids


def _start_serve(tmp_path: Path) -> tuple[subprocess.Popen, Path, str]:
    """`rci serve` on free ports; returns the process, its work dir and its HTTP port."""
    work = tmp_path / "work"
    ports = [str(free_port()) for _ in range(3)]
    serve = subprocess.Popen(
        [sys.executable, "-m", "rci_client.cli", "serve", "--work-dir", str(work),
         "--data-dir", str(tmp_path / "data"), "--http-port", ports[0],
         "--grpc-port", ports[1], "--metrics-port", ports[2]],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )  # fmt: skip
    return serve, work, ports[0]


def test_serve_stops_tritonserver_on_sigterm(tmp_path):
    serve, work, http_port = _start_serve(tmp_path)
    try:
        with RciClient(f"127.0.0.1:{http_port}") as client:
            deadline = time.monotonic() + 120
            while not client.ready() and time.monotonic() < deadline:
                time.sleep(0.5)
            assert client.ready()
        assert _processes_mentioning(str(work / "model_repository"))  # tritonserver runs
        serve.send_signal(signal.SIGTERM)
        assert serve.wait(timeout=60) == 0
        assert _processes_mentioning(str(work / "model_repository")) == []
    finally:
        serve.kill()


def test_client_reports_an_unreachable_server():
    port = free_port()  # nothing listens there
    for protocol in ("http", "grpc"):
        with RciClient(f"127.0.0.1:{port}", protocol=protocol) as client:
            assert not client.ready()
            with pytest.raises(RciClientError):
                client.status()
    result = rci("status", "--url", f"127.0.0.1:{port}", check=False)
    assert result.returncode == 1
    assert "Traceback" not in result.stdout + result.stderr


def test_serve_stops_cleanly_when_interrupted_while_starting(tmp_path):
    serve, work, http_port = _start_serve(tmp_path)
    try:
        deadline = time.monotonic() + 30  # wait until tritonserver exists, not until ready
        while not _processes_mentioning(str(work / "model_repository")):
            assert time.monotonic() < deadline
            time.sleep(0.05)
        serve.send_signal(signal.SIGTERM)
        assert serve.wait(timeout=60) == 0
        # Python backend stubs notice their server is gone within seconds.
        deadline = time.monotonic() + 20
        while _processes_mentioning(str(work / "model_repository")):
            assert time.monotonic() < deadline, "processes left behind"
            time.sleep(0.2)
    finally:
        serve.kill()


def test_serve_refuses_an_empty_token_file(tmp_path):
    empty = tmp_path / "token"
    empty.write_text("\n")
    done = subprocess.run(
        [sys.executable, "-m", "rci_client.cli", "serve", "--write-token-file", str(empty),
         "--data-dir", str(tmp_path / "d"), "--work-dir", str(tmp_path / "w")],
        capture_output=True, text=True, timeout=60, env={**os.environ, "COLUMNS": "300"},
    )  # fmt: skip
    assert done.returncode == 2
    assert "is empty; give a secret or leave it unset" in done.stdout
    assert not (tmp_path / "w").exists()  # refused before anything started


def test_the_table_keeps_ids_whole_lists_segments_in_query_order_and_hides_empty_ones():
    from rich.console import Console

    import rci_client.cli as cli
    from rci.match.alignment import Segment
    from rci.match.verdict import Match
    from rci_client.rci_client import DetectResult

    long_id = "channel-upload-" + "0123456789" * 6 + "-final"
    late = Segment(30.0, 40.0, 0.0, 10.0, 0.9, 5)
    early = Segment(2.0, 8.0, 50.0, 56.0, 0.7, 3)
    found = Match(long_id, 0.9, True, [late, early], probability=0.99, copied_fraction=0.4)
    empty = Match("never-copied-one", 0.0, False, [])
    result = DetectResult([found, empty], 60.0, 1.0, np.zeros(0), np.zeros((0, 4)))
    for every in (False, True):
        # A pipe: 80 columns, as `rci detect PATH | tee` has.
        cli.console = Console(width=80, record=True, force_terminal=False)
        cli.print_detections([(Path("query.mp4"), result)], "query", every)
        text = cli.console.export_text()
        assert sum(long_id in line for line in text.splitlines()) == 2  # table and summary
        assert text.index("2.0-8.0 <-> 50.0-56.0") < text.index("30.0-40.0 <-> 0.0-10.0")
        assert ("never-copied-one" in text) == every
        assert (
            "1 more candidates, with nothing found, left out (--all shows them)" in text
        ) != every


def test_several_queries_share_one_table_with_a_query_column():
    from rich.console import Console

    import rci_client.cli as cli
    from rci.match.alignment import Segment
    from rci.match.verdict import Match
    from rci_client.rci_client import DetectResult

    copy = Match("ref-a", 0.9, True, [Segment(0.0, 5.0, 0.0, 5.0, 0.9, 5)], probability=0.95)
    other = Match("ref-b", 0.2, False, [Segment(1.0, 3.0, 9.0, 11.0, 0.4, 2)], probability=0.1)
    results = [
        (Path("up/one.mp4"), DetectResult([copy], 30.0, 1.0, np.zeros(0), np.zeros((0, 4)))),
        (Path("up/two.mp4"), DetectResult([other], 20.0, 1.0, np.zeros(0), np.zeros((0, 4)))),
    ]
    cli.console = Console(width=80, record=True, force_terminal=False)
    cli.print_detections(results, "2 queries", False)
    text = cli.console.export_text()
    header = next(line for line in text.splitlines() if "library video" in line)
    assert header.index("query") < header.index("library video")
    assert "up/one.mp4 reproduces: ref-a" in text and "up/two.mp4 reproduces: nothing" in text
    rows = [line for line in text.splitlines() if "ref-a" in line or "ref-b" in line]
    assert any("up/one.mp4" in r and "ref-a" in r for r in rows)
    assert any("up/two.mp4" in r and "ref-b" in r for r in rows)


def test_serve_on_a_port_in_use_says_so_and_serves_nothing(tmp_path):
    import socket

    with socket.socket() as other:  # another program holding the HTTP port
        other.bind(("127.0.0.1", 0))
        other.listen()
        taken = other.getsockname()[1]
        done = subprocess.run(
            [sys.executable, "-m", "rci_client.cli", "serve", "--work-dir", str(tmp_path / "w"),
             "--data-dir", str(tmp_path / "d"), "--http-port", str(taken),
             "--grpc-port", str(free_port()), "--metrics-port", str(free_port())],
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
    assert done.returncode == 2, done.stdout + done.stderr
    assert f"HTTP port {taken} on 127.0.0.1 already in use" in done.stdout
    assert "RCI serving" not in done.stdout
    assert not (tmp_path / "w" / "tritonserver.log").exists()  # nothing started
