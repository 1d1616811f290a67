"""Triton adapter: query EMBEDDINGS recall candidates from one or several LIBRARY names, each
with its own parameters; returns the candidates' fingerprints and libraries."""

import triton_python_backend_utils as pb_utils

from rci.backend import respond, string_list
from rci.descriptor import EMBEDDING_DIM
from rci.errors import RciError
from rci.recall import pack_candidates, recall
from rci.settings import open_libraries


class TritonPythonModel:
    def initialize(self, args):
        """Open the configured libraries under $RCI_DATA_DIR, with their parameters."""
        self.libraries = open_libraries()

    def execute(self, requests):
        """One response per request; an unknown library is that request's error."""
        return respond(requests, pb_utils, self._run, pb_utils.Logger)

    def _run(self, inputs):
        names = string_list(inputs, "LIBRARY")
        if not names or len(set(names)) != len(names):
            raise RciError(f"LIBRARY must name one or more distinct libraries, got {names}")
        indexes = [self.libraries.index(name) for name in names]  # unknown names fail first
        found, labels = [], []
        for name, index in zip(names, indexes, strict=True):
            candidates = recall(index, inputs["EMBEDDINGS"], self.libraries.settings[name].recall)
            found += candidates
            labels += [name] * len(candidates)
        return pack_candidates(found, EMBEDDING_DIM, labels)
