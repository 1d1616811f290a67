"""Stage 4, match: a query's embeddings and a library -> candidate videos (recall), then
per candidate the copied segments, a score and a decision (temporal alignment)."""
