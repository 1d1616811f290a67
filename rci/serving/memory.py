"""Memory of a running server's process group (tritonserver and its backend stubs), as the
proportional set size (PSS): the shared-memory regions that tritonserver and a stub both
map count once, where summing resident sizes would count them twice."""

from __future__ import annotations

import threading
from pathlib import Path


def pss_by_process(pgid: int) -> dict[str, float]:
    """Pss in MiB of each process of group `pgid`, by label: tritonserver, or the model a
    Python backend stub serves (its instances summed)."""
    found: dict[str, float] = {}
    for rollup in Path("/proc").glob("[0-9]*/smaps_rollup"):
        try:
            if int((rollup.parent / "stat").read_text().rsplit(")", 1)[1].split()[2]) != pgid:
                continue
            words = (rollup.parent / "cmdline").read_bytes().split(b"\0")
            label = "tritonserver"
            for word in words:
                if word.endswith(b"/model.py"):
                    label = Path(word.decode()).parent.parent.name
            for line in rollup.read_text().splitlines():
                if line.startswith("Pss:"):
                    found[label] = found.get(label, 0.0) + int(line.split()[1]) / 1024
        except (OSError, IndexError, ValueError):
            continue  # the process ended while being read
    return found


def group_pss_mib(pgid: int) -> float:
    """Sum of Pss over the processes of group `pgid`, MiB."""
    return sum(pss_by_process(pgid).values())


class PeakSampler:
    """Samples group_pss_mib(pgid) every `period` seconds on a thread; `peak` is the max."""

    def __init__(self, pgid: int, period: float = 0.2) -> None:
        self.pgid, self.period, self.peak = pgid, period, 0.0
        self.by_process: dict[str, float] = {}  # each label's own peak
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            now = pss_by_process(self.pgid)
            self.peak = max(self.peak, sum(now.values()))
            for label, mib in now.items():
                self.by_process[label] = max(self.by_process.get(label, 0.0), mib)
            self._stop.wait(self.period)

    def __enter__(self) -> PeakSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
