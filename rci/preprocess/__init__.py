"""Stage 1, preprocess: video bytes -> sampled frames (1 per second by timestamp), each
cropped to its content box and resized to 224x224, with timestamps and audio features."""
