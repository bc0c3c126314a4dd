"""Which deployment this process serves, resolved once from the environment.

Only ``definitions.py`` (and the CLI, which is its own process) call
``Deployment.from_env``; everything else receives the resolved object, so a run
can never mix the settings of two deployments.
"""

import os
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from tradeops_assets.core.errors import ConfigError
from tradeops_assets.core.sources import (
    DEFAULT_SOURCE,
    MarketSource,
    Span,
    load_bars,
    parse_source,
    span_of,
)

ENVIRONMENTS = ("local",)
DEFAULT_HOME = ".tradeops"


SECRET_ENVS = ("TRADEOPS_SIGNING_KEY", "TRADEOPS_SIGNING_PUBLIC_KEY", "TRADEOPS_API_TOKEN")


@dataclass(frozen=True)
class Deployment:
    name: str
    home: Path
    market_source: str
    serve_port: int = 3000

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> "Deployment":
        name = env.get("TRADEOPS_ENV", "local")
        if name not in ENVIRONMENTS:
            raise ConfigError(
                f"TRADEOPS_ENV={name!r}: this build provides {list(ENVIRONMENTS)}; the prod "
                "deployment (S3, Postgres, ECS) arrives with the production-path work"
            )
        home = Path(env.get("TRADEOPS_HOME", DEFAULT_HOME)).expanduser().resolve()
        port = env.get("TRADEOPS_SERVE_PORT", "3000")
        if not port.isdigit() or not 0 < int(port) < 65536:
            raise ConfigError(f"TRADEOPS_SERVE_PORT={port!r} is not a TCP port number")
        return cls(
            name=name,
            home=home,
            market_source=env.get("TRADEOPS_MARKET_SOURCE", DEFAULT_SOURCE),
            serve_port=int(port),
        )

    def prepare_process(self, env=os.environ) -> None:
        """Local only: BentoML's store under TRADEOPS_HOME, and dev secrets if none are set.

        The local deployment's secret store is ``TRADEOPS_HOME/keys`` (files readable by
        the owner only), created on first use; resources still read every secret through
        ``dg.EnvVar``. In prod the task definition injects them from the secret manager.
        """
        env["BENTOML_HOME"] = str(self.bentoml_home)
        env.setdefault("MLFLOW_TRACKING_URI", self.mlflow_uri)
        env.setdefault("BENTOML_DO_NOT_TRACK", "True")
        if all(name in env for name in SECRET_ENVS):
            return
        from tradeops_assets.core.signing import DevKeypair

        keys = self.home / "keys"
        keys.mkdir(parents=True, exist_ok=True, mode=0o700)
        files = {name: keys / name.lower().removeprefix("tradeops_") for name in SECRET_ENVS}
        if not files["TRADEOPS_SIGNING_KEY"].exists():
            pair = DevKeypair.generate()
            _write_secret(files["TRADEOPS_SIGNING_KEY"], pair.private_pem.decode())
            _write_secret(files["TRADEOPS_SIGNING_PUBLIC_KEY"], pair.public_b64)
        if not files["TRADEOPS_API_TOKEN"].exists():
            import secrets

            _write_secret(files["TRADEOPS_API_TOKEN"], secrets.token_urlsafe(32))
        for name, path in files.items():
            env.setdefault(name, path.read_text())

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
    def dagster_home(self) -> Path:
        return self.home / "dagster"

    @property
    def datasets_root(self) -> Path:
        return self.home / "datasets"

    @property
    def dvc_remote(self) -> str:
        return str(self.home / "dvc-remote")

    @property
    def mlflow_uri(self) -> str:
        return f"sqlite:///{self.home / 'mlflow' / 'mlflow.db'}"

    def source(self) -> MarketSource:
        return parse_source(self.market_source)

    def history(self) -> Span:
        return span_of(load_bars(self.market_source))


def month_start(moment: datetime) -> str:
    return moment.strftime("%Y-%m-01")


def _write_secret(path: Path, value: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(value)
