"""perf_analyzer (from the tritonclient wheel) drives rci_detect: a smoke run, not a sweep."""

import csv
import subprocess
import sys

from rci.serving.repository import PROJECT_ROOT


def test_perf_analyzer_loads_rci_detect(server, media, tmp_path):
    table = tmp_path / "perf.csv"
    result = subprocess.run(
        [
            sys.executable,
            str(PROJECT_ROOT / "scripts" / "perf_detect.py"),
            "--video",
            str(media["query"]),
            "--url",
            server.grpc_url,
            "--concurrency",
            "1:1",
            "--work-dir",
            str(tmp_path),
            "--csv",
            str(table),
            "--",
            # A smoke run: three requests a window, any spread counts as stable (perf_analyzer
            # takes the last of a repeated flag).
            "--measurement-mode=count_windows",
            "--measurement-request-count=3",
            "--stability-percentage=1000",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    # The window is sized from a timed request, so a slow machine still completes requests.
    assert "one request took" in result.stdout and "measurement window" in result.stdout
    rows = list(csv.DictReader(table.open()))
    assert rows[0]["Concurrency"] == "1"
    assert float(rows[0]["Inferences/Second"]) > 0
