"""Triton adapter: MatchLite scores each candidate's pair maps and decides REPRODUCED, or
the hand-set rule does where the candidate's library or the request asks for it."""

import triton_python_backend_utils as pb_utils

from rci.errors import RciError
from rci.match.matchlite import MatchLite, Verdict
from rci.match.pair_input import SIDE_FEATURES
from rci.serving.auth import Access, Tokens
from rci.serving.backend import call_model, model_parameters, optional_string, respond, string_list
from rci.serving.libraries import read_config
from rci.serving.metrics import DetectMetrics, StageMetrics
from rci.serving.settings import descriptor_name, library_config


class TritonPythonModel:
    def initialize(self, args):
        """Load the student (run here by onnxruntime, or by the model `student_model` names);
        read each configured library's verdict."""
        self.metrics = StageMetrics(pb_utils, args["model_name"])
        self.decisions = DetectMetrics(pb_utils)
        self.tokens = Tokens.from_environment()
        parameters = model_parameters(args)
        self.student = parameters.get("student_model", "")  # empty: onnxruntime here
        self.scorer = MatchLite()
        config = library_config()
        settings = read_config(config) if config else {}
        self.verdicts = {name: Verdict.parse(s.verdict) for name, s in settings.items()}

    def execute(self, requests):
        """One response per request."""
        return respond(
            requests, pb_utils, self._run, pb_utils.Logger, access=Access.READ,
            tokens=self.tokens, forwards_token=True, metrics=self.metrics)  # fmt: skip

    def _run(self, inputs, token):
        libraries = string_list(inputs, "VIDEO_LIBRARIES")
        asked = optional_string(inputs, "VERDICT")
        verdicts = [
            Verdict.parse(asked) if asked else self.verdicts.get(lib, Verdict.MATCHLITE)
            for lib in libraries
        ]
        scored = self.scorer.score(
            inputs["PAIR_MAPS"],
            inputs["PAIR_MASK"],
            inputs["PAIR_SIDE"],
            optional_string(inputs, "DESCRIPTOR") or descriptor_name(),
            verdicts,
            inputs["HEURISTIC_REPRODUCED"].reshape(-1),
            runner=self._call_student(token) if self.student else None,
        )
        same_audio = inputs["SAME_AUDIO"].reshape(-1)
        if same_audio.shape != scored.reproduced.shape:
            raise RciError(
                f"SAME_AUDIO must be ({len(scored.reproduced)},), got {same_audio.shape}"
            )
        self.decisions.decided(
            scored.reproduced,
            [v.value for v in verdicts],
            scored.probability,
            inputs["PAIR_SIDE"][:, SIDE_FEATURES.index("score")],
        )
        return {
            "PROBABILITIES": scored.probability,
            "COPIED_FRACTIONS": scored.fraction,
            "REPRODUCED": scored.reproduced,
            "AUDIO_REUSE": same_audio & ~scored.reproduced,
        }

    def _call_student(self, token):
        """The student's model, called (BLS) with the caller's token."""
        outputs = ["PROBABILITY", "FRACTION"]
        return lambda feed: call_model(pb_utils, self.student, feed, outputs, token)
