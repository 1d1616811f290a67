"""Triton adapter: query EMBEDDINGS vote for library videos; returns candidates' fingerprints."""

import triton_python_backend_utils as pb_utils

from rci.backend import from_parameters, model_parameters, respond, string_input
from rci.descriptor import EMBEDDING_DIM
from rci.recall import RecallParams, pack_candidates, recall
from rci.settings import open_libraries


class TritonPythonModel:
    def initialize(self, args):
        """Read recall parameters; open the configured libraries under $RCI_DATA_DIR."""
        self.params = from_parameters(RecallParams, model_parameters(args))
        self.libraries = open_libraries()

    def execute(self, requests):
        """One response per request; an unknown library is that request's error."""
        return respond(requests, pb_utils, self._run, pb_utils.Logger)

    def _run(self, inputs):
        index = self.libraries.index(string_input(inputs, "LIBRARY"))
        return pack_candidates(recall(index, inputs["EMBEDDINGS"], self.params), EMBEDDING_DIM)
