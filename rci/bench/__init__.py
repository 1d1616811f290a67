"""The benchmark: real sources -> evasive edits with ground truth -> the served system's
and peers' predictions -> metrics."""
