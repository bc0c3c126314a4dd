"""deploy/prod/dagster.yaml on the stand-ins: the instance in PostgreSQL, every run launched
through the ECS run launcher as its own task, and a training run on GPU capacity."""

import json
from pathlib import Path

import dagster as dg
import pytest
import yaml
from dagster._core.definitions.reconstruct import ReconstructableRepository

from resources.deployment import PROD_INSTANCE_YAML
from resources.ecs import CAPACITY_TAG
from tests.prod.conftest import (
    CLUSTER,
    GPU_PROVIDER,
    RUN_FAMILY,
    TRAINING_FAMILY,
    environment,
)
from tradeops_assets.keys import MARKET_BARS, TRAINED_POLICY

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.xdist_group("prod")


def launch(instance: dg.DagsterInstance, asset: str) -> dg.DagsterRun:
    """A run of ``asset`` as the UI or a sensor submits it, launched by the instance's launcher."""
    from tradeops_assets.definitions import defs

    job = defs.resolve_implicit_global_asset_job_def()
    origin = (
        ReconstructableRepository.for_module(
            "tradeops_assets.definitions", "defs", working_directory=str(REPO)
        )
        .get_reconstructable_job(job.name)
        .get_python_origin()
    )
    key = dg.AssetKey(asset)
    run = instance.create_run_for_job(
        job_def=job.get_subset(asset_selection={key}),
        asset_selection={key},
        job_code_origin=origin,
        tags={"tradeops/trigger": "test"},
    )
    instance.launch_run(run.run_id, workspace=None)  # type: ignore[arg-type]
    return instance.get_run_by_id(run.run_id)


def test_the_prod_instance_lives_in_postgres_and_launches_each_run_as_an_ecs_task(world, tmp_path):
    env = world.env(tmp_path, "launcher")
    ecs = world.moto.client("ecs")
    with environment(env), dg.DagsterInstance.from_config(env["DAGSTER_HOME"]) as instance:
        assert type(instance.run_storage).__name__ == "PostgresRunStorage"
        assert type(instance.event_log_storage).__name__ == "PostgresEventLogStorage"
        assert type(instance.run_launcher).__name__ == "TradeopsEcsRunLauncher"
        before = set(ecs.list_tasks(cluster=CLUSTER)["taskArns"])
        plain = launch(instance, MARKET_BARS)
        training = launch(instance, TRAINED_POLICY)

    tasks = {
        t["taskArn"]: t
        for t in ecs.describe_tasks(
            cluster=CLUSTER,
            tasks=list(set(ecs.list_tasks(cluster=CLUSTER)["taskArns"]) - before),
            include=["TAGS"],
        )["tasks"]
    }
    assert set(tasks) == {plain.tags["ecs/task_arn"], training.tags["ecs/task_arn"]}

    task = tasks[plain.tags["ecs/task_arn"]]
    assert task["taskDefinitionArn"].split("/")[-1].startswith(f"{RUN_FAMILY}:")
    assert task["launchType"] == "FARGATE"
    (override,) = task["overrides"]["containerOverrides"]
    assert override["name"] == "run"
    command = " ".join(override["command"])
    assert "dagster api execute_run" in command
    assert plain.run_id in command
    assert CAPACITY_TAG not in plain.tags
    tags = {t["key"]: t["value"] for t in task.get("tags", [])}
    assert tags["dagster/run_id"] == plain.run_id

    task = tasks[training.tags["ecs/task_arn"]]
    assert task["taskDefinitionArn"].split("/")[-1].startswith(f"{TRAINING_FAMILY}:")
    assert task["capacityProviderName"] == GPU_PROVIDER
    (override,) = task["overrides"]["containerOverrides"]
    assert override["name"] == "training"
    assert training.run_id in " ".join(override["command"])
    assert training.tags[CAPACITY_TAG] == "gpu"  # on the run, as the UI shows it
    tags = {t["key"]: t["value"] for t in task.get("tags", [])}
    assert tags[CAPACITY_TAG] == "gpu"
    kwargs = json.loads(training.tags["ecs/run_task_kwargs"])
    assert kwargs["networkConfiguration"]["awsvpcConfiguration"] == {
        "subnets": world.subnets,
        "securityGroups": [world.training_group],
        "assignPublicIp": "DISABLED",
    }


def test_the_prod_instance_config_holds_no_secret_and_reads_every_setting_from_env():
    config = yaml.safe_load(PROD_INSTANCE_YAML.read_text())
    db = config["storage"]["postgres"]["postgres_db"]
    assert {k: v for k, v in db.items() if k not in ("params", "scheme")} == {
        "hostname": {"env": "TRADEOPS_DB_HOST"},
        "port": {"env": "TRADEOPS_DB_PORT"},
        "db_name": {"env": "TRADEOPS_DB_NAME"},
        "username": {"env": "TRADEOPS_DB_USER"},
        "password": {"env": "TRADEOPS_DB_PASSWORD"},
    }
    launcher = config["run_launcher"]
    assert (launcher["module"], launcher["class"]) == ("resources.ecs", "TradeopsEcsRunLauncher")
    assert launcher["config"]["training"]["capacity_provider"] == {
        "env": "TRADEOPS_TRAINING_CAPACITY_PROVIDER"
    }
    limits = config["run_coordinator"]["config"]["tag_concurrency_limits"]
    assert {"key": CAPACITY_TAG, "value": "gpu", "limit": 2} in limits
