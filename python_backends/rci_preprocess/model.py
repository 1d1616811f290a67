"""Triton adapter: VIDEO_BYTES -> FRAMES, TIMESTAMPS, DURATION, CONTENT_BOXES, AUDIO_FBANK,
AUDIO_MFCC (cpu target)."""

import numpy as np
import triton_python_backend_utils as pb_utils

from rci.backend import from_parameters, model_parameters, respond
from rci.media import DecodeLimits
from rci.preprocess import preprocess


class TritonPythonModel:
    def initialize(self, args):
        """Read the decode limits from the config's parameters."""
        self.limits = from_parameters(DecodeLimits, model_parameters(args))

    def execute(self, requests):
        """One response per request; undecodable bytes become that request's error."""
        return respond(requests, pb_utils, self._run, pb_utils.Logger)

    def _run(self, inputs):
        video = preprocess(inputs["VIDEO_BYTES"].tobytes(), self.limits)
        return {
            "FRAMES": video.frames,
            "TIMESTAMPS": video.timestamps,
            "DURATION": np.array([video.duration], dtype=np.float32),
            "CONTENT_BOXES": video.content_boxes,
            "AUDIO_FBANK": video.audio_fbank,
            "AUDIO_MFCC": video.audio_mfcc,
        }
