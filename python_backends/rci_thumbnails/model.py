"""Triton adapter: LIBRARY, VIDEO_ID, TIMES (N,) seconds -> THUMBNAIL_TIMES (N,) and
THUMBNAILS (N,) JPEG, the video's stored pictures nearest those times."""

import numpy as np
import triton_python_backend_utils as pb_utils

from rci.errors import RciError
from rci.serving.auth import Access, Tokens
from rci.serving.backend import respond, string_input
from rci.serving.metrics import StageMetrics
from rci.serving.settings import open_libraries

MAX_TIMES = 64  # pictures per request: a report asks for a few per segment


class TritonPythonModel:
    def initialize(self, args):
        """Open the configured libraries under $RCI_DATA_DIR."""
        self.metrics = StageMetrics(pb_utils, args["model_name"])
        self.tokens = Tokens.from_environment()
        self.libraries = open_libraries()

    def execute(self, requests):
        """One response per request; an unknown library or id is that request's error."""
        return respond(
            requests, pb_utils, self._run, pb_utils.Logger, access=Access.READ,
            tokens=self.tokens, metrics=self.metrics)  # fmt: skip

    def _run(self, inputs):
        times = inputs["TIMES"].reshape(-1)
        if times.dtype != np.float32 or not 0 < len(times) <= MAX_TIMES:
            raise RciError(f"TIMES must be 1-{MAX_TIMES} float32 seconds, got {len(times)}")
        if not np.isfinite(times).all():
            raise RciError("TIMES must be finite")
        shown, pictures = self.libraries.thumbnails(
            string_input(inputs, "LIBRARY"), string_input(inputs, "VIDEO_ID"), times
        )
        return {
            "THUMBNAIL_TIMES": shown.astype(np.float32),
            "THUMBNAILS": np.array(pictures, dtype=object),
        }
