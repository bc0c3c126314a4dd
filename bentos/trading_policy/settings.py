"""The serving process's settings: read from its environment once, each bad value named.

The deployer (``resources.serving``) writes these variables with ``to_env`` and the
service reads them with ``from_env``, so the two sides share one list of names.
Serving gets the public key and the API tokens, never the private signing key:
``serving_environment`` passes a serving process only the variables on an allow
list, and ``from_env`` refuses to start beside one (``private_key_exposure``).
"""

import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from tradeops_assets.core import scheduling
from tradeops_assets.core.errors import ConfigError
from tradeops_assets.core.tokens import check_token

TOKEN_ENV = "TRADEOPS_API_TOKEN"
TOKENS_FILE_ENV = "TRADEOPS_API_TOKENS_FILE"
PUBLIC_KEY_ENV = "TRADEOPS_SIGNING_PUBLIC_KEY"
MODEL_ENV = "TRADEOPS_POLICY_MODEL"
LOG_ENV = "TRADEOPS_PREDICTION_LOG"
WORKERS_ENV = "TRADEOPS_SERVE_WORKERS"
PASSED_THROUGH = re.compile(
    r"^(PATH|HOME|USER|LOGNAME|LANG|LC_[A-Z]+|TZ|TMPDIR|PYTHONPATH|PYTHONHASHSEED|VIRTUAL_ENV"
    r"|BENTOML_[A-Z_]+|PROMETHEUS_MULTIPROC_DIR|OMP_NUM_THREADS|TRADEOPS_(API_TOKEN|API_TOKENS_FILE"
    r"|SIGNING_PUBLIC_KEY|POLICY_MODEL|PREDICTION_LOG[A-Z_]*|MAX_[A-Z_]+|SERVE_[A-Z_]+))$"
)
PRIVATE_MARKERS = ("PRIVATE KEY-----",)
BAR_JSON_BYTES = 200  # one bar, ISO timestamp and five 17-digit numbers, pretty-printed


SCHED_ENV = "TRADEOPS_SERVE_SCHED"
"""``batch`` (the default) or ``normal``: the CPU policy of the door and the bento
(``core.scheduling``)."""


def scheduling_policy(env: Mapping[str, str]) -> str:
    policy = env.get(SCHED_ENV, "batch")
    if policy not in scheduling.POLICIES:
        expected = " or ".join(map(repr, scheduling.POLICIES))
        raise ConfigError(f"{SCHED_ENV}={policy!r}: expected {expected}")
    return policy


def serving_environment(base: Mapping[str, str], **extra: str) -> dict[str, str]:
    """What a serving process may see of ``base``: an allow list, so a secret added to the
    deployer's environment later (a signing key, cloud credentials) never follows."""
    return {k: v for k, v in base.items() if PASSED_THROUGH.match(k)} | extra


def private_key_exposure(env: Mapping[str, str]) -> list[str]:
    """Names of variables that hold, or are named for, a private signing key."""
    return sorted(
        name
        for name, value in env.items()
        if ("SIGNING_KEY" in name and "PUBLIC" not in name)
        or any(marker in value for marker in PRIVATE_MARKERS)
    )


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


def default_workers() -> int:
    """One worker per core this process may use, and never fewer than two: BentoML replaces
    a worker that dies, and meanwhile the other keeps answering."""
    return max(2, len(os.sched_getaffinity(0)))


def workers_from_env(env: Mapping[str, str] = os.environ) -> int:
    """Read at import, because BentoML takes the worker count in the service decorator."""
    return _number(env, WORKERS_ENV, int, default_workers(), 1)


@dataclass(frozen=True)
class ServeSettings:
    api_token: str | None
    """One token for the client named ``default``; named clients live in ``tokens_file``."""
    public_key: str
    prediction_log: Path
    model_tag: str | None = None
    """If set, must name the model the bento was signed with; it can never choose another."""
    tokens_file: Path | None = None
    max_bars: int = 4096
    max_batch: int = 1000
    max_batch_bars: int = 65_536
    """Bars across one batch (100 symbols of 655 bars): with the body limit, what bounds
    a batch's work, since max_batch requests of max_bars each would be 4 million bars."""
    max_body_bytes: int = 65_536 * BAR_JSON_BYTES + 65_536
    """The largest legal batch with every number at full float precision, and headroom."""
    max_in_flight: int = 256
    """Requests a worker holds at once; beyond it a fast 503 with Retry-After."""
    log_flush_rows: int = 10_000
    log_flush_seconds: float = 5.0
    workers: int = field(default_factory=default_workers)

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> "ServeSettings":
        if exposed := private_key_exposure(env):
            raise ConfigError(
                f"{', '.join(exposed)} in the serving environment: serving never holds the "
                "private signing key"
            )
        token = env.get(TOKEN_ENV, "")
        tokens_file = env.get(TOKENS_FILE_ENV, "").strip()
        if not token.strip() and not tokens_file:
            raise ConfigError(
                f"neither {TOKEN_ENV} nor {TOKENS_FILE_ENV} is set: the endpoint will not serve "
                "without auth"
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
            api_token=check_token(token, TOKEN_ENV) if token.strip() else None,
            public_key=public_key,
            prediction_log=Path(log),
            model_tag=env.get(MODEL_ENV) or None,
            tokens_file=Path(tokens_file) if tokens_file else None,
            max_bars=_number(env, "TRADEOPS_MAX_BARS", int, cls.max_bars, 1),
            max_batch=_number(env, "TRADEOPS_MAX_BATCH", int, cls.max_batch, 1),
            max_batch_bars=_number(env, "TRADEOPS_MAX_BATCH_BARS", int, cls.max_batch_bars, 1),
            max_body_bytes=_number(env, "TRADEOPS_MAX_BODY_BYTES", int, cls.max_body_bytes, 1024),
            max_in_flight=_number(env, "TRADEOPS_MAX_IN_FLIGHT", int, cls.max_in_flight, 1),
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
            PUBLIC_KEY_ENV: self.public_key,
            LOG_ENV: str(self.prediction_log),
            "TRADEOPS_MAX_BARS": str(self.max_bars),
            "TRADEOPS_MAX_BATCH": str(self.max_batch),
            "TRADEOPS_MAX_BATCH_BARS": str(self.max_batch_bars),
            "TRADEOPS_MAX_BODY_BYTES": str(self.max_body_bytes),
            "TRADEOPS_MAX_IN_FLIGHT": str(self.max_in_flight),
            "TRADEOPS_PREDICTION_LOG_FLUSH_ROWS": str(self.log_flush_rows),
            "TRADEOPS_PREDICTION_LOG_FLUSH_SECONDS": str(self.log_flush_seconds),
            WORKERS_ENV: str(self.workers),
        }
        if self.api_token:
            env[TOKEN_ENV] = self.api_token
        if self.tokens_file:
            env[TOKENS_FILE_ENV] = str(self.tokens_file)
        if self.model_tag:
            env[MODEL_ENV] = self.model_tag
        return env
