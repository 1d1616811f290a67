"""A query as matching compares it: its frames' descriptors, optionally their mirror images
and the video around an inset picture (whole frames), a per-frame penalty that hub-like
frames pay on every similarity (score normalization), and how many library videos hold
each frame (recurrence, for chrome).

Every similarity of query frame i with a library frame x is, over the views v,
    max_v ( x_v(i) . x  -  p_v(i) )
so a mirrored copy matches through its mirrored view, the video a picture-in-picture sits
on through the whole view, and a low-information frame's similarities shrink by its
penalty.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rci.errors import RciError
from rci.library.checks import check_embeddings, check_mirrored
from rci.library.index import mean_descriptor


@dataclass(frozen=True)
class QueryViews:
    """embeddings (T, D), mirrored (T, D) and whole (T, D) float32 unit rows; penalty
    (V, T) float32, one row per view in views() order (V = 1 + mirrored + whole), or None
    for none; recurrence (T,) int32, the distinct library videos among each frame's nearest
    neighbours (recall), or None."""

    embeddings: np.ndarray
    mirrored: np.ndarray | None = None
    penalty: np.ndarray | None = None
    recurrence: np.ndarray | None = None
    whole: np.ndarray | None = None

    def __post_init__(self) -> None:
        for name in ("mirrored", "whole"):
            view = getattr(self, name)
            if view is not None and view.shape != self.embeddings.shape:
                raise ValueError(
                    f"{name} must be {self.embeddings.shape} like embeddings, got {view.shape}"
                )
        views = self.view_count()
        if self.penalty is not None and self.penalty.shape != (views, len(self.embeddings)):
            raise ValueError(
                f"penalty must be ({views}, {len(self.embeddings)}), got {self.penalty.shape}"
            )
        if self.recurrence is not None and self.recurrence.shape != (len(self.embeddings),):
            raise ValueError(
                f"recurrence must be ({len(self.embeddings)},), got {self.recurrence.shape}"
            )

    def __len__(self) -> int:
        return len(self.embeddings)

    def view_count(self) -> int:
        return 1 + (self.mirrored is not None) + (self.whole is not None)

    def views(self) -> list[tuple[np.ndarray, np.ndarray]]:
        """(descriptors (T, D), penalty (T,)) for each view: the frames, their mirror
        images, the whole frames."""
        frames = [self.embeddings, self.mirrored, self.whole]
        frames = [x for x in frames if x is not None]
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
    recurrence: np.ndarray | None = None,
    whole: np.ndarray | None = None,
) -> QueryViews:
    """QueryViews from a client's EMBEDDINGS (T, D), MIRRORED_EMBEDDINGS (T, D),
    WHOLE_EMBEDDINGS (T, D), QUERY_PENALTY (V, T) and QUERY_RECURRENCE (T,); an absent or
    empty view is none, an absent penalty zero, an absent recurrence unknown. RciError on
    bad values or shapes."""
    check_embeddings(embeddings, "EMBEDDINGS", dim)
    mirrored = check_mirrored(mirrored, embeddings)
    whole = check_mirrored(whole, embeddings, "WHOLE_EMBEDDINGS")
    if penalty is not None:
        views = 1 + (mirrored is not None) + (whole is not None)
        if penalty.shape != (views, len(embeddings)) or penalty.dtype != np.float32:
            raise RciError(
                f"QUERY_PENALTY must be ({views}, {len(embeddings)}) float32, one row per view, "
                f"got {penalty.dtype} {list(penalty.shape)}"
            )
    if recurrence is not None and (
        recurrence.shape != (len(embeddings),) or recurrence.dtype != np.int32
    ):
        raise RciError(
            f"QUERY_RECURRENCE must be ({len(embeddings)},) int32, one count per frame, "
            f"got {recurrence.dtype} {list(recurrence.shape)}"
        )
    return check_views(QueryViews(embeddings, mirrored, penalty, recurrence, whole))


def check_views(views: QueryViews) -> QueryViews:
    """views itself when its views are unit rows and its penalties finite and >= 0."""
    if views.mirrored is not None:
        check_embeddings(views.mirrored, "MIRRORED_EMBEDDINGS")
    if views.whole is not None:
        check_embeddings(views.whole, "WHOLE_EMBEDDINGS")
    if views.penalty is not None and not (
        np.isfinite(views.penalty).all() and (views.penalty >= 0).all()
    ):
        raise RciError("QUERY_PENALTY must be finite and >= 0")
    if views.recurrence is not None and (views.recurrence < 0).any():
        raise RciError("QUERY_RECURRENCE must be >= 0")
    return views
