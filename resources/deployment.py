"""Which deployment this process serves, resolved once from the environment.

``definitions.py`` and the CLI call ``Deployment.from_env``; everything else
receives the resolved object, so a run can never mix the settings of two
deployments. Resolving reads the environment and nothing else: it writes no file
and sets no variable. ``init`` is the setup step that creates the local
instance's folders, run by ``make env`` and by every CLI command that needs them.

``prod`` (S3, PostgreSQL, ECS; resources/prod.py) reads where things are through
``dg.EnvVar`` in its resources; here it only notes which optional settings are
present, and keeps ``TRADEOPS_HOME`` (default: a scratch folder under the temp
directory, since a task's root filesystem is read-only) for scratch files alone.
"""

import os
import shutil
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from tradeops_assets.core.calendars import AUTO
from tradeops_assets.core.errors import ConfigError
from tradeops_assets.core.sources import DEFAULT_SOURCE

LOCAL = "local"
PROD = "prod"
ALERT_WEBHOOK_ENV = "TRADEOPS_ALERT_WEBHOOK"
S3_ENDPOINT_ENV = "AWS_ENDPOINT_URL_S3"
ECS_ENDPOINT_ENV = "AWS_ENDPOINT_URL_ECS"
"""boto3's own names for endpoints other than AWS's (the tests' loopback stand-ins)."""
ROLLOUT_TIMEOUT_ENV = "TRADEOPS_ROLLOUT_TIMEOUT_S"
DEFAULT_ROLLOUT_TIMEOUT_S = 900.0
DEPLOYMENTS = (LOCAL, PROD)
DEFAULT_HOME = ".tradeops"
DEFAULT_SERVE_PORT = 3000
REPO_ROOT = Path(__file__).resolve().parents[1]
LOCAL_INSTANCE_YAML = REPO_ROOT / "deploy" / "local" / "dagster.yaml"
PROD_INSTANCE_YAML = REPO_ROOT / "deploy" / "prod" / "dagster.yaml"
INSTANCE_YAML = {LOCAL: LOCAL_INSTANCE_YAML, PROD: PROD_INSTANCE_YAML}
SPARE_ENV = "TRADEOPS_SERVE_SPARE"


@dataclass(frozen=True)
class Deployment:
    name: str
    home: Path
    market_source: str = DEFAULT_SOURCE
    serve_port: int = DEFAULT_SERVE_PORT
    calendar: str = AUTO
    symbol_calendars: tuple[tuple[str, str], ...] = ()
    alert_webhook: bool = False
    """Whether TRADEOPS_ALERT_WEBHOOK is set; the URL itself is a secret read by dg.EnvVar."""
    dagster_ui: str = "http://127.0.0.1:3001"
    mlflow_ui: str = "http://127.0.0.1:5000"
    """Where people open the two UIs: the base of the links each tool shows to the other."""
    s3_endpoint: bool = False
    ecs_endpoint: bool = False
    """prod: whether AWS_ENDPOINT_URL_S3 / _ECS are set (the resources read them by dg.EnvVar)."""
    rollout_timeout_s: float = DEFAULT_ROLLOUT_TIMEOUT_S
    """prod: how long policy_deployment waits for ECS to finish rolling the endpoint over."""
    instance_home: Path | None = None
    """prod: DAGSTER_HOME as the task sets it; locally the instance lives under ``home``."""
    serve_spare: bool = True
    """local: whether the front door keeps a spare bento ready (``TRADEOPS_SERVE_SPARE``)."""

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> "Deployment":
        name = env.get("TRADEOPS_ENV", LOCAL)
        if name not in DEPLOYMENTS:
            raise ConfigError(
                f"TRADEOPS_ENV={name!r}: this build provides {list(DEPLOYMENTS)} "
                "(local: everything under TRADEOPS_HOME; prod: S3, PostgreSQL, ECS)"
            )
        default_home = DEFAULT_HOME if name == LOCAL else Path(tempfile.gettempdir(), "tradeops")
        home = Path(env.get("TRADEOPS_HOME") or default_home).expanduser().resolve()
        port = env.get("TRADEOPS_SERVE_PORT", str(DEFAULT_SERVE_PORT))
        if not port.isdigit() or not 0 < int(port) < 65536:
            raise ConfigError(f"TRADEOPS_SERVE_PORT={port!r} is not a TCP port number")
        return cls(
            name=name,
            home=home,
            market_source=env.get("TRADEOPS_MARKET_SOURCE") or DEFAULT_SOURCE,
            serve_port=int(port),
            calendar=env.get("TRADEOPS_MARKET_CALENDAR") or AUTO,
            symbol_calendars=_pairs(env, "TRADEOPS_SYMBOL_CALENDARS"),
            alert_webhook=bool(env.get(ALERT_WEBHOOK_ENV)),
            dagster_ui=env.get("TRADEOPS_DAGSTER_UI_URL")
            or f"http://127.0.0.1:{env.get('TRADEOPS_UI_PORT', '3001')}",
            mlflow_ui=env.get("TRADEOPS_MLFLOW_UI_URL") or "http://127.0.0.1:5000",
            serve_spare=_switch(env, SPARE_ENV, default=True),
            **(_prod_settings(env, home) if name == PROD else {}),
        )

    @property
    def dagster_home(self) -> Path:
        return self.instance_home or self.home / "dagster"

    @property
    def datasets_root(self) -> Path:
        return self.home / "datasets"

    @property
    def dvc_remote(self) -> str:
        return str(self.home / "dvc-remote")

    @property
    def mlflow_uri(self) -> str:
        return f"sqlite:///{self.home / 'mlflow' / 'mlflow.db'}"

    @property
    def mlflow_artifacts(self) -> Path:
        return self.home / "mlflow" / "artifacts"

    @property
    def bentoml_home(self) -> Path:
        return self.home / "bentoml"

    @property
    def serving_root(self) -> Path:
        return self.home / "serving"

    @property
    def prediction_log(self) -> Path:
        return self.home / "predictions"

    @property
    def keys_root(self) -> Path:
        return self.home / "keys"

    def child_env(self, base: Mapping[str, str] = os.environ) -> dict[str, str]:
        """The environment for the Dagster processes the CLI starts: this deployment's, whole."""
        return {
            **base,
            "TRADEOPS_ENV": self.name,
            "TRADEOPS_HOME": str(self.home),
            "TRADEOPS_MARKET_SOURCE": self.market_source,
            "TRADEOPS_SERVE_PORT": str(self.serve_port),
            SPARE_ENV: "1" if self.serve_spare else "0",
            "TRADEOPS_MARKET_CALENDAR": self.calendar,
            "TRADEOPS_SYMBOL_CALENDARS": ",".join(f"{s}={c}" for s, c in self.symbol_calendars),
            "DAGSTER_HOME": str(self.dagster_home),
            "DAGSTER_DISABLE_TELEMETRY": "1",
        }

    def init(self) -> None:
        """Creates the Dagster instance's home and configuration if they are missing."""
        self.dagster_home.mkdir(parents=True, exist_ok=True)
        instance_yaml = self.dagster_home / "dagster.yaml"
        if not instance_yaml.exists():
            shutil.copyfile(INSTANCE_YAML[self.name], instance_yaml)


def _switch(env: Mapping[str, str], name: str, default: bool) -> bool:
    value = env.get(name, "").strip().lower()
    if not value:
        return default
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"{name}={env[name]!r}: use 1 or 0")


def _prod_settings(env: Mapping[str, str], home: Path) -> dict:
    """What prod notes itself: which optional settings are present, never their values."""
    given = env.get("DAGSTER_HOME")
    instance_home = Path(given).expanduser().resolve() if given else None
    timeout = env.get(ROLLOUT_TIMEOUT_ENV) or str(DEFAULT_ROLLOUT_TIMEOUT_S)
    try:
        rollout_timeout_s = float(timeout)
    except ValueError:
        raise ConfigError(f"{ROLLOUT_TIMEOUT_ENV}={timeout!r} is not a number of seconds") from None
    return {
        "s3_endpoint": bool(env.get(S3_ENDPOINT_ENV)),
        "ecs_endpoint": bool(env.get(ECS_ENDPOINT_ENV)),
        "instance_home": None if instance_home == home / "dagster" else instance_home,
        "rollout_timeout_s": rollout_timeout_s,
    }


def _pairs(env: Mapping[str, str], name: str) -> tuple[tuple[str, str], ...]:
    """'AAPL=XNYS,EURUSD=24x5' as pairs; anything else is refused naming the variable."""
    text = env.get(name)
    pairs = []
    for item in filter(None, (part.strip() for part in (text or "").split(","))):
        symbol, sep, calendar = item.partition("=")
        if not sep or not symbol.strip() or not calendar.strip():
            raise ConfigError(f"{name}={text!r}: expected SYMBOL=CALENDAR pairs, got {item!r}")
        pairs.append((symbol.strip(), calendar.strip()))
    return tuple(pairs)
