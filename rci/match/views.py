"""A query as matching compares it: its frames' descriptors, optionally their mirror images,
and a per-frame penalty that hub-like frames pay on every similarity (score normalization).

Every similarity of query frame i with a library frame x is, over the views v,
    max_v ( x_v(i) . x  -  p_v(i) )
so a mirrored copy matches through its mirrored view and a low-information frame's
similarities shrink by its penalty.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rci.errors import RciError
from rci.library.checks import check_embeddings, check_mirrored
from rci.library.index import mean_descriptor


@dataclass(frozen=True)
class QueryViews:
    """embeddings (T, D) and mirrored (T, D) float32 unit rows; penalty (V, T) float32, one
    row per view (V = 2 with mirrored, else 1), or None for none."""

    embeddings: np.ndarray
    mirrored: np.ndarray | None = None
    penalty: np.ndarray | None = None

    def __post_init__(self) -> None:
        if self.mirrored is not None and self.mirrored.shape != self.embeddings.shape:
            raise ValueError(
                f"mirrored must be {self.embeddings.shape} like embeddings, "
                f"got {self.mirrored.shape}"
            )
        views = 1 if self.mirrored is None else 2
        if self.penalty is not None and self.penalty.shape != (views, len(self.embeddings)):
            raise ValueError(
                f"penalty must be ({views}, {len(self.embeddings)}), got {self.penalty.shape}"
            )

    def __len__(self) -> int:
        return len(self.embeddings)

    def views(self) -> list[tuple[np.ndarray, np.ndarray]]:
        """(descriptors (T, D), penalty (T,)) for each view."""
        frames = [self.embeddings] if self.mirrored is None else [self.embeddings, self.mirrored]
        zero = np.zeros(len(self), dtype=np.float32)
        penalty = [zero] * len(frames) if self.penalty is None else list(self.penalty)
        return list(zip(frames, penalty, strict=True))

    def similarities(self, ref: np.ndarray) -> np.ndarray:
        """(T, Tr) similarities with a reference's (Tr, D) descriptors, best view each."""
        out = None
        for x, p in self.views():
            s = x @ ref.T - p[:, None]
            out = s if out is None else np.maximum(out, s)
        return out

    def mean_views(self) -> tuple[np.ndarray, np.ndarray]:
        """((V, D) whole-video descriptors of the views (mean_descriptor), (V,) their mean
        penalties)."""
        views = self.views()
        means = np.stack([mean_descriptor(x) for x, _ in views])
        return means, np.array([p.mean() for _, p in views], dtype=np.float32)

    @classmethod
    def of(cls, query: np.ndarray | QueryViews) -> QueryViews:
        return query if isinstance(query, QueryViews) else cls(query)


def checked_views(
    embeddings: np.ndarray,
    mirrored: np.ndarray | None = None,
    penalty: np.ndarray | None = None,
    dim: int | None = None,
) -> QueryViews:
    """QueryViews from a client's EMBEDDINGS (T, D), MIRRORED_EMBEDDINGS (T, D) and
    QUERY_PENALTY (V, T); an absent or empty mirrored view is none, an absent penalty
    zero. RciError on bad values or shapes."""
    check_embeddings(embeddings, "EMBEDDINGS", dim)
    mirrored = check_mirrored(mirrored, embeddings)
    if penalty is not None:
        views = 1 if mirrored is None else 2
        if penalty.shape != (views, len(embeddings)) or penalty.dtype != np.float32:
            raise RciError(
                f"QUERY_PENALTY must be ({views}, {len(embeddings)}) float32, one row per view, "
                f"got {penalty.dtype} {list(penalty.shape)}"
            )
    return check_views(QueryViews(embeddings, mirrored, penalty))


def check_views(views: QueryViews) -> QueryViews:
    """views itself when its mirrored view is unit rows and its penalties finite and >= 0."""
    if views.mirrored is not None:
        check_embeddings(views.mirrored, "MIRRORED_EMBEDDINGS")
    if views.penalty is not None and not (
        np.isfinite(views.penalty).all() and (views.penalty >= 0).all()
    ):
        raise RciError("QUERY_PENALTY must be finite and >= 0")
    return views
