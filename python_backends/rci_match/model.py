"""Triton adapter: align the query (its mirrored and whole views, penalties and recurrence,
when given) with each candidate, and the query's audio with the candidates' when given;
returns scores of each modality, the hand-set rule's decisions, audio reuse, segments and
their modalities, and what the learned scorer (rci_matchlite) reads of each pair."""

import numpy as np
import triton_python_backend_utils as pb_utils

from rci.match.alignment import AlignParams
from rci.match.pair_input import match_inputs, pack_inputs
from rci.match.recall import candidate_libraries, unpack_candidate_audio, unpack_candidates
from rci.match.verdict import FusionParams, checked_query_audio, match_candidates, pack_matches
from rci.match.views import checked_views
from rci.serving.auth import Access, Tokens
from rci.serving.backend import from_parameters, model_parameters, respond
from rci.serving.metrics import StageMetrics


class TritonPythonModel:
    def initialize(self, args):
        """Read the alignment parameters, the decision threshold and the audio's (audio_*)
        from the config."""
        self.metrics = StageMetrics(pb_utils, args["model_name"])
        self.tokens = Tokens.from_environment()
        parameters = model_parameters(args)
        audio = {k: parameters.pop(k) for k in list(parameters) if k.startswith("audio_")}
        self.params = from_parameters(AlignParams, parameters)
        self.fusion = from_parameters(
            FusionParams, {k.removeprefix("audio_"): v for k, v in audio.items()}
        )

    def execute(self, requests):
        """One response per request."""
        return respond(
            requests, pb_utils, self._run, pb_utils.Logger, access=Access.READ,
            tokens=self.tokens, metrics=self.metrics)  # fmt: skip

    def _run(self, inputs):
        candidates = unpack_candidates(inputs)
        views = checked_views(
            inputs["EMBEDDINGS"],
            inputs.get("MIRRORED_EMBEDDINGS"),
            inputs.get("QUERY_PENALTY"),
            recurrence=inputs.get("QUERY_RECURRENCE"),
            whole=inputs.get("WHOLE_EMBEDDINGS"),
        )
        matches = match_candidates(
            views,
            inputs["TIMESTAMPS"],
            candidates,
            self.params,
            libraries=candidate_libraries(inputs),
            audio=checked_query_audio(
                inputs.get("QUERY_AUDIO_PRINTS"), inputs.get("QUERY_AUDIO_TIMES")
            ),
            candidate_audio=unpack_candidate_audio(inputs, len(candidates)),
            fusion=self.fusion,
        )
        pairs = match_inputs(matches, inputs["TIMESTAMPS"], views.recurrence)
        same_audio = [m.audio_score >= self.fusion.threshold for m in matches]
        return {
            **pack_matches(matches),
            **pack_inputs(pairs),
            "SAME_AUDIO": np.array(same_audio, dtype=bool),
        }
