"""The whole graph with TRADEOPS_ENV=prod, through the real Dagster CLI, against the
stand-ins: market files on S3, the instance in PostgreSQL, MLflow as a tracking server
(PostgreSQL + S3), every store on S3 under SSE-KMS, the audit log in an Object Lock
bucket, and the endpoint an ECS service rolled onto each new bento.

Training runs at the smallest settings the e2e tests use, and the promotion gate is
configured to pass any policy: its judgement is tested in tests/core and tests/e2e; this
test is about where everything is stored and that nothing stored is ever replaced.
"""

import json
import subprocess
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import polars as pl
import pytest
from dagster._serdes import serialize_value

from resources.deployment import Deployment
from resources.prod import prod_resources
from resources.s3_stores import S3AuditTrail, S3DatasetStore
from tests.e2e.conftest import write_vendor_per_symbol
from tests.prod.conftest import BUCKETS, CLUSTER, SERVING_SERVICE, World, environment
from tests.prod.test_stores import prediction_rows
from tradeops_assets.cli import downstream, materialize_command
from tradeops_assets.core import features
from tradeops_assets.core.synthetic import SyntheticSpec, generate
from tradeops_assets.defs.market_data import partitions
from tradeops_assets.keys import (
    CHAIN,
    MARKET_BARS,
    MARKET_FEATURES,
    MONITORING,
    MONITORING_GROUP,
    POLICY_BENTO,
)

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("prod")]
REPO = Path(__file__).resolve().parents[2]
DAY = "2025-03-04"
CONFIG = {
    "ops": {
        "trained_policy": {"config": {"timesteps": 4096, "n_envs": 8, "episode_bars": 64}},
        "backtest_report": {"config": {"folds": 2, "fold_timesteps": 4096}},
        "backtest_report_promotion_gate": {
            "config": {
                "baseline_margin": -1e6,
                "champion_margin": -1e6,
                "min_fold_win_rate": 0.0,
                "max_drawdown": 1.0,
                "max_turnover": 1e9,
            }
        },
    }
}
OURS = ("raw", "features", "artifacts", "predictions", "audit")
"""The buckets the pipeline writes (the landing bucket is the vendor's)."""


@dataclass
class ProdPipeline:
    world: World
    env: dict[str, str]
    name: str
    tmp: Path

    @property
    def source(self) -> str:
        return f"s3://{BUCKETS['landing']}/{self.name}/vendor"

    def drop(self, bars: pl.DataFrame) -> None:
        """The vendor's files, one per symbol, as they land in the landing bucket."""
        folder = write_vendor_per_symbol(bars, self.tmp / f"vendor-{bars.height}")
        for path in sorted(folder.iterdir()):
            self.world.s3().put_object(
                Bucket=BUCKETS["landing"],
                Key=f"{self.name}/vendor/{path.name}",
                Body=path.read_bytes(),
            )

    @contextmanager
    def resources(self, *keys: str):
        """The prod resources themselves, resolved from this pipeline's environment."""
        with environment(self.env):
            found = prod_resources(Deployment.from_env())
            with dg.build_resources({k: found[k] for k in keys}) as built:
                yield built

    @contextmanager
    def instance(self):
        with environment(self.env), dg.DagsterInstance.from_config(self.env["DAGSTER_HOME"]) as it:
            yield it

    def register_months(self) -> list[str]:
        with self.resources("market_data") as built:
            digests = built.market_data.month_digests()
        with self.instance() as instance:
            plan = partitions.plan_months(instance, digests)
            partitions.add_months(instance, plan)
            return instance.get_dynamic_partitions("market_months")

    def materialize(self, select: str, **kwargs) -> subprocess.CompletedProcess:
        done = subprocess.run(
            materialize_command(select, **kwargs),
            cwd=self.tmp,  # not the repository: nothing may land in a working directory
            env=self.env,
            capture_output=True,
            text=True,
            timeout=800,
            check=False,
        )
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-5000:]
        return done

    def materializations(self, asset: str) -> list[dg.EventLogEntry]:
        with self.instance() as instance:
            found = instance.fetch_materializations(dg.AssetKey(asset), limit=1000).records
            return [r.event_log_entry for r in found]

    def latest(self, asset: str) -> dict:
        return {
            k: v.value
            for k, v in self.materializations(asset)[0].asset_materialization.metadata.items()
        }


def objects(world: World, name: str) -> dict[tuple[str, str], list[str]]:
    """Every version of every object the pipeline wrote, by (bucket, key): its own prefix in
    every bucket, and what the MLflow server wrote for it under mlflow/."""
    s3, out = world.s3(), {}
    places = [(BUCKETS[role], name) for role in OURS] + [(BUCKETS["artifacts"], "mlflow/")]
    for bucket, prefix in places:
        for page in s3.get_paginator("list_object_versions").paginate(Bucket=bucket, Prefix=prefix):
            for item in page.get("Versions", []):
                out.setdefault((bucket, item["Key"]), []).append(item["VersionId"])
            assert not page.get("DeleteMarkers"), page["DeleteMarkers"]
    return out


def test_the_whole_graph_runs_in_prod_and_a_second_run_keeps_every_object_of_the_first(
    world, mlflow_server, tmp_path
):
    name = "pipeline"
    pipe = ProdPipeline(world, {}, name, tmp_path)
    pipe.env = {
        **world.env(tmp_path, name, mlflow_server.url),
        "TRADEOPS_MARKET_SOURCE": pipe.source,
    }
    bars = generate(SyntheticSpec(symbols=2, bars=700, seed=11, reversal=0.5))
    pipe.drop(bars)
    months = pipe.register_months()

    # Run 1: market_bars (every month, one run) through policy_deployment.
    pipe.materialize(
        downstream(MARKET_BARS), partition_range=f"{months[0]}...{months[-1]}", config=CONFIG
    )
    for asset in CHAIN:
        assert pipe.materializations(asset), asset
    deployed = pipe.latest("policy_deployment")
    bento = pipe.latest(POLICY_BENTO)
    assert deployed["bento_tag"] == bento["bento_tag"]
    assert bento["bento_uri"].startswith(f"s3://{BUCKETS['artifacts']}/{name}/bentos/")

    # The endpoint's ECS service now runs a task definition naming the verified bento.
    ecs = world.moto.client("ecs")
    service = ecs.describe_services(cluster=CLUSTER, services=[SERVING_SERVICE])["services"][0]
    definition = ecs.describe_task_definition(taskDefinition=service["taskDefinition"])
    (policy,) = definition["taskDefinition"]["containerDefinitions"]
    env = {e["name"]: e["value"] for e in policy["environment"]}
    assert env["TRADEOPS_BENTO_TAG"] == bento["bento_tag"]
    assert env["TRADEOPS_BENTO_URI"] == bento["bento_uri"]
    assert env["TRADEOPS_SERVE_WORKERS"] == "2"  # the rest of the definition as it was

    # MLflow: the server holds the run and the registry; the artifacts went to S3 through it.
    import mlflow

    client = mlflow.MlflowClient(tracking_uri=mlflow_server.url, registry_uri=mlflow_server.url)
    champion = client.get_model_version_by_alias("tradeops-policy", "champion")
    run = client.get_run(champion.run_id)
    assert run.info.artifact_uri.startswith("mlflow-artifacts:")
    logged = [a.path for a in client.list_artifacts(champion.run_id, "backtest")]
    assert "backtest/report.json" in logged

    # Monitoring for a day on which the endpoint served a few decisions.
    rows = served_decisions(bars, champion.version)
    store_rows(world, pipe, rows, tmp_path)
    pipe.materialize(f"group:{MONITORING_GROUP}", partition=DAY)
    for asset in MONITORING:
        assert pipe.materializations(asset), asset
    assert pipe.latest("serving_health")["answered"] == rows.height

    first = objects(world, name)
    with pipe.resources("datasets") as built:
        store: S3DatasetStore = built.datasets
        first_features = store.current(MARKET_FEATURES)["full"]
        first_bars = store.current(MARKET_BARS)

    # The vendor corrects and extends its files: run 2 stores the months again.
    pipe.drop(generate(SyntheticSpec(symbols=2, bars=760, seed=11, reversal=0.5)))
    months = pipe.register_months()
    pipe.materialize(
        f"key:{MARKET_BARS} or key:{MARKET_FEATURES}",
        partition_range=f"{months[0]}...{months[-1]}",
    )
    second = objects(world, name)
    lost = {k: v for k, v in first.items() if not set(v) <= set(second.get(k, []))}
    assert not lost, lost  # every object version of run 1 is still there
    # A training checkpoint is the one key replaced by design (each save, for the next task).
    checkpoints = {k for k in second if k[1].startswith(f"{name}/training/")}
    assert {k[1].split("/", 3)[3] for k in checkpoints} >= {
        "seed-0/checkpoint.zip",
        "walk-forward/fold-0/seed-0/checkpoint.zip",
    }
    replaced = {
        k: v
        for k, v in second.items()
        if len(v) > 1 and "/compute-logs/" not in k[1] and k not in checkpoints
    }
    assert not replaced, replaced  # and no key was ever written twice
    assert len(second) > len(first)

    with pipe.resources("datasets", "audit") as built:
        store = built.datasets
        assert store.current(MARKET_FEATURES)["full"] != first_features
        assert set(store.current(MARKET_BARS)) > set(first_bars)
        # The features of run 1, replaced since, come back byte for byte.
        out = store.restore(first_features, tmp_path / "restored")
        assert pl.read_parquet(out).height == bars.height - 2 * features.WARMUP_BARS

        # The audit trail: intact, anchored in the PostgreSQL event log and in MLflow.
        trail: S3AuditTrail = built.audit
        with pipe.instance() as instance:
            check = trail.verify(trail.anchors(instance))
        assert check.ok, check.problems
        actions = [r["action"] for r in trail.records()]
        assert actions == ["promotion_gate", "alias_move", "deploy_requested", "deploy"]
        assert check.anchors >= len(actions)

    s3 = world.s3()
    for bucket, key in second:
        head = s3.head_object(Bucket=bucket, Key=key)
        expected = world.audit_key if bucket == BUCKETS["audit"] else world.data_key
        assert (head.get("ServerSideEncryption"), head.get("SSEKMSKeyId")) == (
            "aws:kms",
            expected,
        ), (bucket, key)
        if bucket == BUCKETS["audit"]:
            assert head["ObjectLockMode"] == "COMPLIANCE", key
    assert any("/compute-logs/" in key for _, key in second)  # run logs on S3 too
    assert any(key.startswith("mlflow/") for _, key in second)

    no_secret_anywhere(world, pipe, second)


def served_decisions(bars: pl.DataFrame, version: str) -> pl.DataFrame:
    """What the endpoint logged on DAY: the features of the bars it was sent, its answers."""
    computed = features.compute_features(bars).sort("timestamp").tail(40)
    rows = prediction_rows(computed.height, DAY, str(version))
    return rows.with_columns(
        pl.Series(
            "bar_timestamp", computed["timestamp"].to_list(), dtype=rows["bar_timestamp"].dtype
        ),
        pl.Series("symbol", computed["symbol"].to_list()),
        pl.Series("position", [0.0] * computed.height),
        *[pl.Series(c, computed[c].cast(pl.Float64).to_list()) for c in features.FEATURE_COLUMNS],
    )


def store_rows(world: World, pipe: ProdPipeline, rows: pl.DataFrame, tmp: Path) -> None:
    """The serving tasks' part of the log for DAY, shipped as they ship it."""
    local = tmp / "log" / f"date={DAY}"
    local.mkdir(parents=True)
    rows.write_parquet(local / "part-serving-1.parquet")
    with pipe.resources("predictions") as built:
        assert built.predictions.ship(tmp / "log")


def no_secret_anywhere(world: World, pipe: ProdPipeline, stored) -> None:
    """Neither the signing key nor the database password is in the event log (what the UI
    shows: metadata, run config, logs) or in the run logs on S3."""
    secrets = {
        "signing key": world.keypair.private_pem.decode().splitlines()[1],
        "database password": world.postgres.password,
    }
    with pipe.instance() as instance:
        runs = instance.get_runs()
        assert len(runs) >= 3
        text = "".join(
            serialize_value(entry) for run in runs for entry in instance.all_logs(run.run_id)
        )
        text += "".join(json.dumps(run.run_config) + json.dumps(run.tags) for run in runs)
    logs = [key for bucket, key in stored if "/compute-logs/" in key]
    s3 = world.s3()
    for key in logs:
        text += (
            s3.get_object(Bucket=BUCKETS["artifacts"], Key=key)["Body"]
            .read()
            .decode(errors="replace")
        )
    for what, value in secrets.items():
        assert value not in text, f"the {what} leaked"
