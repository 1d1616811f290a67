"""GPU preprocessing for the DALI backend: NVDEC decode, 1 frame per second, 224x224 resize.

Serialized by the backend at load time (@autoserialize), so building the repository needs
no GPU. Known gap, tracked in the preprocessing issue: frames are picked by a fixed stride
of SOURCE_FPS rather than by timestamp, and the content box is the whole frame.
"""

import numpy as np
from nvidia.dali import fn, pipeline_def, types
from nvidia.dali.plugin.triton import autoserialize

SOURCE_FPS = 25  # frames per second assumed for the stride; 1 sampled frame per second
MAX_SECONDS = 1800  # matches the cpu target's max_duration
MODEL_SIZE = 224


@autoserialize
@pipeline_def(batch_size=1, num_threads=4, device_id=0, exec_dynamic=True)  # GPU->CPU shape
def rci_preprocess():
    encoded = fn.external_source(device="cpu", name="VIDEO_BYTES", dtype=types.UINT8)
    frames = fn.decoders.video(encoded, device="mixed", stride=SOURCE_FPS)
    frames = fn.resize(frames, size=[MODEL_SIZE, MODEL_SIZE], antialias=True, dtype=types.UINT8)
    count = frames.shape(dtype=types.INT32, device="cpu")[0:1]  # argument inputs live on the CPU
    seconds = fn.constant(fdata=np.arange(MAX_SECONDS, dtype=np.float32).tolist())
    timestamps = fn.slice(seconds, start=[0], shape=count, axes=[0])
    boxes = fn.constant(
        fdata=np.tile([0.0, 0.0, 1.0, 1.0], MAX_SECONDS).tolist(), shape=[MAX_SECONDS, 4]
    )
    boxes = fn.slice(boxes, start=[0], shape=count, axes=[0])
    duration = fn.cast(count, dtype=types.FLOAT)
    return frames, timestamps, duration, boxes
