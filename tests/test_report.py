"""The reviewer's page end to end: pictures stored at ingest and served (rci_thumbnails),
detect's pair maps, the page written by the client and the CLI, and loaded in a real
browser (Debian's headless Chromium) with every picture shown and nothing logged."""

from __future__ import annotations

import re
import shutil
import subprocess

import numpy as np
import pytest

from rci_client import RciClient, RciClientError
from rci_client.report import write_report
from tests.test_cli import rci


def load_in_chromium(page) -> tuple[str, list[str]]:
    """The page's DOM after load, and what the browser logged from its console."""
    browser = shutil.which("chromium")
    assert browser, "Debian's chromium is needed (scripts/system_deps.sh --test installs it)"
    done = subprocess.run(
        [browser, "--headless=new", "--no-sandbox", "--disable-gpu", "--enable-logging=stderr",
         "--v=0", "--virtual-time-budget=5000", "--dump-dom", page.resolve().as_uri()],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout, [line for line in done.stderr.splitlines() if ":CONSOLE" in line]


def test_the_library_serves_each_videos_pictures(server, media):
    truth = media["truth"]
    with RciClient(server.http_url) as client:
        pictures = client.thumbnails(truth.video_id, [0.0, 5.2, 1e6])
        assert [t for t, _ in pictures] == [0.0, 5.0, 23.0]  # the nearest stored, 1 fps
        assert all(jpeg[:3] == b"\xff\xd8\xff" and 500 < len(jpeg) < 32_768 for _, jpeg in pictures)
        for times, message in ((["nan"], "finite"), ([0.0] * 65, "1-64")):
            with pytest.raises(RciClientError, match=message):
                client.thumbnails(truth.video_id, np.array(times, np.float32))
        with pytest.raises(RciClientError, match="not in library"):
            client.thumbnails("never-ingested", [0.0])


def test_the_report_shows_the_copy_side_by_side_in_a_browser(server, media, tmp_path):
    truth = media["truth"]
    with RciClient(server.http_url) as client:
        result = client.detect(media["query"], maps=True)
        assert result.pair_maps.shape[:2] == (len(result.matches), 3)
        assert result.pair_mask.shape[:2] == (len(result.matches), 1)
        page = write_report(client, media["query"], result, tmp_path / "review.html", (0.3, 0.85))
    text = page.read_text()
    assert f"main/{truth.video_id}" in text and "REPRODUCED" in text
    # The segment's start, middle and end: three query frames and three stored pictures.
    assert text.count("stored picture at") >= 3
    dom, console = load_in_chromium(page)
    assert console == []
    shown, total = map(int, re.search(r'data-images-shown="(\d+)/(\d+)"', dom).groups())
    assert shown == total >= 7  # 3 query frames, 3 reference pictures, the heatmap


def test_a_reference_gone_since_the_detect_still_gets_a_page(server, media, tmp_path):
    from rci.match.alignment import Segment
    from rci.match.verdict import Match
    from rci_client.rci_client import DetectResult

    gone = Match("deleted-since", 0.9, True, [Segment(6.0, 14.0, 10.0, 18.0, 0.9, 8)],
                 library="main", probability=0.99)  # fmt: skip
    result = DetectResult([gone], 32.0, 1.0, np.zeros(0, np.float32), np.zeros((0, 4)))
    with RciClient(server.http_url) as client:
        page = write_report(client, media["query"], result, tmp_path / "gone.html")
    text = page.read_text()
    assert "main/deleted-since" in text and text.count("no picture") == 3


def test_a_candidate_without_a_segment_shows_its_own_cut(server, media, tmp_path):
    from rci.match.verdict import Match
    from rci_client.rci_client import DetectResult

    unaligned = Match("no-span", 0.2, True, [], library="main", probability=0.7)
    result = DetectResult([unaligned], 32.0, 1.0, np.zeros(0, np.float32), np.zeros((0, 4)))
    with RciClient(server.http_url) as client:
        for cuts, shown in (((0.3, 0.85), "0.850"), ((0.3, float("inf")), "never without")):
            page = write_report(client, media["query"], result, tmp_path / "cut.html", cuts)
            row = re.search(
                r"MatchLite probability</td><td>0.700</td><td>([^<]*)<", page.read_text()
            )
            assert row and row.group(1).startswith(shown)


def test_rci_detect_writes_the_report(server, media, tmp_path):
    page = tmp_path / "one.html"
    done = rci("detect", str(media["query"]), "--report", str(page), "--url", server.http_url,
               check=False)  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert page.exists() and media["truth"].video_id in page.read_text()
    assert f"report: {page}" in done.stdout
