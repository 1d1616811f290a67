"""The `rci` command against a running server, and the demo end to end."""

import json
import subprocess
import sys


def rci(*args, check=True):
    return subprocess.run(
        [sys.executable, "-m", "client.cli", *args], capture_output=True, text=True, check=check
    )


def test_ingest_detect_status(server, media, tmp_path):
    url = ["--url", server.http_url]
    out = rci(
        "ingest", str(media["library"]["bikes"]), "--library", "second", "--id", "cli-bikes", *url
    )
    assert "cli-bikes: 10 fingerprints" in out.stdout
    detected = json.loads(rci("detect", str(media["query"]), "--json", *url).stdout)
    assert detected["matches"][0]["video_id"] == media["truth"].video_id
    assert detected["matches"][0]["reproduced"] is True
    table = rci(
        "detect", str(media["query"]), "--protocol", "grpc", "--url", server.grpc_url
    ).stdout
    assert media["truth"].video_id in table and "YES" in table
    status = rci("status", *url).stdout
    assert "main" in status and "sscd_resnet50" in status


def test_cli_errors_exit_nonzero(server, tmp_path):
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"not a video")
    result = rci("detect", str(bad), "--url", server.http_url, check=False)
    assert result.returncode == 1 and "not a decodable media container" in result.stdout
    result = rci("ingest", str(bad), "--url", server.http_url, check=False)
    assert result.returncode == 1


def test_demo_finds_the_copy(tmp_path):
    result = rci("demo", "--work-dir", str(tmp_path), check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "reproduces: photos-people-food" in result.stdout
    assert "stopping tritonserver" in result.stdout
