"""Triton adapter: query EMBEDDINGS recall candidates from one or several LIBRARY names, each
with its own parameters; returns the candidates' fingerprints and libraries."""

import triton_python_backend_utils as pb_utils

from rci.describe.descriptor import EMBEDDING_DIM
from rci.match.recall import pack_candidates
from rci.serving.auth import Access, Tokens
from rci.serving.backend import respond, string_list
from rci.serving.settings import open_libraries


class TritonPythonModel:
    def initialize(self, args):
        """Open the configured libraries under $RCI_DATA_DIR, with their parameters."""
        self.tokens = Tokens.from_environment()
        self.libraries = open_libraries()

    def execute(self, requests):
        """One response per request; an unknown library is that request's error."""
        return respond(
            requests, pb_utils, self._run, pb_utils.Logger, access=Access.READ, tokens=self.tokens
        )

    def _run(self, inputs):
        found = self.libraries.recall(string_list(inputs, "LIBRARY"), inputs["EMBEDDINGS"])
        return pack_candidates([v for _, v in found], EMBEDDING_DIM, [n for n, _ in found])
