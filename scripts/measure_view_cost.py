"""What the query views cost: seconds of preprocessing and description per minute of video,
the rci package in process (the function rci_preprocess runs), for a few queries of a built
benchmark, each variant interleaved with the others and timed best of --repeats.

    .venv/bin/python scripts/measure_view_cost.py --out .rci/bench-full
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from rci.describe.descriptor import Descriptor
from rci.preprocess.pipeline import embed_video

VARIANTS = {  # name -> embed_video keywords
    "plain, no screen search": {"screen": None},
    "plain (what ingest runs)": {},
    "+ mirrored view": {"mirror": True},
    "+ mirrored and whole views (what detect runs)": {"mirror": True, "whole": True},
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(".rci/bench-full"))
    parser.add_argument("--queries", type=int, default=3, help="partial copies, plus one inside")
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    manifest = json.loads((args.out / "manifest.json").read_text())
    partial = [q for q in manifest["queries"] if q["kind"] == "partial"][: 2 * args.queries : 2]
    inside = [q for q in manifest["queries"] if q["kind"] == "inside"][:1]
    data = {q["query_id"]: (args.out / q["path"]).read_bytes() for q in partial + inside}
    descriptor = Descriptor()
    best: dict[str, dict[str, float]] = {name: {} for name in VARIANTS}
    duration: dict[str, float] = {}
    for _ in range(args.repeats):
        for name, keywords in VARIANTS.items():
            for query_id, raw in data.items():
                start = time.perf_counter()
                video = embed_video(raw, descriptor.embed, **keywords)
                seconds = time.perf_counter() - start
                duration[query_id] = video.duration
                best[name][query_id] = min(best[name].get(query_id, float("inf")), seconds)
    plain = sum(best["plain, no screen search"].values())
    print(f"queries: {', '.join(data)} ({sum(duration.values()):.0f} s of video)\n")
    print("| variant | s per minute of video | x plain |")
    print("| --- | --- | --- |")
    for name in VARIANTS:
        total = sum(best[name].values())
        print(f"| {name} | {60 * total / sum(duration.values()):.2f} | {total / plain:.2f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
