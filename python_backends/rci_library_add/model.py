"""Triton adapter: store a video's fingerprints, and its audio fingerprints when given, in a
named library (or replace the video of that id when REPLACE is true); returns
NUM_FINGERPRINTS, the fingerprints kept, and REPLACED, whether a video of that id was
swapped out. THUMBNAILS, when given, are the frames' pictures for reviewers."""

import numpy as np
import triton_python_backend_utils as pb_utils

from rci.errors import RciError
from rci.library.store import VideoFingerprints
from rci.preprocess.audio_prints import AUDIO_PRINT, AudioPrints
from rci.serving.auth import Access, Tokens
from rci.serving.backend import respond, string_input
from rci.serving.metrics import StageMetrics
from rci.serving.settings import open_libraries


class TritonPythonModel:
    def initialize(self, args):
        """Open the configured libraries under $RCI_DATA_DIR, with their parameters."""
        self.metrics = StageMetrics(pb_utils, args["model_name"])
        self.tokens = Tokens.from_environment()
        self.libraries = open_libraries()

    def execute(self, requests):
        """One response per request; a repeated id or unknown library is that request's error."""
        return respond(
            requests, pb_utils, self._run, pb_utils.Logger, access=Access.WRITE,
            tokens=self.tokens, metrics=self.metrics)  # fmt: skip

    def _run(self, inputs):
        audio = None
        if "AUDIO_PRINTS" in inputs or "AUDIO_TIMES" in inputs:
            if "AUDIO_PRINTS" not in inputs or "AUDIO_TIMES" not in inputs:
                raise RciError("AUDIO_PRINTS and AUDIO_TIMES come together")
            audio = AudioPrints(AUDIO_PRINT, inputs["AUDIO_TIMES"], inputs["AUDIO_PRINTS"])
        pictures = None
        if "THUMBNAILS" in inputs and inputs["THUMBNAILS"].size:  # empty: none were made
            pictures = [p if isinstance(p, bytes) else bytes(p)
                        for p in inputs["THUMBNAILS"].reshape(-1)]  # fmt: skip
        video = VideoFingerprints(
            video_id=string_input(inputs, "VIDEO_ID"),
            embeddings=inputs["EMBEDDINGS"],
            timestamps=inputs["TIMESTAMPS"],
            duration=float(inputs["DURATION"][0]),
            audio=audio,
            thumbnails=pictures,
        )
        replace = "REPLACE" in inputs and bool(inputs["REPLACE"].reshape(-1).any())
        stored = self.libraries.add(string_input(inputs, "LIBRARY"), video, replace=replace)
        return {
            "NUM_FINGERPRINTS": np.array([stored.fingerprints], dtype=np.int32),
            "REPLACED": np.array([stored.replaced], dtype=bool),
        }
