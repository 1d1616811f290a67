"""Stage 3, library: reference videos' embeddings and timestamps -> a durable append-only
store and its search index (exact, or a trained IVF-PQ snapshot); checks: the tests every
embedding, time and duration a client sends must pass."""
