"""Stage 2, describe: 224x224 frames -> 512-d unit-length SSCD copy-detection embeddings."""
