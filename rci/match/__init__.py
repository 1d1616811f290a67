"""Stage 4, match: a query's embeddings and a library -> candidate videos (recall), then
per candidate the copied segments and the heuristic's score (temporal alignment, verdict),
what the learned scorer reads of the pair (pair_input) -> its probability and the decision
(matchlite)."""
