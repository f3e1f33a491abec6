"""The server's bearer token."""

import os
import stat

import pytest

from stylealigned_desktop.server.auth import (
    bearer_matches,
    default_token_path,
    load_or_create_token,
    read_token,
    token_digest,
)


def test_the_token_is_made_once_owner_only_and_then_read_back():
    token, created = load_or_create_token()
    assert created and len(token) >= 40
    path = default_token_path()
    assert path.is_file() and stat.S_IMODE(os.stat(path).st_mode) == 0o600
    again, created_again = load_or_create_token()
    assert (again, created_again) == (token, False)
    assert read_token(path) == token


def test_bearer_header_must_carry_exactly_the_token(tmp_path):
    token, _ = load_or_create_token(tmp_path / "t")
    digest = token_digest(token)
    assert token not in digest
    assert bearer_matches(f"Bearer {token}", digest) and bearer_matches(f"bearer {token}", digest)
    for header in (None, "", token, f"Bearer {token}x", f"Basic {token}", f"Bearer {token[:-1]}"):
        assert not bearer_matches(header, digest)


def test_missing_or_empty_token_files_are_one_line_errors(tmp_path):
    with pytest.raises(ValueError, match="no such token file"):
        read_token(tmp_path / "nope")
    (tmp_path / "empty").write_text("\n")
    with pytest.raises(ValueError, match="empty"):
        read_token(tmp_path / "empty")
