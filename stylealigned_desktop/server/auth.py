"""The server's bearer token: made on the first start, kept 0600 in the user config folder."""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from pathlib import Path

from .. import userfiles
from ..paths import config_dir

TOKEN_FILE = "server-token"
MAX_TOKEN_BYTES = 4 * userfiles.KIB


def default_token_path() -> Path:
    return config_dir() / TOKEN_FILE


def load_or_create_token(path: str | Path | None = None) -> tuple[str, bool]:
    """The token stored at ``path`` (default: the user config folder), made there first if there
    is none. Returns ``(token, created)``; a new file is readable by its owner only (0600)."""
    path = Path(path) if path is not None else default_token_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    token = secrets.token_urlsafe(32)
    try:
        # O_EXCL: two servers starting at once never overwrite each other's token.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return read_token(path), False
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(token + "\n")
    return token, True


def read_token(path: str | Path) -> str:
    """The token in a token file; ValueError (one line) if it is missing or empty."""
    path = Path(path).expanduser()
    try:
        token = userfiles.read_text(path, MAX_TOKEN_BYTES).strip()
    except userfiles.UnreadableFile as error:
        if error.missing:
            raise ValueError(f"{path}: no such token file") from None
        raise ValueError(f"{path}: cannot read the token: {error}") from None
    if not token:
        raise ValueError(f"{path}: the token file is empty")
    return token


def token_digest(token: str) -> str:
    """What the server keeps of the token (its SHA-256): the token itself never leaves the
    process that read it, not even into Ray's deployment configuration."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def bearer_matches(header: str | None, digest: str) -> bool:
    """Whether an ``Authorization: Bearer`` header carries the token of this digest."""
    scheme, _, given = (header or "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(token_digest(given.strip()), digest)
