"""Triton adapter: store a video's fingerprints in a named library; returns NUM_FINGERPRINTS."""

import numpy as np
import triton_python_backend_utils as pb_utils

from rci.backend import respond, string_input
from rci.library import VideoFingerprints
from rci.settings import open_libraries


class TritonPythonModel:
    def initialize(self, args):
        """Open the configured libraries under $RCI_DATA_DIR."""
        self.libraries = open_libraries()

    def execute(self, requests):
        """One response per request; a repeated id or unknown library is that request's error."""
        return respond(requests, pb_utils, self._run, pb_utils.Logger)

    def _run(self, inputs):
        video = VideoFingerprints(
            video_id=string_input(inputs, "VIDEO_ID"),
            embeddings=inputs["EMBEDDINGS"],
            timestamps=inputs["TIMESTAMPS"],
            duration=float(inputs["DURATION"][0]),
        )
        count = self.libraries.writer(string_input(inputs, "LIBRARY")).add(video)
        return {"NUM_FINGERPRINTS": np.array([count], dtype=np.int32)}
