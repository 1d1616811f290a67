"""Serving: the stages as Triton models and two ensembles (rci_ingest, rci_detect) -> the
server process, its model repository, the Python backends' request loop and BLS calls,
tokens, settings, and the named libraries a server holds."""
