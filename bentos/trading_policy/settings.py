"""The serving process's settings: read from its environment once, each bad value named.

The deployer (``resources.serving``) writes these variables with ``to_env`` and the
service reads them with ``from_env``, so the two sides share one list of names.
Serving gets the public key and the API token, never the private signing key.
"""

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from tradeops_assets.core.errors import ConfigError

TOKEN_ENV = "TRADEOPS_API_TOKEN"
PUBLIC_KEY_ENV = "TRADEOPS_SIGNING_PUBLIC_KEY"
MODEL_ENV = "TRADEOPS_POLICY_MODEL"
LOG_ENV = "TRADEOPS_PREDICTION_LOG"
WORKERS_ENV = "TRADEOPS_SERVE_WORKERS"
MIN_TOKEN_BYTES = 32  # a guessable token is no auth at all

T = TypeVar("T", int, float)


def _number(env: Mapping[str, str], name: str, kind: Callable[[str], T], default: T, low: T) -> T:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = kind(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not a {kind.__name__}") from None
    if value < low:
        raise ConfigError(f"{name}={raw!r} must be >= {low}")
    return value


def workers_from_env(env: Mapping[str, str] = os.environ) -> int:
    """Read at import, because BentoML takes the worker count in the service decorator."""
    return _number(env, WORKERS_ENV, int, 1, 1)


@dataclass(frozen=True)
class ServeSettings:
    api_token: str
    public_key: str
    prediction_log: Path
    model_tag: str | None = None
    """The model the bento was signed with is served unless this names one explicitly."""
    max_bars: int = 4096
    max_batch: int = 1000
    max_body_bytes: int = 64 * 1024 * 1024
    log_flush_rows: int = 10_000
    log_flush_seconds: float = 5.0
    workers: int = 1

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> "ServeSettings":
        token = env.get(TOKEN_ENV, "").strip()
        if not token:
            raise ConfigError(f"{TOKEN_ENV} is not set: the endpoint will not serve without auth")
        if len(token.encode()) < MIN_TOKEN_BYTES:
            raise ConfigError(
                f"{TOKEN_ENV} is {len(token.encode())} bytes; a bearer token needs at least "
                f"{MIN_TOKEN_BYTES}, e.g. secrets.token_urlsafe(32)"
            )
        public_key = env.get(PUBLIC_KEY_ENV, "").strip()
        if not public_key:
            raise ConfigError(
                f"{PUBLIC_KEY_ENV} is not set: the endpoint verifies the policy bundle against it "
                "and will not serve an unverified policy"
            )
        log = env.get(LOG_ENV, "").strip()
        if not log:
            raise ConfigError(f"{LOG_ENV} is not set: every decision must be logged somewhere")
        return cls(
            api_token=token,
            public_key=public_key,
            prediction_log=Path(log),
            model_tag=env.get(MODEL_ENV) or None,
            max_bars=_number(env, "TRADEOPS_MAX_BARS", int, cls.max_bars, 1),
            max_batch=_number(env, "TRADEOPS_MAX_BATCH", int, cls.max_batch, 1),
            max_body_bytes=_number(env, "TRADEOPS_MAX_BODY_BYTES", int, cls.max_body_bytes, 1024),
            log_flush_rows=_number(
                env, "TRADEOPS_PREDICTION_LOG_FLUSH_ROWS", int, cls.log_flush_rows, 1
            ),
            log_flush_seconds=_number(
                env, "TRADEOPS_PREDICTION_LOG_FLUSH_SECONDS", float, cls.log_flush_seconds, 0.0
            ),
            workers=workers_from_env(env),
        )

    def to_env(self) -> dict[str, str]:
        env = {
            TOKEN_ENV: self.api_token,
            PUBLIC_KEY_ENV: self.public_key,
            LOG_ENV: str(self.prediction_log),
            "TRADEOPS_MAX_BARS": str(self.max_bars),
            "TRADEOPS_MAX_BATCH": str(self.max_batch),
            "TRADEOPS_MAX_BODY_BYTES": str(self.max_body_bytes),
            "TRADEOPS_PREDICTION_LOG_FLUSH_ROWS": str(self.log_flush_rows),
            "TRADEOPS_PREDICTION_LOG_FLUSH_SECONDS": str(self.log_flush_seconds),
            WORKERS_ENV: str(self.workers),
        }
        if self.model_tag:
            env[MODEL_ENV] = self.model_tag
        return env
