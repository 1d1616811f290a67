"""Tokens: which access each grants, and secrets that are set but empty."""

import pytest

from rci.serving.auth import Access, PermissionDeniedError, Tokens, UnauthenticatedError


def test_the_write_token_grants_reads_and_the_read_token_only_reads() -> None:
    tokens = Tokens(write="w" * 32, read="r" * 32)
    for presented in ("w" * 32, "r" * 32):
        tokens.check(presented, Access.READ)
    tokens.check("w" * 32, Access.WRITE)
    with pytest.raises(PermissionDeniedError, match="does not allow writes"):
        tokens.check("r" * 32, Access.WRITE)
    with pytest.raises(PermissionDeniedError):
        tokens.check("w" * 31, Access.READ)  # a prefix is no token
    with pytest.raises(UnauthenticatedError, match="needs a read token"):
        tokens.check(None, Access.READ)


def test_no_tokens_leave_everything_open_and_a_read_token_needs_a_write_one() -> None:
    Tokens().check(None, Access.WRITE)
    Tokens(write="w").check(None, Access.READ)
    with pytest.raises(ValueError, match="leave writes open"):
        Tokens(read="r")


def test_an_empty_secret_is_refused(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("RCI_WRITE_TOKEN", "  ")
    with pytest.raises(ValueError, match="RCI_WRITE_TOKEN is set but empty"):
        Tokens.from_environment()
    monkeypatch.delenv("RCI_WRITE_TOKEN")
    (tmp_path / "t").write_text("secret\n")
    monkeypatch.setenv("RCI_WRITE_TOKEN_FILE", str(tmp_path / "t"))
    assert Tokens.from_environment() == Tokens(write="secret")
