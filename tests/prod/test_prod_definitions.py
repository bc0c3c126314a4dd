"""TRADEOPS_ENV=prod is chosen in one place, reads nothing at import, and configures every
location, endpoint and secret by the name of a variable, never by its value."""

import os
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest

import sensors.market_data
from resources import for_deployment
from resources.deployment import PROD, Deployment
from resources.prod import REQUIRED
from resources.s3_stores import S3MarketData
from sensors.market_data import market_data_sensor
from tests.e2e.conftest import write_vendor_per_symbol
from tests.prod.conftest import BUCKETS
from tests.prod.test_stores import s3_resource
from tradeops_assets.core.errors import ConfigError
from tradeops_assets.core.synthetic import SyntheticSpec, generate

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.xdist_group("prod")

IMPORT_PROBE = """
import os, sys
import dagster, mlflow, polars, torch, stable_baselines3, gymnasium, httpx  # libraries' own
before = dict(os.environ)
import dagster as dg
from tradeops_assets.definitions import DEPLOYMENT, defs
changed = sorted(k for k in set(before) | set(os.environ) if before.get(k) != os.environ.get(k))
print("CHANGED", changed)
dg.Definitions.validate_loadable(defs)
print("DEPLOYMENT", DEPLOYMENT.name)
print("AWS", "dagster_aws" in sys.modules)
"""


def probe(env: dict[str, str], cwd: Path) -> str:
    done = subprocess.run(
        [sys.executable, "-c", IMPORT_PROBE], cwd=cwd, env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def test_prod_definitions_load_with_no_setting_present_and_touch_nothing(tmp_path):
    """Nothing is resolved at import: no variable needs to be set, no file or call is made."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("TRADEOPS_", "AWS_", "DAGSTER_HOME", "MLFLOW_"))
    }
    out = probe({**env, "TRADEOPS_ENV": "prod", "TRADEOPS_HOME": str(tmp_path / "h")}, tmp_path)
    assert "CHANGED []" in out
    assert "DEPLOYMENT prod" in out
    assert not (tmp_path / "h").exists()
    assert not [p for p in tmp_path.iterdir()], list(tmp_path.iterdir())


def test_the_local_deployment_never_loads_dagster_aws(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "TRADEOPS_ENV"}
    out = probe({**env, "TRADEOPS_HOME": str(tmp_path / "h")}, tmp_path)
    assert "DEPLOYMENT local" in out
    assert "AWS False" in out


def env_vars(value, seen=None) -> set[str]:
    """Every dg.EnvVar a resource (and the resources inside it) is configured with."""
    seen = set() if seen is None else seen
    if isinstance(value, dg.EnvVar):
        seen.add(value.env_var_name)
    elif isinstance(value, dg.ConfigurableResource):
        for field in type(value).model_fields:
            env_vars(getattr(value, field), seen)
    return seen


def test_every_location_endpoint_and_secret_is_read_by_dg_envvar(tmp_path):
    plain = Deployment.from_env({"TRADEOPS_ENV": PROD, "TRADEOPS_HOME": str(tmp_path)})
    resources = for_deployment(plain)
    names = set().union(*(env_vars(r) for r in resources.values()))
    names |= {"TRADEOPS_MLFLOW_TRACKING_URI"}  # the legacy mlflow resource: {"env": ...}
    assert names == set(REQUIRED)
    assert isinstance(resources["secrets"].signing_key_pem, dg.EnvVar)
    assert isinstance(resources["datasets"].kms_key_id, dg.EnvVar)
    assert resources["datasets"].s3.endpoint_url is None  # AWS's own unless told otherwise

    standin = Deployment.from_env(
        {
            "TRADEOPS_ENV": PROD,
            "TRADEOPS_HOME": str(tmp_path),
            "AWS_ENDPOINT_URL_S3": "http://127.0.0.1:1",
            "AWS_ENDPOINT_URL_ECS": "http://127.0.0.1:1",
        }
    )
    resources = for_deployment(standin)
    assert resources["datasets"].s3.endpoint_url.env_var_name == "AWS_ENDPOINT_URL_S3"
    assert resources["serving"].endpoint_url.env_var_name == "AWS_ENDPOINT_URL_ECS"


def test_the_prod_deployment_keeps_scratch_files_under_a_writable_home(tmp_path):
    prod = Deployment.from_env({"TRADEOPS_ENV": PROD})
    assert prod.home.parent.is_dir()
    assert not str(prod.home).startswith(str(REPO))  # a task's root filesystem is read-only
    mounted = Deployment.from_env(
        {"TRADEOPS_ENV": PROD, "TRADEOPS_HOME": str(tmp_path), "DAGSTER_HOME": "/opt/dagster"}
    )
    assert mounted.dagster_home == Path("/opt/dagster")
    assert Deployment.from_env(mounted.child_env({})) == mounted
    with pytest.raises(ConfigError, match="TRADEOPS_ROLLOUT_TIMEOUT_S='soon'"):
        Deployment.from_env({"TRADEOPS_ENV": PROD, "TRADEOPS_ROLLOUT_TIMEOUT_S": "soon"})
    with pytest.raises(ConfigError, match="TRADEOPS_ENV='staging'"):
        Deployment.from_env({"TRADEOPS_ENV": "staging"})


def test_new_files_in_an_s3_source_become_month_runs(world, prefix, tmp_path, monkeypatch):
    """market_data_sensor, unchanged, watches an s3:// source through the prod resource."""
    monkeypatch.setattr(sensors.market_data, "SETTLE_SECONDS", 0.0)
    folder = write_vendor_per_symbol(
        generate(SyntheticSpec(symbols=2, bars=40, seed=4)), tmp_path / "vendor"
    )
    for path in sorted(folder.iterdir()):
        world.s3().put_object(
            Bucket=BUCKETS["landing"], Key=f"{prefix}/in/{path.name}", Body=path.read_bytes()
        )
    source = S3MarketData(source=f"s3://{BUCKETS['landing']}/{prefix}/in", s3=s3_resource(world))
    with dg.DagsterInstance.ephemeral() as instance:
        resources = {"market_data": source}
        with dg.build_sensor_context(instance=instance, resources=resources) as context:
            first = market_data_sensor(context)
            cursor = context.cursor
        assert "still changing" in first.skip_message  # seen once
        with dg.build_sensor_context(instance=instance, cursor=cursor, resources=resources) as c:
            result = market_data_sensor(c)
        assert isinstance(result, dg.SensorResult), result
        assert [r.partition_key for r in result.run_requests] == ["2015-01-01", "2015-02-01"]
