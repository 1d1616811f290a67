"""RCI: reproduced-content identification, in pipeline order: preprocess -> describe ->
library -> match, served by `serving`; `bench` measures it; `errors` is shared by all."""

__version__ = "0.1.0"
