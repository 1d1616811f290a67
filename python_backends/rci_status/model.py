"""Triton adapter: LIBRARIES (names; none = all) -> STATUS, one JSON document. Also keeps
each library's Prometheus gauges (rci.serving.metrics.LibraryMetrics) current."""

import json

import numpy as np
import triton_python_backend_utils as pb_utils

from rci.serving.auth import Access, Tokens
from rci.serving.backend import respond, string_list
from rci.serving.metrics import LibraryMetrics, StageMetrics
from rci.serving.settings import open_libraries


class TritonPythonModel:
    def initialize(self, args):
        """Open the configured libraries under $RCI_DATA_DIR."""
        self.metrics = StageMetrics(pb_utils, args["model_name"])
        self.tokens = Tokens.from_environment()
        self.libraries = open_libraries()
        self.gauges = LibraryMetrics(pb_utils, lambda: self.libraries.status(self.libraries.names))

    def finalize(self):
        self.gauges.close()

    def execute(self, requests):
        """One response per request; an unknown library is that request's error."""
        return respond(
            requests, pb_utils, self._run, pb_utils.Logger, access=Access.READ,
            tokens=self.tokens, metrics=self.metrics)  # fmt: skip

    def _run(self, inputs):
        names = string_list(inputs, "LIBRARIES") or self.libraries.names
        status = self.libraries.status(names)
        return {"STATUS": np.array([json.dumps(status).encode()], dtype=object)}
