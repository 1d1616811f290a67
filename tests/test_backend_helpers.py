"""Helpers every Triton Python model shares: parameters to dataclasses, string inputs."""

from __future__ import annotations

import json

import numpy as np
import pytest

from rci.errors import RciError
from rci.match.alignment import AlignParams
from rci.match.recall import RecallParams
from rci.preprocess.frames import BorderParams
from rci.preprocess.media import DecodeLimits
from rci.serving.backend import from_parameters, model_parameters, string_input


def test_from_parameters_parses_each_field_by_its_type() -> None:
    params = from_parameters(RecallParams, {"k": "20", "min_similarity": "0.45"})
    assert params == RecallParams(k=20, candidates=5, min_similarity=0.45)
    assert isinstance(params.k, int) and isinstance(params.min_similarity, float)
    align = from_parameters(AlignParams, {"max_gap": "3", "min_matches": "4", "bias": "0.25"})
    assert align.max_gap == 3.0 and isinstance(align.max_gap, float)
    assert align.min_matches == 4 and align.bias == 0.25
    assert align.node_k == AlignParams().node_k  # untouched fields keep their defaults


def test_from_parameters_empty_gives_defaults() -> None:
    assert from_parameters(RecallParams, {}) == RecallParams()
    assert from_parameters(AlignParams, {}) == AlignParams()
    assert from_parameters(DecodeLimits, {}) == DecodeLimits()
    assert from_parameters(BorderParams, {"min_run": "4"}) == BorderParams(min_run=4)


def test_from_parameters_rejects_unknown_names() -> None:
    with pytest.raises(ValueError, match=r"unknown parameters \['kk', 'zz'\] for RecallParams"):
        from_parameters(RecallParams, {"k": "3", "kk": "1", "zz": "2"})


@pytest.mark.parametrize(
    "cls, parameters",
    [
        (RecallParams, {"k": "ten"}),
        (RecallParams, {"k": "2.5"}),  # an int field does not take a fraction
        (RecallParams, {"min_similarity": ""}),
        (AlignParams, {"max_segments": "8 segments"}),
    ],
)
def test_from_parameters_rejects_unparsable_values(cls, parameters) -> None:
    with pytest.raises(ValueError):
        from_parameters(cls, parameters)


def test_from_parameters_runs_the_dataclass_checks() -> None:
    with pytest.raises(ValueError, match="k and candidates must be >= 1"):
        from_parameters(RecallParams, {"candidates": "0"})
    with pytest.raises(ValueError, match="fps"):
        from_parameters(DecodeLimits, {"fps": "60"})


def test_model_parameters() -> None:
    config = {
        "name": "recall",
        "parameters": {"k": {"string_value": "20"}, "library": {"string_value": "main"}},
    }
    assert model_parameters({"model_config": json.dumps(config)}) == {"k": "20", "library": "main"}
    assert model_parameters({"model_config": json.dumps({"name": "x"})}) == {}


def test_string_input_reads_one_utf8_value() -> None:
    inputs = {"LIBRARY": np.array([b"main"], dtype=object)}
    assert string_input(inputs, "LIBRARY") == "main"
    # Any shape holding one element, and non-ASCII UTF-8.
    inputs = {"ID": np.array([["vidéo-1".encode()]], dtype=object)}
    assert string_input(inputs, "ID") == "vidéo-1"
    # A str element (not bytes) is taken as is.
    assert string_input({"ID": np.array(["plain"], dtype=object)}, "ID") == "plain"


@pytest.mark.parametrize(
    "value, message",
    [
        (np.array([b"a", b"b"], dtype=object), "exactly one string, got 2"),
        (np.array([], dtype=object), "exactly one string, got 0"),
        (np.array([b"\xff\xfe"], dtype=object), "not valid UTF-8"),
    ],
    ids=["two", "none", "invalid-utf8"],
)
def test_string_input_refusals(value, message) -> None:
    with pytest.raises(RciError, match=message) as info:
        string_input({"LIBRARY": value}, "LIBRARY")
    assert info.value.code == "INVALID_ARG"
    assert "LIBRARY" in str(info.value)
