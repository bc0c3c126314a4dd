"""The pipeline's secrets: the bento signing key pair and the traders' API token.

Resources that need a secret depend on ``Secrets`` and call its methods; which
implementation answers is the deployment's choice. Locally they are dev secrets
under ``TRADEOPS_HOME/keys`` (owner-only files), created by the first resource
that asks, never by importing anything. In prod an implementation reads them
through ``dg.EnvVar`` from the task's secret injection.
"""

import fcntl
import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import dagster as dg

from tradeops_assets.core.errors import ConfigError
from tradeops_assets.core.signing import DevKeypair
from tradeops_assets.core.tokens import write_tokens

SIGNING_KEY = "signing_key"
PUBLIC_KEY = "signing_public_key"
API_TOKEN = "api_token"
API_TOKENS = "api_tokens.json"


class Secrets(dg.ConfigurableResource):
    """What every deployment's secret store answers."""

    def signing_key(self) -> str:
        raise NotImplementedError

    def public_key(self) -> str:
        raise NotImplementedError

    def api_token(self) -> str:
        raise NotImplementedError

    def tokens_file(self) -> Path | None:
        """The named clients' tokens (``core.tokens``), re-read by the endpoint on change."""
        return None


class DevSecrets(Secrets):
    """Local dev secrets in ``root``: generated once, mode 0600, shared by every local process."""

    root: str

    def signing_key(self) -> str:
        return self._read(SIGNING_KEY)

    def public_key(self) -> str:
        return self._read(PUBLIC_KEY)

    def api_token(self) -> str:
        return self._read(API_TOKEN)

    def tokens_file(self) -> Path:
        """``tradeops token add|revoke`` edits it; none yet means no named client yet."""
        path = self.path(API_TOKENS)
        if not path.exists():
            with self._locked():
                if not path.exists():
                    write_tokens(path, {})
        return path

    def path(self, name: str) -> Path:
        return Path(self.root) / name

    @classmethod
    def holding(cls, root: str | Path, pair: DevKeypair, api_token: str) -> "DevSecrets":
        """Secrets of a given key pair and token (tests and the bench know theirs)."""
        Path(root).mkdir(parents=True, exist_ok=True, mode=0o700)
        secrets_ = cls(root=str(root))
        _write_secret(secrets_.path(PUBLIC_KEY), pair.public_b64)
        _write_secret(secrets_.path(SIGNING_KEY), pair.private_pem.decode())
        _write_secret(secrets_.path(API_TOKEN), api_token)
        return secrets_

    def _read(self, name: str) -> str:
        if not self.path(name).exists():
            self._create()
        return self.path(name).read_text().strip()

    @contextmanager
    def _locked(self) -> Iterator[None]:
        Path(self.root).mkdir(parents=True, exist_ok=True, mode=0o700)
        with open(Path(self.root) / ".lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            yield

    def _create(self) -> None:
        """Creates what is missing under a lock: two processes never make two key pairs."""
        with self._locked():
            if not self.path(SIGNING_KEY).exists():
                pair = DevKeypair.generate()
                _write_secret(self.path(PUBLIC_KEY), pair.public_b64)
                _write_secret(self.path(SIGNING_KEY), pair.private_pem.decode())
            if not self.path(API_TOKEN).exists():
                _write_secret(self.path(API_TOKEN), secrets.token_urlsafe(32))


def _write_secret(path: Path, value: str) -> None:
    """Owner-only, and atomic: a reader sees the whole secret or no file."""
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(value)
    os.replace(tmp, path)


SIGNING_KEY_ENV = "TRADEOPS_SIGNING_KEY"
PUBLIC_KEY_ENV = "TRADEOPS_SIGNING_PUBLIC_KEY"
API_TOKEN_ENV = "TRADEOPS_API_TOKEN"


class EnvSecrets(Secrets):
    """prod: the secrets the task's secret injection puts in its environment.

    Each field is a ``dg.EnvVar``, so the Dagster UI and run config name the variable,
    never its value; nothing is written to disk. A task without the private key (every
    serving task, and any run that packages nothing) gets a clear refusal, not a key.
    """

    signing_key_pem: str = ""
    public_key_b64: str = ""
    api_token_value: str = ""

    def signing_key(self) -> str:
        return _required(self.signing_key_pem, SIGNING_KEY_ENV, "the bento signing key")

    def public_key(self) -> str:
        return _required(self.public_key_b64, PUBLIC_KEY_ENV, "the signing public key")

    def api_token(self) -> str:
        return _required(self.api_token_value, API_TOKEN_ENV, "the traders' API token")


def _required(value: str, env: str, what: str) -> str:
    if not value.strip():
        raise ConfigError(f"{what} is not in this task's environment ({env} is empty)")
    return value.strip()
