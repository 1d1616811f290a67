"""Who may call what: a write token guards ingest and delete, an optional read token the rest.

Clients send the token in the `rci-token` HTTP header or gRPC metadata; tritonserver
forwards that header to every model as a request parameter (rci.serving.server), ensembles
pass it on to their steps and rci_preprocess to its BLS calls, and each model checks it
itself, so a leaf model called directly needs it too. Triton's backend API has no
authentication codes: refusals are INVALID_ARG (HTTP 400) with a message that starts
"unauthenticated" or "permission denied".
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import os
from dataclasses import dataclass
from pathlib import Path

from rci.errors import RciError

TOKEN_HEADER = "rci-token"


class Access(enum.Enum):
    READ = "read"  # detect, status, the leaf models that touch no library
    WRITE = "write"  # ingest, delete


class UnauthenticatedError(RciError):
    """The server needs a token and the request carries none."""


class PermissionDeniedError(RciError):
    """The request's token does not grant what it asks for."""


def _secret(name: str) -> str | None:
    """$NAME, else the contents of the file $NAME_FILE (stripped); None when neither is
    set. An empty one is refused: it would leave the door open."""
    value = os.environ.get(name)
    path = os.environ.get(name + "_FILE")
    if value is None and path:
        value = Path(path).read_text()
    if value is not None and not value.strip():
        raise ValueError(f"{name} is set but empty")
    return value.strip() if value is not None else None


@dataclass(frozen=True)
class Tokens:
    """The server's tokens; None means that kind of access needs no token."""

    write: str | None = None
    read: str | None = None

    def __post_init__(self) -> None:
        if self.read and not self.write:
            raise ValueError("a read token without a write token would leave writes open")

    @classmethod
    def from_environment(cls) -> Tokens:
        """$RCI_WRITE_TOKEN and $RCI_READ_TOKEN, or files named by $..._FILE."""
        return cls(write=_secret("RCI_WRITE_TOKEN"), read=_secret("RCI_READ_TOKEN"))

    def check(self, presented: str | None, access: Access) -> None:
        """Raise unless `presented` grants `access`; the write token grants reads too."""
        granted = [t for t in (self.write, self.read if access is Access.READ else None) if t]
        if access is Access.READ and self.read is None:
            return
        if access is Access.WRITE and self.write is None:
            return
        if not presented:
            raise UnauthenticatedError(
                f"unauthenticated: this server needs a {access.value} token "
                f"(the {TOKEN_HEADER} header; `rci` sends $RCI_TOKEN or --token-file)"
            )
        # Digests compared in constant time: the time taken tells neither how much of a
        # guess was right nor how long the token is.
        offered = hashlib.sha256(presented.encode()).digest()
        if not any(
            hmac.compare_digest(offered, hashlib.sha256(t.encode()).digest()) for t in granted
        ):
            raise PermissionDeniedError(
                f"permission denied: the {TOKEN_HEADER} token does not allow {access.value}s"
            )
