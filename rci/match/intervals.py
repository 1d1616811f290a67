"""Lengths of sets of time intervals: what alignment and the benchmark's metrics measure
segments' overlap with."""

from __future__ import annotations

import math
from collections.abc import Iterable

Interval = tuple[float, float]  # [start, end) seconds


def union_length(intervals: Iterable[Interval]) -> float:
    """Length covered by the union of intervals (overlaps counted once), seconds."""
    total, end = 0.0, -math.inf
    for a, b in sorted(intervals):
        if b <= end:
            continue
        total += b - max(a, end)
        end = b
    return total


def intersection_length(a: Iterable[Interval], b: Iterable[Interval]) -> float:
    """|A n B| of two interval sets, as |A| + |B| - |A u B|."""
    a, b = list(a), list(b)
    return union_length(a) + union_length(b) - union_length(a + b)
