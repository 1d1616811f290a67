"""Training, after the benchmark: a benchmark build's features -> labelled pairs (pairs.py)
-> teacher and student (models.py, train.py: torch, the `train` extra) -> the student as
ONNX, served by rci.match.matchlite; report.py scores them as the benchmark does. Nothing
in the runtime imports this stage."""
