"""Triton adapter: MatchLite's student over a request's pairs, in onnxruntime (cpu target)."""

import triton_python_backend_utils as pb_utils

from rci.match.matchlite import MatchLite
from rci.serving.auth import Access, Tokens
from rci.serving.backend import model_parameters, respond
from rci.serving.metrics import StageMetrics


class TritonPythonModel:
    def initialize(self, args):
        """Load the shipped student with the configured onnxruntime threads."""
        self.metrics = StageMetrics(pb_utils, args["model_name"])
        self.tokens = Tokens.from_environment()
        self.scorer = MatchLite(threads=int(model_parameters(args).get("threads", "1")))

    def execute(self, requests):
        """One response per request."""
        return respond(
            requests, pb_utils, self._run, pb_utils.Logger, access=Access.READ,
            tokens=self.tokens, metrics=self.metrics)  # fmt: skip

    def _run(self, inputs):
        return self.scorer.run_student(inputs["MAPS"], inputs["MASK"], inputs["SIDE"])
