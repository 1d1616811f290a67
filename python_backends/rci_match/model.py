"""Triton adapter: align the query (its mirrored and whole views, penalties and recurrence,
when given) with each candidate; returns scores, decisions, segments."""

import triton_python_backend_utils as pb_utils

from rci.match.alignment import AlignParams, match_candidates, pack_matches
from rci.match.recall import candidate_libraries, unpack_candidates
from rci.match.views import checked_views
from rci.serving.auth import Access, Tokens
from rci.serving.backend import from_parameters, model_parameters, respond


class TritonPythonModel:
    def initialize(self, args):
        """Read alignment parameters and the decision threshold from the config."""
        self.tokens = Tokens.from_environment()
        self.params = from_parameters(AlignParams, model_parameters(args))

    def execute(self, requests):
        """One response per request."""
        return respond(
            requests, pb_utils, self._run, pb_utils.Logger, access=Access.READ, tokens=self.tokens
        )

    def _run(self, inputs):
        matches = match_candidates(
            checked_views(
                inputs["EMBEDDINGS"],
                inputs.get("MIRRORED_EMBEDDINGS"),
                inputs.get("QUERY_PENALTY"),
                recurrence=inputs.get("QUERY_RECURRENCE"),
                whole=inputs.get("WHOLE_EMBEDDINGS"),
            ),
            inputs["TIMESTAMPS"],
            unpack_candidates(inputs),
            self.params,
            libraries=candidate_libraries(inputs),
        )
        return pack_matches(matches)
