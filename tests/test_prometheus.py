"""RCI's own Prometheus metrics on the served ensemble's metrics port: stage latency, errors
by reason, detect's decisions and scores, and each library's gauges."""

import re
import time
import urllib.request

import pytest

from rci.serving.metrics import REFRESH_SECONDS, error_reason
from rci_client import RciClient, RciClientError

SAMPLE = re.compile(r"^(\w+)(?:\{(.*)\})? (\S+)$")


def scrape(server) -> dict[tuple, float]:
    """{(name, ((label, value), ...)): value} of every rci_ sample."""
    url = f"http://127.0.0.1:{server.options.metrics_port}/metrics"
    with urllib.request.urlopen(url) as response:
        text = response.read().decode()
    out = {}
    for line in text.splitlines():
        m = SAMPLE.match(line)
        if m and m.group(1).startswith("rci_"):
            labels = tuple(sorted(re.findall(r'(\w+)="([^"]*)"', m.group(2) or "")))
            out[(m.group(1), labels)] = float(m.group(3))
    return out


def value(samples: dict, name: str, **labels) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def grew(before: dict, after: dict, name: str, **labels) -> float:
    return value(after, name, **labels) - value(before, name, **labels)


def test_detect_counts_its_decisions_scores_and_stage_latency(server, media):
    before = scrape(server)
    with RciClient(server.http_url) as client:
        result = client.detect(media["query"])
    after = scrape(server)
    assert result.reproduced
    assert grew(before, after, "rci_detect_queries_total", result="copy") == 1
    verdict = {"decision": "reproduced", "verdict": "matchlite"}
    assert grew(before, after, "rci_detect_pairs_total", **verdict) == len(result.reproduced)
    candidates = len(result.matches)
    assert grew(before, after, "rci_pair_score_count", scorer="matchlite") == candidates
    assert grew(before, after, "rci_pair_score_count", scorer="heuristic") == candidates
    top = max(m.probability for m in result.matches)
    # The histogram's buckets hold what the response said: the top probability's bucket grew.
    bucket = next(b for b in ("0.1", "0.2", "0.3", "0.4", "0.5", "0.6", "0.7", "0.8", "0.9", "1")
                  if top <= float(b))  # fmt: skip
    assert grew(before, after, "rci_pair_score_bucket", scorer="matchlite", le=bucket) >= 1
    for model in ("rci_preprocess", "rci_recall", "rci_match", "rci_matchlite"):
        assert grew(before, after, "rci_stage_seconds_count", model=model) == 1
        assert grew(before, after, "rci_stage_seconds_sum", model=model) > 0


def test_errors_are_counted_once_by_reason_where_they_happen(server, media, tmp_path):
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"not a video")
    before = scrape(server)
    with RciClient(server.http_url) as client:
        for call in (
            lambda: client.detect(bad),
            lambda: client.detect(media["query"], library="no-such-library"),
            lambda: client.ingest(media["library"]["bikes"], "bikes"),  # held already
            lambda: client.delete("never-ingested", "main"),
        ):
            with pytest.raises(RciClientError):
                call()
    after = scrape(server)
    assert grew(before, after, "rci_errors_total", model="rci_preprocess", reason="bad_media") == 1
    assert grew(before, after, "rci_errors_total", model="rci_recall",
                reason="unknown_library") == 1  # fmt: skip
    assert grew(before, after, "rci_errors_total", model="rci_library_add",
                reason="duplicate_id") == 1  # fmt: skip
    assert grew(before, after, "rci_errors_total", model="rci_library_delete",
                reason="unknown_video") == 1  # fmt: skip
    # Nothing counted twice: only the model where each error happened counts it.
    errors = sum(v for (name, _), v in after.items() if name == "rci_errors_total")
    assert errors - sum(v for (name, _), v in before.items() if name == "rci_errors_total") == 4


def test_library_gauges_follow_the_library(server):
    with RciClient(server.http_url) as client:
        status = {lib["name"]: lib for lib in client.status()}
    deadline = time.monotonic() + 3 * REFRESH_SECONDS
    while True:
        samples = scrape(server)
        shown = value(samples, "rci_library_videos", library="main")
        if shown == status["main"]["videos"] or time.monotonic() > deadline:
            break
        time.sleep(1.0)
    assert shown == status["main"]["videos"] > 0
    fingerprints = value(samples, "rci_library_fingerprints", library="main")
    assert fingerprints == status["main"]["fingerprints"] > 0
    assert value(samples, "rci_library_index", library="main", kind="exact") == 1
    assert value(samples, "rci_library_index", library="main", kind="ivfpq") == 0
    assert value(samples, "rci_library_index_age_seconds", library="main") == -1  # never built
    assert ("rci_library_videos", (("library", "empty"),)) in samples


def test_every_error_kind_has_its_reason():
    from rci.errors import AlreadyExistsError, MediaError, NotFoundError, UnknownLibraryError
    from rci.serving.auth import UnauthenticatedError

    assert error_reason(MediaError("x")) == "bad_media"
    assert error_reason(UnknownLibraryError("x")) == "unknown_library"
    assert error_reason(NotFoundError("x")) == "unknown_video"
    assert error_reason(AlreadyExistsError("x")) == "duplicate_id"
    assert error_reason(UnauthenticatedError("x")) == "unauthenticated"
    assert error_reason(KeyError("x")) == "internal"
