"""The benchmark: real sources, evasive edits with ground truth, a runner and metrics."""
