"""MatchLite: the learned pair scorer. Labelled pairs composed from a benchmark build's
cached features (pairs.py, numpy), the teacher and the student and their training (models.py,
train.py: torch, the `train` extra), and the student served with onnxruntime (scorer.py)."""
