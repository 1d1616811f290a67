"""The benchmark: real sources -> evasive edits with ground truth -> the served system's
and peers' predictions -> metrics; also the demo's and tests' media (samples) and the box,
speed and scale measurements."""
