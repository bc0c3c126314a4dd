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


@dataclass(frozen=True)
class Deployment:
    name: str
    home: Path
    market_source: str

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> "Deployment":
        name = env.get("TRADEOPS_ENV", "local")
        if name not in ENVIRONMENTS:
            raise ConfigError(
                f"TRADEOPS_ENV={name!r}: this build provides {list(ENVIRONMENTS)}; the prod "
                "deployment (S3, Postgres, ECS) arrives with the production-path work"
            )
        home = Path(env.get("TRADEOPS_HOME", DEFAULT_HOME)).expanduser().resolve()
        return cls(
            name=name, home=home, market_source=env.get("TRADEOPS_MARKET_SOURCE", DEFAULT_SOURCE)
        )

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
