"""Errors a caller can act on. Each carries the Triton error code it is served with."""


class RciError(ValueError):
    """A request that cannot be served as asked; `code` names a TritonError code."""

    code = "INVALID_ARG"

    def __init__(self, message: str = "", code: str | None = None) -> None:
        super().__init__(message)
        if code is not None:
            self.code = code


class MediaError(RciError):
    """The bytes are not a decodable video within the configured limits."""


class CancelledError(MediaError):
    """The client went away while its video was being decoded."""

    code = "CANCELLED"


class NotFoundError(RciError):
    """An unknown library or video id."""

    code = "NOT_FOUND"


class UnknownLibraryError(NotFoundError):
    """A library this server does not hold."""


class AlreadyExistsError(RciError):
    """A video id that the library already holds."""

    code = "ALREADY_EXISTS"


class DescriptorMismatchError(RciError):
    """A library built with one descriptor model queried or extended with another."""


QUOTE_LIMIT = 200  # characters of a client-supplied value an error message repeats


def quote(value: object, limit: int = QUOTE_LIMIT) -> str:
    """repr(value), cut to `limit` characters with the full length said: an error must not
    echo a megabyte id back (gRPC refuses such a status as RESOURCE_EXHAUSTED)."""
    text = repr(value)
    if len(text) <= limit:
        return text
    return f"{text[:limit]}... ({len(str(value))} characters)"
