"""Triton adapter: delete a video id from a named library; returns its NUM_FINGERPRINTS."""

import numpy as np
import triton_python_backend_utils as pb_utils

from rci.serving.auth import Access, Tokens
from rci.serving.backend import respond, string_input
from rci.serving.metrics import StageMetrics
from rci.serving.settings import open_libraries


class TritonPythonModel:
    def initialize(self, args):
        """Open the configured libraries under $RCI_DATA_DIR."""
        self.metrics = StageMetrics(pb_utils, args["model_name"])
        self.tokens = Tokens.from_environment()
        self.libraries = open_libraries()

    def execute(self, requests):
        """One response per request; an unknown id or library is that request's error."""
        return respond(
            requests, pb_utils, self._run, pb_utils.Logger, access=Access.WRITE,
            tokens=self.tokens, metrics=self.metrics)  # fmt: skip

    def _run(self, inputs):
        library = string_input(inputs, "LIBRARY")
        count = self.libraries.delete(library, string_input(inputs, "VIDEO_ID"))
        return {"NUM_FINGERPRINTS": np.array([count], dtype=np.int32)}
