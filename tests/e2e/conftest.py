"""Runs the real Dagster CLI against a real local instance, as an engineer would."""

import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import dagster as dg
import polars as pl
import pytest

from resources.deployment import Deployment
from resources.serving import free_port, stop_deployment
from tradeops_assets.cli import materialize_command

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


@dataclass
class Pipeline:
    home: Path
    source: str
    serve_port: int = field(default_factory=free_port)
    extra_env: dict[str, str] = field(default_factory=dict)

    @property
    def deployment(self) -> Deployment:
        return Deployment(
            name="local", home=self.home, market_source=self.source, serve_port=self.serve_port
        )

    @property
    def env(self) -> dict[str, str]:
        """What the tradeops CLI derives for itself, as the Dagster CLI gets it from the CLI.

        MLFLOW_TRACKING_URI stays poisoned (tests/conftest.py): every MLflow call must
        name the pipeline's own store.
        """
        env = self.deployment.child_env()
        for name in ("BENTOML_HOME", "TRADEOPS_API_TOKEN", "TRADEOPS_SIGNING_KEY"):
            env.pop(name, None)
        return {**env, **self.extra_env}

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.serve_port}"

    def secret(self, name: str) -> str:
        return (self.home / "keys" / name).read_text()

    def stop_serving(self) -> None:
        """Stops what policy_deployment started, by the PIDs it recorded."""
        stop_deployment(self.home / "serving")

    def run(self, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            args, cwd=REPO, env=self.env, capture_output=True, text=True, timeout=600, check=False
        )

    def tradeops(self, *args: str) -> subprocess.CompletedProcess:
        """The CLI as a person runs it: only the TRADEOPS_* settings, nothing the Makefile
        used to derive (no DAGSTER_HOME); the CLI derives the rest from TRADEOPS_HOME."""
        env = {k: v for k, v in self.env.items() if k != "DAGSTER_HOME"}
        return subprocess.run(
            [str(BIN / "tradeops"), *args],
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )

    def register_months(self) -> list[str]:
        """Adds the source's months as partitions, as the demo and the sensor do first."""
        from resources.market_data import MarketDataResource
        from tradeops_assets.defs.market_data import partitions

        digests = MarketDataResource(source=self.source).month_digests()
        self.deployment.init()
        with self.instance() as instance:
            plan = partitions.plan_months(instance, digests)
            partitions.add_months(instance, plan)
        return plan.todo

    def materialize(
        self, select: str, partition_range: str | None = None, config: dict | None = None
    ):
        return self.run(
            *materialize_command(select, partition_range=partition_range, config=config)
        )

    def instance(self) -> dg.DagsterInstance:
        return dg.DagsterInstance.from_config(str(self.home / "dagster"))

    def materializations(self, asset: str) -> list[dg.EventLogEntry]:
        with self.instance() as instance:
            records = instance.fetch_materializations(dg.AssetKey(asset), limit=10_000).records
            return [r.event_log_entry for r in records]

    def check_evaluations(self) -> dict[str, object]:
        """The latest run's check evaluations, by check name."""
        with self.instance() as instance:
            run = instance.get_runs(limit=1)[0]
            logs = instance.all_logs(run.run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION)
            return {
                e.dagster_event.event_specific_data.check_name: e.dagster_event.event_specific_data
                for e in logs
            }


def new_home(parent: Path) -> Path:
    home = parent / "home"
    (home / "dagster").mkdir(parents=True, exist_ok=True)
    shutil.copy(REPO / "deploy" / "local" / "dagster.yaml", home / "dagster" / "dagster.yaml")
    return home


@pytest.fixture
def make_pipeline(tmp_path):
    made: list[Pipeline] = []

    def make(source: str) -> Pipeline:
        made.append(Pipeline(new_home(tmp_path), source))
        return made[-1]

    yield make
    for pipe in made:
        pipe.stop_serving()


def write_vendor_per_symbol(bars: pl.DataFrame, folder: Path) -> Path:
    """Yahoo-style files, one per symbol: Date, Open, High, Low, Close, Adj Close, Volume."""
    folder.mkdir(parents=True, exist_ok=True)
    for (symbol,), frame in bars.group_by("symbol", maintain_order=True):
        frame.select(
            pl.col("timestamp").dt.strftime("%Y-%m-%d").alias("Date"),
            (pl.col("open") / 0.98).alias("Open"),
            (pl.col("high") / 0.98).alias("High"),
            (pl.col("low") / 0.98).alias("Low"),
            (pl.col("close") / 0.98).alias("Close"),
            pl.col("close").alias("Adj Close"),
            pl.col("volume").alias("Volume"),
        ).write_csv(folder / f"{symbol}.csv")
    return folder


def write_vendor_per_day(bars: pl.DataFrame, folder: Path) -> Path:
    """Another vendor: one file per trading day, symbol in a 'Ticker' column, 'Vol' header."""
    folder.mkdir(parents=True, exist_ok=True)
    for (day,), frame in bars.group_by(pl.col("timestamp").dt.date(), maintain_order=True):
        frame.select(
            pl.col("symbol").alias("Ticker"),
            pl.col("timestamp").dt.strftime("%m/%d/%Y").alias("Date"),
            (pl.col("open") * 1.01).alias("Open"),
            (pl.col("high") * 1.01).alias("High"),
            (pl.col("low") * 1.01).alias("Low"),
            (pl.col("close") * 1.01).alias("Close"),
            pl.col("close").alias("Adj Close"),
            pl.col("volume").alias("Vol"),
        ).write_csv(folder / f"{day}.csv")
    return folder
