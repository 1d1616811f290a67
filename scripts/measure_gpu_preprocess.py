"""On a machine with an NVIDIA GPU and DALI: the gpu target's preprocessing against the cpu
target's on the same videos, DALI's GPU chains against its CPU ones, and speed by stage.

    python scripts/measure_gpu_preprocess.py MEDIA_DIR SPEED_CLIP OUT_DIR

Prints markdown tables (recorded in docs/gpu.md) and writes them with the raw figures to
OUT_DIR.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

from rci.bench.metrics import box_iou
from rci.bench.speed import cpu_stages, gpu_stages, table
from rci.preprocess import dali_ops
from rci.preprocess.audio import audio_features, decode_audio
from rci.preprocess.dali import DaliPreprocessor
from rci.preprocess.media import sample_video
from rci.preprocess.pipeline import preprocess


def targets_agree(media: Path) -> tuple[list[dict], str]:
    """Per video: the gpu target's outputs against the cpu target's."""
    gpu = DaliPreprocessor()
    rows = []
    for path in sorted(media.glob("*.mp4")):
        data = path.read_bytes()
        cpu_out, gpu_out = preprocess(data), gpu(data)
        same_times = np.array_equal(cpu_out.timestamps, gpu_out.timestamps)
        row = {"video": path.stem, "frames": len(cpu_out.frames), "same timestamps": same_times}
        if same_times:
            diff = np.abs(cpu_out.frames.astype(np.int16) - gpu_out.frames.astype(np.int16))
            row["frame mean |diff|"] = float(diff.mean())
            ious = [
                box_iou(tuple(a), tuple(b))
                for a, b in zip(cpu_out.content_boxes, gpu_out.content_boxes, strict=True)
            ]
            row["box IoU mean"], row["box IoU min"] = float(np.mean(ious)), float(np.min(ious))
        row["fbank max |diff| dB"] = (
            float(np.abs(cpu_out.audio_fbank - gpu_out.audio_fbank).max())
            if len(cpu_out.audio_fbank)
            else 0.0
        )
        row["mfcc max |diff|"] = (
            float(np.abs(cpu_out.audio_mfcc - gpu_out.audio_mfcc).max())
            if len(cpu_out.audio_mfcc)
            else 0.0
        )
        rows.append(row)
    keys = list(rows[0])
    lines = ["| " + " | ".join(keys) + " |", "|" + " --- |" * len(keys)]
    for row in rows:
        cells = [
            f"{row.get(k):.3f}" if isinstance(row.get(k), float) else str(row.get(k, ""))
            for k in keys
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return rows, "\n".join(lines)


def chains_agree(media: Path) -> dict:
    """DALI's GPU operators against its CPU operators on the same inputs."""
    data = sorted(media.glob("*.mp4"))[0].read_bytes()
    frames = sample_video(data).frames[:16]
    _, h, w, _ = frames.shape
    boxes = [np.array([i, 2 * i, w - 3 * i, h - i], np.float32) for i in range(len(frames))]
    cpu = dali_ops.run_once(dali_ops.crop_resize, list(frames), boxes)[0]
    gpu = dali_ops.run_once(dali_ops.crop_resize, list(frames), boxes, device="gpu")[0]
    pixel = np.abs(np.stack(cpu).astype(np.int16) - np.stack(gpu).astype(np.int16))
    samples = decode_audio(data)
    fb_c, mf_c = dali_ops.run_once(dali_ops.audio_features, [samples])
    fb_g, mf_g = dali_ops.run_once(dali_ops.audio_features, [samples], device="gpu")
    numpy = audio_features(samples)
    return {
        "crop_resize gpu vs cpu: mean |diff|": float(pixel.mean()),
        "crop_resize gpu vs cpu: max |diff|": int(pixel.max()),
        "fbank gpu vs cpu: max |diff| dB": float(np.abs(fb_c[0] - fb_g[0]).max()),
        "mfcc gpu vs cpu: max |diff|": float(np.abs(mf_c[0] - mf_g[0]).max()),
        "fbank gpu vs numpy: max |diff| dB": float(np.abs(numpy.fbank - fb_g[0]).max()),
        "mfcc gpu vs numpy: max |diff|": float(np.abs(numpy.mfcc - mf_g[0]).max()),
    }


def main() -> int:
    media, clip, out = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3])
    out.mkdir(parents=True, exist_ok=True)
    report = {}
    rows, agreement = targets_agree(media)
    report["targets"] = rows
    report["chains"] = chains_agree(media)
    data = clip.read_bytes()
    video = sample_video(data)
    speeds = {"cpu": cpu_stages(data, 3), "gpu": gpu_stages(data, 5)}
    report["speed"] = speeds
    text = "\n\n".join(
        [
            "## gpu target against cpu target, same videos\n\n" + agreement,
            "## DALI chains, GPU against CPU\n\n"
            + "\n".join(f"- {k}: {v:.4g}" for k, v in report["chains"].items()),
            table(speeds["cpu"], len(video.frames), video.duration, "cpu target, this machine"),
            table(speeds["gpu"], len(video.frames), video.duration, "gpu target"),
        ]
    )
    (out / "gpu_preprocess.md").write_text(text + "\n")
    (out / "gpu_preprocess.json").write_text(json.dumps(report, indent=1))
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
