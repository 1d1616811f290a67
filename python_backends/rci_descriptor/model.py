"""Triton adapter: FRAMES (T, 224, 224, 3) uint8 -> EMBEDDINGS (T, 512) float32 (cpu target)."""

import triton_python_backend_utils as pb_utils

from rci.describe.descriptor import Descriptor, DescriptorModel
from rci.serving.auth import Access, Tokens
from rci.serving.backend import model_parameters, respond
from rci.serving.metrics import StageMetrics
from rci.serving.settings import descriptor_name


class TritonPythonModel:
    def initialize(self, args):
        """Load the ONNX model named by $RCI_DESCRIPTOR with ONNX Runtime."""
        self.metrics = StageMetrics(pb_utils, args["model_name"])
        self.tokens = Tokens.from_environment()
        parameters = model_parameters(args)
        self.descriptor = Descriptor(
            DescriptorModel.parse(descriptor_name()),
            threads=int(parameters.get("threads", "0")),
            batch_size=int(parameters.get("batch_size", "32")),
        )

    def execute(self, requests):
        """One response per request."""
        return respond(
            requests, pb_utils, self._run, pb_utils.Logger, access=Access.READ,
            tokens=self.tokens, trim=True, metrics=self.metrics)  # fmt: skip

    def _run(self, inputs):
        return {"EMBEDDINGS": self.descriptor.embed(inputs["FRAMES"])}
