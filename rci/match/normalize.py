"""Score normalization against a background set (rci.library.background): a query frame as
similar to pictures no library copies as to a library video is no evidence of a copy.

For query frame i (in each view), b(i) is the mean similarity of its `k` nearest background
descriptors. Frames whose b(i) stays at or under `floor` (a frame with detail: what
real pictures score against the background) pay nothing; above it, every similarity of the
frame loses
    penalty(i) = beta * (b(i) - floor).
VSC22's descriptor track subtracts beta * b(i) outright (SSCD: 0.475 -> 0.65 uAP); the floor
keeps similarities of ordinary frames, and with them the alignment's thresholds, as they
were, and takes down only the hub-like frames.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import faiss
import numpy as np

from rci.match.views import QueryViews


@dataclass(frozen=True)
class HubParams:
    """k neighbours in the background; floor and beta as in the module's formula. Chosen on
    the full benchmark's train and val splits (docs/precision.md): floor 0.2-0.3 and beta 1-3
    alike on train, val pair uAP best at floor 0.2, beta 2-3."""

    k: int = 3
    floor: float = 0.2
    beta: float = 2.0

    def __post_init__(self) -> None:
        if self.k < 1 or not 0.0 <= self.beta <= 4.0 or not -1.0 <= self.floor <= 1.0:
            raise ValueError(f"hub k >= 1, beta 0-4 and floor -1-1, got {self}")


class Background:
    """Exact inner-product search over the background's (N, D) unit descriptors."""

    def __init__(self, descriptors: np.ndarray, params: HubParams = HubParams()) -> None:
        self.params = params
        self.index = faiss.IndexFlatIP(descriptors.shape[1])
        self.index.add(np.ascontiguousarray(descriptors, dtype=np.float32))

    def similarity(self, x: np.ndarray) -> np.ndarray:
        """(T,) mean similarity of each of x's (T, D) rows to its k nearest background rows."""
        if len(x) == 0:
            return np.zeros(0, np.float32)
        D, _ = self.index.search(np.ascontiguousarray(x, np.float32), self.params.k)
        return D.mean(axis=1).astype(np.float32)

    def penalty(self, x: np.ndarray) -> np.ndarray:
        """(T,) float32 >= 0: beta * max(0, b(i) - floor) for each row of x."""
        excess = np.maximum(self.similarity(x) - self.params.floor, 0.0)
        return (self.params.beta * excess).astype(np.float32)

    def normalized(self, views: QueryViews) -> QueryViews:
        """`views` with every view's penalty set."""
        penalty = np.stack([self.penalty(x) for x, _ in views.views()])
        return dataclasses.replace(views, penalty=penalty)
