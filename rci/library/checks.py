"""Checks on the arrays a client may hand a model directly, past the ensemble: a library or
an alignment fed NaN, huge or unordered values would answer wrongly for everyone after."""

from __future__ import annotations

import numpy as np

from rci.errors import RciError

UNIT_TOLERANCE = 1e-3  # |norm - 1| allowed of a descriptor: the graphs normalize in float32
MAX_SECONDS = 1e6  # 11.6 days: no timestamp or duration a video of ours can have


def check_embeddings(x: np.ndarray, name: str, dim: int | None = None) -> np.ndarray:
    """x itself if it is (T, D) float32, finite and of unit length (within UNIT_TOLERANCE)."""
    if x.ndim != 2 or x.dtype != np.float32:
        raise RciError(f"{name} must be (T, D) float32, got {x.dtype} {list(x.shape)}")
    if dim is not None and x.shape[1] != dim:
        raise RciError(f"{name} must have {dim} columns, got {x.shape[1]}")
    if not np.isfinite(x).all():
        raise RciError(f"{name} holds NaN or infinite values")
    norms = np.linalg.norm(x, axis=1)
    bad = np.flatnonzero(np.abs(norms - 1) > UNIT_TOLERANCE)
    if len(bad):
        raise RciError(
            f"{name} rows must have unit length (within {UNIT_TOLERANCE}); "
            f"row {bad[0]} has {norms[bad[0]]:.6g}"
        )
    return x


def check_times(t: np.ndarray, count: int, name: str) -> np.ndarray:
    """t itself if it is (count,) seconds, finite, in [0, MAX_SECONDS] and increasing."""
    if t.shape != (count,):
        raise RciError(f"{name} must hold one time per row, ({count},), got {list(t.shape)}")
    if not np.isfinite(t).all():
        raise RciError(f"{name} holds NaN or infinite values")
    if count and (t.min() < 0 or t.max() > MAX_SECONDS):
        raise RciError(f"{name} must lie in [0, {MAX_SECONDS:.0f}] seconds")
    if count > 1 and not (np.diff(t) > 0).all():
        raise RciError(f"{name} must increase strictly")
    return t


def check_duration(seconds: float, name: str = "DURATION") -> float:
    """seconds itself if finite and in [0, MAX_SECONDS]."""
    if not np.isfinite(seconds) or not 0 <= seconds <= MAX_SECONDS:
        raise RciError(f"{name} must be finite seconds in [0, {MAX_SECONDS:.0f}], got {seconds}")
    return float(seconds)


def check_mirrored(
    mirrored: np.ndarray | None, embeddings: np.ndarray, name: str = "MIRRORED_EMBEDDINGS"
) -> np.ndarray | None:
    """A second view of the query's frames (their mirror images): None when absent or
    empty, else checked like `embeddings` and of the same shape."""
    if mirrored is None or (mirrored.ndim == 2 and len(mirrored) == 0):
        return None
    check_embeddings(mirrored, name)
    if mirrored.shape != embeddings.shape:
        raise RciError(
            f"{name} must be {list(embeddings.shape)} like EMBEDDINGS, got {list(mirrored.shape)}"
        )
    return mirrored
