"""Triton adapter: VIDEO_BYTES -> EMBEDDINGS, MIRRORED_EMBEDDINGS, WHOLE_EMBEDDINGS, TIMESTAMPS,
DURATION, CONTENT_BOXES, AUDIO_FBANK, AUDIO_MFCC, AUDIO_PRINTS, AUDIO_TIMES,
QUERY_AUDIO_PRINTS. Frames go to the model named by parameter
`descriptor_model` (BLS) EMBED_FRAMES at a time, so only embeddings leave this model.
MIRRORED_EMBEDDINGS (the frames flipped, embedded) are computed only for a caller that asks
for them, as rci_detect does and rci_ingest does not, and when parameter `mirror` is true;
otherwise they are (0, 512); WHOLE_EMBEDDINGS (frames with an inset picture, embedded
whole) likewise, with parameter `whole`, and QUERY_AUDIO_PRINTS (the audio read at
several tempos and phases) for a caller that asks. Parameter `screen` "false" turns the
tilted-screen search off. LIBRARY (optional, as rci_ingest gives it): frames are sampled
no closer than that library's fingerprint interval. Parameter `decoder`: "pyav" (cpu
target) or "nvdec" (gpu target: NVDEC and DALI on the instance's GPU)."""

import json

import numpy as np
import triton_python_backend_utils as pb_utils

from rci.preprocess.audio_prints import check_chromaprint
from rci.preprocess.media import DecodeLimits, check_size
from rci.preprocess.pipeline import video_embedder
from rci.preprocess.screen import ScreenParams
from rci.serving.auth import Access, Tokens
from rci.serving.backend import (
    call_model,
    from_parameters,
    model_parameters,
    respond,
    string_input,
)
from rci.serving.metrics import StageMetrics
from rci.serving.settings import open_libraries


class TritonPythonModel:
    def initialize(self, args):
        """Read the decode limits from the config's parameters; on nvdec, build the GPU
        pipelines once for this instance's device."""
        self.metrics = StageMetrics(pb_utils, args["model_name"])
        self.tokens = Tokens.from_environment()
        parameters = model_parameters(args)
        decoder = parameters.pop("decoder", "pyav")
        self.descriptor = parameters.pop("descriptor_model", "rci_descriptor")
        self.mirror = {"true": True, "false": False}[parameters.pop("mirror", "true")]
        self.whole = {"true": True, "false": False}[parameters.pop("whole", "true")]
        screen = {"true": ScreenParams(), "false": None}[parameters.pop("screen", "true")]
        self.limits = from_parameters(DecodeLimits, parameters)
        check_chromaprint()  # a missing libchromaprint fails the load, not every request
        self.libraries = open_libraries()  # LIBRARY: sample at its fingerprint interval
        device = int(json.loads(args.get("model_instance_device_id", "0")))
        self.run = video_embedder(decoder, self.limits, screen, device)

    def execute(self, requests):
        """One response per request; undecodable bytes become that request's error."""
        return respond(
            requests, pb_utils, self._run, pb_utils.Logger, access=Access.READ,
            tokens=self.tokens, cancellable=True, forwards_token=True, reads_requested=True,
            trim=True, metrics=self.metrics)  # fmt: skip

    def _run(self, inputs, cancelled, token, requested):
        data = inputs["VIDEO_BYTES"]  # read in place (rci.preprocess.media.BufferFile), not copied
        check_size(data.size, self.limits)  # before nvdec's tobytes() copies an oversized one

        def embed(frames: np.ndarray) -> np.ndarray:
            outputs = call_model(
                pb_utils, self.descriptor, {"FRAMES": frames}, ["EMBEDDINGS"], token
            )
            return outputs["EMBEDDINGS"]

        mirror = self.mirror and "MIRRORED_EMBEDDINGS" in requested
        whole = self.whole and "WHOLE_EMBEDDINGS" in requested
        query_audio = "QUERY_AUDIO_PRINTS" in requested
        pictures = "THUMBNAILS" in requested  # rci_ingest asks, for the library
        limits = self.limits
        if "LIBRARY" in inputs:  # rci_ingest: no frames the library would not keep
            interval = self.libraries.fingerprint_interval(string_input(inputs, "LIBRARY"))
            limits = limits.every(interval)
        video = self.run(data, limits, embed, cancelled, mirror, whole, query_audio, pictures)
        empty = np.zeros((0, video.embeddings.shape[1]), np.float32)
        return {
            "EMBEDDINGS": video.embeddings,
            "MIRRORED_EMBEDDINGS": empty if video.mirrored is None else video.mirrored,
            "WHOLE_EMBEDDINGS": empty if video.whole is None else video.whole,
            "TIMESTAMPS": video.timestamps,
            "DURATION": np.array([video.duration], dtype=np.float32),
            "CONTENT_BOXES": video.content_boxes,
            "AUDIO_FBANK": video.audio_fbank,
            "AUDIO_MFCC": video.audio_mfcc,
            "AUDIO_PRINTS": video.audio_prints.bits,
            "AUDIO_TIMES": video.audio_prints.times,
            "QUERY_AUDIO_PRINTS": video.audio_views,
            "THUMBNAILS": np.array(video.thumbnails or [], dtype=object),
        }
