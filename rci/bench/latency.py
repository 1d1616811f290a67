"""Detect latency against library size, through the served cpu ensemble: one upload
detected against libraries of growing size that hold it among synthetic fingerprints, with
exact search and with an IVF-PQ snapshot. What recall's search adds to a whole detect
(decode, boxes, descriptor, recall, alignment, MatchLite), where rci-bench scale measures
the index alone.

The fillers are videos of FILLER_FRAMES fingerprints drawn as rci-bench scale draws its
database (rci.bench.scale.Gaussian: the mean and covariance of real SSCD descriptors, unit
length), written straight into the libraries' folders (rci.library.store), so a million
fingerprints cost minutes, not days of ingest. The upload itself is ingested through the
server first, so every detect finds a full copy: the most alignment work.
"""

from __future__ import annotations

import shutil
import statistics
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rci.bench.scale import CHUNK, Gaussian, open_folder, real_videos
from rci.describe.descriptor import DEFAULT_MODEL
from rci.library.background import ensure_background
from rci.library.build import build_snapshot
from rci.library.store import LibraryFolder, LibraryWriter, VideoFingerprints

FILLER_FRAMES = 250  # fingerprints per filler video: 250 s at one per second
LIBRARIES = {"flat": "exact search", "ivfpq": "IVF-PQ snapshot"}
LIBRARIES_TOML = """
[libraries.flat]
[libraries.ivfpq]
index = "ivfpq"
auto_build = false
"""


@dataclass
class Row:
    """One library at one size: fingerprints held, how its recall searched, detect seconds
    over the timed requests, and whether every detect reported the upload reproduced."""

    fingerprints: int
    library: str
    index: str
    median: float
    p95: float
    found: bool


def filler_model(real: Path | None, data_dir: Path) -> Gaussian:
    """The fillers' distribution: fitted to every live video of the library folder `real`,
    or, without one, to the score-normalization background the server keeps in `data_dir`
    (rci.library.background: real descriptors of pictures no library copies)."""
    if real is not None:
        return Gaussian.fit(np.concatenate(real_videos(real)))
    return Gaussian.fit(ensure_background(data_dir, DEFAULT_MODEL))


def fill(folder: LibraryFolder, target: int, gauss: Gaussian, seed: int = 0) -> int:
    """Add filler videos to `folder` until it holds at least `target` fingerprints; returns
    how many it holds. Filler n is rows n x FILLER_FRAMES onward of rci-bench scale's
    database for `seed`, so a smaller library's fillers are a larger one's first."""
    held = folder.live_records.catch_up().fingerprints
    fillers = sum(1 for video_id in folder.current()[0] if video_id.startswith("filler-"))
    writer, per_chunk = LibraryWriter(folder), CHUNK // FILLER_FRAMES
    while held < target:
        number, first = divmod(fillers, per_chunk)
        rows = gauss.chunk(number, seed)
        for n in range(first, per_chunk):
            if held >= target:
                break
            x = np.ascontiguousarray(rows[n * FILLER_FRAMES : (n + 1) * FILLER_FRAMES])
            t = np.arange(FILLER_FRAMES, dtype=np.float32)
            writer.add(VideoFingerprints(f"filler-{fillers:07d}", x, t, float(FILLER_FRAMES)))
            held, fillers = held + FILLER_FRAMES, fillers + 1
    return held


def measure(
    clip: Path,
    sizes: list[int],
    work: Path,
    repeats: int,
    real: Path | None = None,
    log=print,
) -> list[Row]:
    """Rows for each size in `sizes` (fingerprints, ascending) and each library of
    LIBRARIES: `repeats` detects of `clip` after one warm-up, through one started server."""
    from rci.serving.server import ServerOptions, TritonServer
    from rci_client import RciClient

    data = clip.read_bytes()
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    gauss = filler_model(real, work / "data")
    (work / "libraries.toml").write_text(LIBRARIES_TOML)
    options = ServerOptions(
        data_dir=work / "data", work_dir=work / "server", libraries_config=work / "libraries.toml"
    )
    rows = []
    with TritonServer(options) as server, RciClient(server.http_url, timeout=600) as client:
        for name in LIBRARIES:
            client.ingest(data, clip.stem, name)
        folders = {name: open_folder(work / "data" / name) for name in LIBRARIES}
        for size in sorted(sizes):
            start = time.perf_counter()
            held = {name: fill(folder, size, gauss) for name, folder in folders.items()}
            log(f"{size:,}: filled in {time.perf_counter() - start:.0f} s")
            build_snapshot(folders["ivfpq"], log=lambda _: None)
            for name in LIBRARIES:
                client.detect(data, name)  # warm-up: the server reads the new videos
                times, found = [], True
                for _ in range(repeats):
                    result = client.detect(data, name)
                    times.append(result.seconds)
                    found &= any(m.video_id == clip.stem for m in result.reproduced)
                (status,) = client.status([name])
                p95 = float(np.percentile(times, 95))  # linearly interpolated
                rows.append(Row(held[name], name, str(status.get("index", "?")),
                                statistics.median(times), p95, found))  # fmt: skip
                log(f"{size:,} {name}: median {rows[-1].median:.2f} s")
    return rows


def markdown(rows: list[Row], repeats: int) -> str:
    """Markdown: per size and library, detect's median and p95 seconds over `repeats`
    requests, how recall searched, and whether the copy was reported every time."""
    lines = [
        f"| fingerprints | library | recall's index | median s | p95 s ({repeats} requests) "
        "| copy reported |",
        "| ---: | --- | --- | ---: | ---: | --- |",
    ]
    for r in rows:
        lines.append(
            f"| {r.fingerprints:,} | {r.library} | {r.index} | {r.median:.2f} | {r.p95:.2f} "
            f"| {'yes' if r.found else 'NO'} |"
        )
    return "\n".join(lines)
