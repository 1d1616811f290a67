"""Errors a caller can act on. Each carries the Triton error code it is served with."""


class RciError(ValueError):
    """A request that cannot be served as asked; `code` names a TritonError code."""

    code = "INVALID_ARG"


class MediaError(RciError):
    """The bytes are not a decodable video within the configured limits."""


class NotFoundError(RciError):
    """An unknown library or video id."""

    code = "NOT_FOUND"


class AlreadyExistsError(RciError):
    """A video id that the library already holds."""

    code = "ALREADY_EXISTS"


class DescriptorMismatchError(RciError):
    """A library built with one descriptor model queried or extended with another."""
