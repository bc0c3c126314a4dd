"""Named bearer tokens: one per trading client, so one can be rotated or revoked alone.

The tokens file is a JSON object ``{"client name": "token", ...}``, owner-only. The
endpoint re-reads it when it changes, so adding or revoking a client needs no
redeploy; the CLI (``tradeops token``) writes it atomically. A token is looked up
by its SHA-256, so the comparison's timing depends on a hash, not on the secret,
and the prediction log records which client asked.
"""

import hashlib
import json
import os
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from tradeops_assets.core.errors import ConfigError

MIN_TOKEN_BYTES = 32  # a guessable token is no auth at all
CLIENT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
DEFAULT_CLIENT = "default"


def check_token(token: str, where: str) -> str:
    """The token as it will be compared: stripped, and long enough to be a secret."""
    token = token.strip()
    if not token:
        raise ConfigError(f"{where} is empty: the endpoint will not serve without auth")
    if len(token.encode()) < MIN_TOKEN_BYTES:
        raise ConfigError(
            f"{where} is {len(token.encode())} bytes; a bearer token needs at least "
            f"{MIN_TOKEN_BYTES}, e.g. secrets.token_urlsafe(32)"
        )
    if any(c.isspace() for c in token):
        raise ConfigError(f"{where} holds whitespace; a bearer token is one word")
    return token


def check_client(name: str, where: str) -> str:
    if not isinstance(name, str) or not CLIENT_NAME.match(name):
        raise ConfigError(
            f"{where}: client name {name!r} must be 1-64 letters, digits, '_', '.' or '-'"
        )
    return name


def _digest(header_token: bytes) -> bytes:
    return hashlib.sha256(header_token).digest()


@dataclass(frozen=True)
class TokenSet:
    """Who each accepted token belongs to, keyed by the hash of ``Bearer <token>``."""

    by_digest: Mapping[bytes, str]

    @classmethod
    def of(cls, tokens: Mapping[str, str], where: str) -> "TokenSet":
        by_digest: dict[bytes, str] = {}
        for client, token in tokens.items():
            check_client(client, where)
            token = check_token(token, f"{where}: token of {client!r}")
            key = _digest(f"Bearer {token}".encode())
            if key in by_digest:
                raise ConfigError(f"{where}: {client!r} and {by_digest[key]!r} share a token")
            by_digest[key] = client
        return cls(by_digest)

    def client(self, authorization: bytes) -> str | None:
        """The client an ``Authorization`` header value belongs to, or None."""
        return self.by_digest.get(_digest(authorization))

    def __len__(self) -> int:
        return len(self.by_digest)


def read_tokens(path: Path | str) -> dict[str, str]:
    """The tokens file's clients and tokens; a malformed file is named, never half-read."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"tokens file {path} does not exist") from None
    except (OSError, ValueError) as exc:
        raise ConfigError(f"tokens file {path} cannot be read: {exc}") from None
    if not isinstance(data, dict) or not all(isinstance(v, str) for v in data.values()):
        raise ConfigError(f'tokens file {path} must be a JSON object {{"client": "token"}}')
    return data


def write_tokens(path: Path | str, tokens: Mapping[str, str]) -> None:
    """Owner-only and atomic: the endpoint reads the old set or the new one, never half."""
    path = Path(path)
    TokenSet.of(tokens, str(path))
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        json.dump(dict(sorted(tokens.items())), out, indent=2)
    os.replace(tmp, path)


def new_token() -> str:
    return secrets.token_urlsafe(32)
