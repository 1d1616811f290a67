"""Triton adapter: query EMBEDDINGS (and MIRRORED_EMBEDDINGS, WHOLE_EMBEDDINGS, when given)
are normalized against the server's background set, then recall candidates from one or
several LIBRARY names, each with its own parameters, also by QUERY_AUDIO_PRINTS when
given; returns the candidates' fingerprints (their audio's too, when the query has audio)
and libraries, each query frame's penalty (QUERY_PENALTY) and the library videos holding
it (QUERY_RECURRENCE), all for rci_match."""

import numpy as np
import triton_python_backend_utils as pb_utils

from rci.describe.descriptor import EMBEDDING_DIM, DescriptorModel
from rci.library.background import ensure_background
from rci.match.normalize import Background, HubParams
from rci.match.recall import pack_candidates
from rci.match.views import checked_views
from rci.serving.auth import Access, Tokens
from rci.serving.backend import from_parameters, model_parameters, respond, string_list
from rci.serving.metrics import StageMetrics
from rci.serving.settings import data_dir, descriptor_name, open_libraries


class TritonPythonModel:
    def initialize(self, args):
        """Open the configured libraries under $RCI_DATA_DIR, with their parameters, and the
        background for $RCI_DESCRIPTOR (made on first use: rci.library.background)."""
        self.metrics = StageMetrics(pb_utils, args["model_name"])
        self.tokens = Tokens.from_environment()
        self.libraries = open_libraries()
        parameters = model_parameters(args)
        normalize = {"true": True, "false": False}[parameters.pop("normalize", "true")]
        hub = from_parameters(HubParams, {k.removeprefix("hub_"): v for k, v in parameters.items()})
        self.background = None
        if normalize:
            model = DescriptorModel.parse(descriptor_name())
            self.background = Background(ensure_background(data_dir(), model), hub)

    def execute(self, requests):
        """One response per request; an unknown library is that request's error."""
        return respond(
            requests, pb_utils, self._run, pb_utils.Logger, access=Access.READ,
            tokens=self.tokens, metrics=self.metrics)  # fmt: skip

    def _run(self, inputs):
        views = checked_views(
            inputs["EMBEDDINGS"],
            inputs.get("MIRRORED_EMBEDDINGS"),
            dim=EMBEDDING_DIM,
            whole=inputs.get("WHOLE_EMBEDDINGS"),
        )
        if self.background is not None:
            views = self.background.normalized(views)
        audio = inputs.get("QUERY_AUDIO_PRINTS")
        found, recurring = self.libraries.recall(string_list(inputs, "LIBRARY"), views, audio)
        outputs = pack_candidates(
            [v for _, v in found],
            EMBEDDING_DIM,
            [n for n, _ in found],
            audio=audio is not None and audio.shape[1] > 0,
        )
        penalty = views.penalty
        if penalty is None:
            penalty = np.zeros((len(views.views()), len(views)), np.float32)
        return {**outputs, "QUERY_PENALTY": penalty, "QUERY_RECURRENCE": recurring}
