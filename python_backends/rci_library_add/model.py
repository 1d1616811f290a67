"""Triton adapter: store a video's fingerprints in a named library; returns NUM_FINGERPRINTS."""

import numpy as np
import triton_python_backend_utils as pb_utils

from rci.backend import respond, string_input
from rci.descriptor import EMBEDDING_DIM
from rci.library import Libraries, VideoFingerprints
from rci.settings import data_dir, descriptor_name, library_names


class TritonPythonModel:
    def initialize(self, args):
        """Open the configured libraries under $RCI_DATA_DIR."""
        self.libraries = Libraries(
            data_dir(), library_names(), descriptor=descriptor_name(), dim=EMBEDDING_DIM
        )

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
