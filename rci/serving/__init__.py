"""Serving: the stages as one Triton ensemble -> the server process, its model repository,
the Python backends' request loop, tokens, and the named libraries a server holds."""
