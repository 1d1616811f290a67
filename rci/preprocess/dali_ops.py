"""DALI operator chains shared by the gpu target's pipeline and the parity tests, and a
runner for them.

Each function takes DALI data nodes inside a pipeline definition and returns nodes, so the
same chain runs on "gpu" in the served pipeline and on "cpu" where tests hold it against
the numpy and Pillow code of the cpu target (rci.preprocess.audio, rci.preprocess.frames).
Importing this module needs DALI; nothing in the cpu target imports it.
"""

from __future__ import annotations

import numpy as np
from nvidia.dali import fn, pipeline_def, types

from rci.preprocess.audio import AudioParams, window
from rci.preprocess.frames import MODEL_SIZE


def audio_features(samples, params: AudioParams = AudioParams()):
    """(fbank (F, n_mels), mfcc (F, 3 * n_mfcc)) float32 from (S,) float32 mono samples."""
    emphasized = fn.preemphasis_filter(samples, preemph_coeff=params.preemphasis, border="clamp")
    power = fn.spectrogram(
        emphasized,
        nfft=params.nfft,
        window_length=params.frame_length,
        window_step=params.hop_length,
        window_fn=window(params).tolist(),
        center_windows=False,
        power=2,
    )
    mel = fn.mel_filter_bank(
        power,
        sample_rate=params.sample_rate,
        nfilter=params.n_mels,
        freq_low=params.fmin,
        freq_high=params.fmax,
        mel_formula="slaney",
        normalize=True,
    )
    fbank = fn.to_decibels(mel, multiplier=10.0, reference=1.0, cutoff_db=params.floor_db)
    ceps = fn.mfcc(fbank, n_mfcc=params.n_mfcc, dct_type=2, normalize=True, lifter=0)
    taps = np.arange(-params.delta_width, params.delta_width + 1, dtype=np.float32)
    # Correlation along time (the second axis of DALI's (coefficient, time) layout) with
    # clamped borders: the regression deltas of rci.preprocess.audio.deltas.
    kernel = (taps / (2.0 * np.sum(taps**2)))[None, :].tolist()
    ceps = fn.reshape(ceps, layout="HW")
    first = fn.filter(ceps, np.array(kernel, dtype=np.float32), border="clamp")
    second = fn.filter(first, np.array(kernel, dtype=np.float32), border="clamp")
    stacked = fn.cat(ceps, first, second, axis=0)
    stacked = fn.normalize(stacked, axes=[1], epsilon=params.norm_epsilon)
    return fn.transpose(fbank, perm=[1, 0]), fn.transpose(stacked, perm=[1, 0])


def crop_resize(frames, boxes):
    """Batch of (224, 224, 3) uint8 from a batch of (H, W, 3) uint8 frames and their (4,)
    float32 content boxes [x0, y0, x1, y1] in pixels: the box cut out, resized with
    antialiasing. One frame per sample, because DALI's resize takes its region per sample."""
    return fn.resize(
        frames,
        size=[MODEL_SIZE, MODEL_SIZE],
        roi_start=fn.stack(boxes[1], boxes[0]),
        roi_end=fn.stack(boxes[3], boxes[2]),
        roi_relative=False,
        interp_type=types.INTERP_CUBIC,
        antialias=True,
        dtype=types.UINT8,
    )


def run_once(graph, *batches: list[np.ndarray], device: str = "cpu") -> list[list[np.ndarray]]:
    """Outputs of graph(*inputs) run once, as host arrays; each batch is a list of samples.
    On "gpu" the first input (the data) moves to the GPU; later ones (regions) stay on the
    CPU, where DALI takes argument inputs."""

    @pipeline_def(
        batch_size=len(batches[0]), num_threads=2, device_id=0 if device == "gpu" else None
    )
    def pipeline():
        nodes = [fn.external_source(source=[b], batch=True) for b in batches]
        if device == "gpu":
            nodes = [nodes[0].gpu(), *nodes[1:]]
        return graph(*nodes)

    pipe = pipeline()
    pipe.build()
    outs = pipe.run()
    return [[np.array(s) for s in (o.as_cpu() if device == "gpu" else o)] for o in outs]
