"""Run the gpu target's DALI preprocessing on an NVIDIA GPU and compare it with the cpu path.

    python scripts/check_gpu_preprocess.py VIDEO... [--json OUT]

Builds model_repository/gpu/rci_preprocess/1/dali.py as the DALI backend would (NVDEC
decoding from the video's bytes), runs it on each video, runs rci.preprocess on the same
bytes, and prints a table: frames, timestamps, pixel differences and time per video.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import time
from pathlib import Path

import numpy as np

from rci.preprocess import preprocess

PROJECT_ROOT = Path(__file__).resolve().parent.parent  # no tritonclient needed on the GPU box

DALI_FILE = PROJECT_ROOT / "model_repository" / "gpu" / "rci_preprocess" / "1" / "dali.py"


def load_pipeline_function():
    """The @pipeline_def function defined in the gpu target's dali.py."""
    spec = importlib.util.spec_from_file_location("rci_gpu_dali", DALI_FILE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.rci_preprocess


def run_gpu(pipe, data: bytes) -> tuple[list[np.ndarray], float]:
    """Outputs of one pipeline run on one video, as numpy, and its wall time in seconds."""
    start = time.perf_counter()
    pipe.feed_input("VIDEO_BYTES", [np.frombuffer(data, dtype=np.uint8)])
    outputs = pipe.run()
    arrays = [np.array(o.as_cpu()[0]) for o in outputs]
    return arrays, time.perf_counter() - start


def compare(path: Path, pipe) -> dict:
    data = path.read_bytes()
    run_gpu(pipe, data)  # warm-up: decoder creation, allocations
    (frames, timestamps, duration, boxes), gpu_seconds = run_gpu(pipe, data)
    start = time.perf_counter()
    cpu = preprocess(data)
    cpu_seconds = time.perf_counter() - start
    n = min(len(frames), len(cpu.frames))
    diff = np.abs(frames[:n].astype(np.int16) - cpu.frames[:n].astype(np.int16))
    return {
        "video": path.name,
        "gpu_frames": list(frames.shape),
        "cpu_frames": list(cpu.frames.shape),
        "gpu_timestamps": timestamps.tolist()[:8],
        "cpu_timestamps": cpu.timestamps.tolist()[:8],
        "gpu_duration": float(duration.reshape(-1)[0]),
        "cpu_duration": cpu.duration,
        "gpu_boxes_shape": list(boxes.shape),
        "mean_abs_diff": float(diff.mean()) if n else None,
        "p99_abs_diff": float(np.percentile(diff, 99)) if n else None,
        "gpu_ms": round(gpu_seconds * 1000, 1),
        "cpu_ms": round(cpu_seconds * 1000, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("videos", nargs="+", type=Path)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    # One request at a time, as the unbatched backend model runs it: no prefetching.
    pipe = load_pipeline_function()(batch_size=1, device_id=0, prefetch_queue_depth=1)
    pipe.build()
    serialized = pipe.serialize()  # what the DALI backend does at load time
    rows = [compare(path, pipe) for path in args.videos]
    result = {"serialized_bytes": len(serialized), "videos": rows}
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))
    print(f"pipeline serialized: {len(serialized)} bytes")
    print("| video | gpu frames | cpu frames | mean abs diff | p99 abs diff | gpu ms | cpu ms |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for r in rows:
        print(
            f"| {r['video']} | {r['gpu_frames'][0]} | {r['cpu_frames'][0]} | "
            f"{r['mean_abs_diff']:.2f} | {r['p99_abs_diff']:.0f} | {r['gpu_ms']} | {r['cpu_ms']} |"
        )


if __name__ == "__main__":
    main()
