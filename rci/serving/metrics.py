"""RCI's own Prometheus metrics, served on Triton's metrics port beside Triton's counters:
each stage's latency and errors by reason (every Python model, through
rci.serving.backend.respond), detect's decisions and pair scores (rci_matchlite), and each
library's size, index and build age (rci_status, refreshed every REFRESH_SECONDS). pb_utils
is passed in, never imported; a model that has none (tests in process) counts nothing."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from rci.errors import (
    AlreadyExistsError,
    CancelledError,
    DescriptorMismatchError,
    MediaError,
    NotFoundError,
    RciError,
    UnknownLibraryError,
)
from rci.serving.auth import PermissionDeniedError, UnauthenticatedError

# Seconds: a stage takes milliseconds (matching) to a minute (a long upload's decoding).
LATENCY_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0]
SCORE_BUCKETS = [round(0.1 * k, 1) for k in range(1, 11)]  # scores and probabilities, 0-1
REFRESH_SECONDS = 10.0  # how stale a library gauge may be


def error_reason(exc: BaseException) -> str:
    """The `reason` label of a failed request's error."""
    for kind, reason in (
        (CancelledError, "cancelled"),
        (MediaError, "bad_media"),
        (UnknownLibraryError, "unknown_library"),
        (NotFoundError, "unknown_video"),
        (AlreadyExistsError, "duplicate_id"),
        (DescriptorMismatchError, "descriptor_mismatch"),
        (UnauthenticatedError, "unauthenticated"),
        (PermissionDeniedError, "permission_denied"),
    ):
        if isinstance(exc, kind):
            return reason
    return "bad_request" if isinstance(exc, RciError) else "internal"


class StageMetrics:
    """One model's latency histogram and error counter (labels: model, reason)."""

    def __init__(self, pb_utils, model: str) -> None:
        self.pb_utils, self.model = pb_utils, model
        kinds = pb_utils.MetricFamily
        # A family must outlive its metrics (Triton refuses a metric whose family is gone).
        self.latency_family = latency = kinds(
            name="rci_stage_seconds",
            description="Seconds an RCI model took per request, by model (stage)",
            kind=kinds.HISTOGRAM,
        )
        self.latency = latency.Metric(labels={"model": model}, buckets=LATENCY_BUCKETS)
        self.errors = kinds(
            name="rci_errors_total",
            description="Requests an RCI model failed, by model and reason",
            kind=kinds.COUNTER,
        )
        self._by_reason: dict[str, object] = {}

    def observe(self, seconds: float) -> None:
        self.latency.observe(seconds)

    def failed(self, exc: BaseException) -> None:
        reason = error_reason(exc)
        if reason not in self._by_reason:
            self._by_reason[reason] = self.errors.Metric(
                labels={"model": self.model, "reason": reason}
            )
        self._by_reason[reason].increment(1.0)


class DetectMetrics:
    """Detect's decisions per candidate and query, and the pair scores' histograms."""

    def __init__(self, pb_utils) -> None:
        kinds = pb_utils.MetricFamily
        pairs = kinds(
            name="rci_detect_pairs_total",
            description="Candidates detect decided, by decision (reproduced or not) and verdict",
            kind=kinds.COUNTER,
        )
        queries = kinds(
            name="rci_detect_queries_total",
            description="Detect requests, by whether any candidate was reproduced",
            kind=kinds.COUNTER,
        )
        scores = kinds(
            name="rci_pair_score",
            description="Pair scores of detect's candidates: MatchLite's probability "
            "(scorer matchlite) and the alignment's heuristic score (scorer heuristic)",
            kind=kinds.HISTOGRAM,
        )
        self.families = (pairs, queries, scores)  # kept: they must outlive their metrics
        self.pairs = {
            (decided, verdict): pairs.Metric(
                labels={
                    "decision": "reproduced" if decided else "not_reproduced",
                    "verdict": verdict,
                }  # fmt: skip
            )
            for decided in (True, False)
            for verdict in ("matchlite", "heuristic")
        }
        self.queries = {
            found: queries.Metric(labels={"result": "copy" if found else "no_copy"})
            for found in (True, False)
        }
        self.scores = {
            scorer: scores.Metric(labels={"scorer": scorer}, buckets=SCORE_BUCKETS)
            for scorer in ("matchlite", "heuristic")
        }

    def decided(self, reproduced, verdicts, probabilities, heuristic) -> None:
        """One detect request's candidates: (N,) decisions, verdict names, MatchLite
        probabilities (NaN where it did not score) and heuristic scores."""
        for r, v in zip(reproduced, verdicts, strict=True):
            self.pairs[(bool(r), v)].increment(1.0)
        self.queries[bool(len(reproduced) and any(reproduced))].increment(1.0)
        for p in probabilities:
            if p == p:  # not NaN
                self.scores["matchlite"].observe(float(p))
        for s in heuristic:
            self.scores["heuristic"].observe(float(s))


class LibraryMetrics:
    """Per library: videos, fingerprints, the index kind (1 on the kind in use) and the
    seconds since its last index build, set from `status()` (rci.serving.libraries'
    status documents) every REFRESH_SECONDS on a thread of its own."""

    def __init__(self, pb_utils, status: Callable[[], list[dict]]) -> None:
        kinds = pb_utils.MetricFamily
        self.families = {
            name: kinds(name=name, description=text, kind=kinds.GAUGE)
            for name, text in (
                ("rci_library_videos", "Videos a library holds"),
                ("rci_library_fingerprints", "Fingerprints a library holds"),
                ("rci_library_index", "1 on the index kind a library searches with (exact, ivfpq)"),
                (
                    "rci_library_index_age_seconds",
                    "Seconds since a library's index was last built (-1: never built)",
                ),
            )  # fmt: skip
        }
        self.status = status
        self._metrics: dict[tuple, object] = {}
        self._stop = threading.Event()
        self.refresh()
        self._thread = threading.Thread(target=self._loop, name="rci-library-metrics", daemon=True)
        self._thread.start()

    def _gauge(self, family: str, **labels: str):
        key = (family, *sorted(labels.items()))
        if key not in self._metrics:
            self._metrics[key] = self.families[family].Metric(labels=labels)
        return self._metrics[key]

    def refresh(self) -> None:
        now = time.time()
        for lib in self.status():
            if "error" in lib:
                continue
            name = lib["name"]
            self._gauge("rci_library_videos", library=name).set(float(lib["videos"]))
            self._gauge("rci_library_fingerprints", library=name).set(float(lib["fingerprints"]))
            built = lib.get("index_built_at")
            kind = "ivfpq" if built is not None else "exact"
            for k in ("exact", "ivfpq"):
                self._gauge("rci_library_index", library=name, kind=k).set(float(k == kind))
            age = -1.0 if built is None else max(0.0, now - built)
            self._gauge("rci_library_index_age_seconds", library=name).set(age)

    def _loop(self) -> None:
        while not self._stop.wait(REFRESH_SECONDS):
            try:
                self.refresh()
            except Exception:  # a library mid-change: the next round reads it again
                continue

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=REFRESH_SECONDS)
