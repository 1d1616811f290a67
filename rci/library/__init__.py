"""Stage 3, library: reference videos' embeddings and timestamps -> a durable append-only
store and its search index (exact, or a trained IVF-PQ snapshot)."""
