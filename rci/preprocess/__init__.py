"""Stage 1, preprocess: video bytes -> sampled frames (1 per second by timestamp, or spread),
each cropped to its content box and resized to 224x224, or through a given embed callable
their embeddings 64 at a time; with timestamps, content boxes and audio features. dali and
dali_ops are the gpu target's path."""
