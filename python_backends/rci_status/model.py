"""Triton adapter: LIBRARIES (names; none = all) -> STATUS, one JSON document."""

import json

import numpy as np
import triton_python_backend_utils as pb_utils

from rci.backend import respond
from rci.descriptor import EMBEDDING_DIM
from rci.library import Libraries
from rci.settings import data_dir, descriptor_name, library_names


class TritonPythonModel:
    def initialize(self, args):
        """Open the configured libraries under $RCI_DATA_DIR."""
        self.libraries = Libraries(
            data_dir(), library_names(), descriptor=descriptor_name(), dim=EMBEDDING_DIM
        )

    def execute(self, requests):
        """One response per request; an unknown library is that request's error."""
        return respond(requests, pb_utils, self._run, pb_utils.Logger)

    def _run(self, inputs):
        names = [n.decode() for n in inputs["LIBRARIES"].reshape(-1)] or self.libraries.names
        status = self.libraries.status(names)
        return {"STATUS": np.array([json.dumps(status).encode()], dtype=object)}
