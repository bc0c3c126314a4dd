import itertools
import os
import subprocess
import sys
import tomllib
from pathlib import Path

import dagster as dg
import polars as pl
import pytest
import yaml

from resources.deployment import Deployment
from tradeops_assets.core.validation import RULES
from tradeops_assets.defs.features import checks as feature_checks
from tradeops_assets.defs.market_data.checks import BAR_CHECK_NAMES
from tradeops_assets.keys import (
    AUDIT_TRAIL,
    CHAIN,
    FEATURE_DRIFT_CHECK,
    GROUP_OF,
    LIVE_PERFORMANCE_CHECK,
    MARKET_MONTHS,
    MONITORING,
    PROMOTION_GATE,
    SERVING_HEALTH_CHECK,
)

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def defs() -> dg.Definitions:
    from tradeops_assets.definitions import defs

    return defs


IMPORT_PROBE = """
import os, sys
import dagster, mlflow, polars, torch, stable_baselines3, gymnasium, httpx  # libraries' own
before = dict(os.environ)
from tradeops_assets.definitions import defs
changed = sorted(k for k in set(before) | set(os.environ) if before.get(k) != os.environ.get(k))
print("CHANGED", changed)
defs.resolve_asset_graph()
"""


def _snapshot(*roots: Path) -> set[str]:
    return {str(p) for root in roots if root.exists() for p in root.rglob("*")}


def test_importing_definitions_writes_no_file_and_sets_no_variable(tmp_path):
    home = tmp_path / "home"
    env = {**os.environ, "TRADEOPS_HOME": str(home)}
    for name in ("DAGSTER_HOME", "BENTOML_HOME", "MLFLOW_TRACKING_URI"):
        env.pop(name, None)
    before = _snapshot(REPO, tmp_path)
    done = subprocess.run(
        [sys.executable, "-c", IMPORT_PROBE], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "CHANGED []" in done.stdout, done.stdout
    assert not home.exists()
    created = _snapshot(REPO, tmp_path) - before
    assert not {p for p in created if "__pycache__" not in p}, created


LOADS_WITHOUT_READING = """
import sys
from tradeops_assets.core import sources, vendor

def refuse(*args, **kwargs):
    raise RuntimeError("the market source was read while loading the code location")

for name in ("load_sample",):
    setattr(sources.sample, name, refuse)
vendor.read_vendor_file = vendor.list_vendor_files = refuse
sources.load_bars = refuse
sources.DirectorySource.bars = sources.SampleSource.bars = sources.SyntheticSource.bars = refuse
from tradeops_assets.definitions import defs
graph = defs.resolve_asset_graph()
print(len(list(graph.get_all_asset_keys())), "assets")
"""


@pytest.mark.parametrize("source", ["vendor-folder", "sample", "synthetic:symbols=500,bars=100000"])
def test_definitions_load_without_reading_the_market_source(tmp_path, source):
    if source == "vendor-folder":
        folder = tmp_path / "vendor"
        folder.mkdir()
        (folder / "AAPL.csv").write_text("not,a,valid\nvendor,file\n")
        source = str(folder)
    env = {**os.environ, "TRADEOPS_HOME": str(tmp_path / "home"), "TRADEOPS_MARKET_SOURCE": source}
    done = subprocess.run(
        [sys.executable, "-c", LOADS_WITHOUT_READING],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert f"{len(CHAIN) + len(MONITORING) + 1} assets" in done.stdout  # and audit_trail


def test_workspace_and_pyproject_name_the_same_code_location():
    workspace = yaml.safe_load((REPO / "workspace.yaml").read_text())
    (entry,) = workspace["load_from"]
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    assert entry["python_module"]["module_name"] == pyproject["tool"]["dagster"]["module_name"]
    assert (
        entry["python_module"]["location_name"]
        == pyproject["tool"]["dagster"]["code_location_name"]
        == pyproject["tool"]["dg"]["project"]["code_location_name"]
    )
    assert (
        pyproject["tool"]["dg"]["project"]["code_location_target_module"]
        == entry["python_module"]["module_name"]
    )


def test_asset_graph_names_groups_and_lineage(defs):
    graph = defs.resolve_asset_graph()
    keys = {k.to_user_string() for k in graph.get_all_asset_keys()}
    chain = CHAIN
    assert keys == set(chain) | set(MONITORING) | {AUDIT_TRAIL}
    trail = graph.get(dg.AssetKey(AUDIT_TRAIL))
    assert trail.is_external
    assert not trail.is_materializable  # observed on each append, never rebuilt
    assert trail.group_name == GROUP_OF[AUDIT_TRAIL]
    # Monitoring watches the chain and feeds nothing traders call.
    for key in chain:
        assert not {p.to_user_string() for p in graph.get(dg.AssetKey(key)).parent_keys} & set(
            MONITORING
        )
    for key in MONITORING:
        node = graph.get(dg.AssetKey(key))
        assert node.group_name == GROUP_OF[key] == "monitoring"
        assert isinstance(node.partitions_def, dg.DailyPartitionsDefinition)
    for parent, child in itertools.pairwise(chain):
        assert dg.AssetKey(parent) in graph.get(dg.AssetKey(child)).parent_keys
    groups = {k: graph.get(dg.AssetKey(k)).group_name for k in chain}
    assert groups["backtest_report"] == groups["champion_policy"] == "evaluation"
    assert groups["policy_bento"] == groups["policy_deployment"] == "serving"
    assert all(graph.get(dg.AssetKey(k)).code_version for k in chain)
    bars = graph.get(dg.AssetKey("market_bars"))
    feats = graph.get(dg.AssetKey("market_features"))
    assert bars.group_name == "market_data"
    assert feats.group_name == "features"
    assert feats.parent_keys == {dg.AssetKey("market_bars")}
    assert bars.code_version
    assert feats.code_version
    assert all(graph.get(dg.AssetKey(k)).group_name == GROUP_OF[k] for k in chain)
    assert isinstance(bars.partitions_def, dg.DynamicPartitionsDefinition)
    assert bars.partitions_def.name == MARKET_MONTHS
    assert bars.backfill_policy == dg.BackfillPolicy.single_run()
    assert "Adj Close" in bars.description


def test_pipeline_checks_block_and_monitoring_checks_only_warn(defs):
    graph = defs.resolve_asset_graph()
    specs = {key.name: graph.get_check_spec(key) for key in graph.asset_check_keys}
    expected = set(BAR_CHECK_NAMES) | {
        feature_checks.FEATURES_SCHEMA_CHECK,
        feature_checks.FEATURES_FINITE_CHECK,
        feature_checks.FEATURES_NO_LOOK_AHEAD_CHECK,
        PROMOTION_GATE,
    }
    monitors = {FEATURE_DRIFT_CHECK, LIVE_PERFORMANCE_CHECK, SERVING_HEALTH_CHECK}
    assert set(specs) == expected | monitors
    assert len(BAR_CHECK_NAMES) == len(RULES)
    # What gates the pipeline blocks it; monitoring verdicts warn and ask for a retrain.
    assert all(specs[name].blocking for name in expected)
    assert not any(specs[name].blocking for name in monitors)


def test_months_to_ingest_are_the_sample_history_then_only_what_changes():
    from resources.market_data import month_digests
    from tradeops_assets.core import sample
    from tradeops_assets.defs.market_data.partitions import add_months, plan_months

    bars = sample.load_sample()
    digests = month_digests(bars)
    with dg.DagsterInstance.ephemeral() as instance:
        plan = plan_months(instance, digests)
        assert plan.new[0] == "2009-05-01"  # GOOGL starts 2009-05-22
        assert plan.new[-1] == "2018-08-01"  # and ends 2018-08-29
        assert plan.changed == []
        add_months(instance, plan)
        again = plan_months(instance, digests)
        assert again.new == []
        assert again.todo == plan.new  # added but never ingested: still to do
    moved = bars.with_columns(
        close=pl.when(pl.col("timestamp") == pl.col("timestamp").max())
        .then(pl.col("close") * 1.01)
        .otherwise(pl.col("close"))
    )
    changed = {m for m, d in month_digests(moved).items() if digests[m] != d}
    assert changed == {"2018-08-01"}  # a corrected last bar changes its month's digest only


def test_unknown_deployment_and_bad_source_are_refused_clearly(tmp_path):
    from tradeops_assets.core.errors import ConfigError

    with pytest.raises(ConfigError, match="TRADEOPS_ENV='staging'"):
        Deployment.from_env({"TRADEOPS_ENV": "staging"})
    from resources.market_data import MarketDataResource

    bad = Deployment.from_env({"TRADEOPS_MARKET_SOURCE": str(tmp_path / "nope")})
    with pytest.raises(ConfigError, match="neither 'sample'"):
        MarketDataResource(source=bad.market_source).bars()


def test_the_default_source_is_the_demo_market_and_the_serving_port_is_checked():
    from tradeops_assets.core.errors import ConfigError
    from tradeops_assets.core.sources import DEFAULT_SOURCE

    assert Deployment.from_env({}).market_source == DEFAULT_SOURCE
    assert Deployment.from_env({"TRADEOPS_SERVE_PORT": "3100"}).serve_port == 3100
    with pytest.raises(ConfigError, match="TRADEOPS_SERVE_PORT='http'"):
        Deployment.from_env({"TRADEOPS_SERVE_PORT": "http"})


def test_dev_secrets_are_created_lazily_once_owner_only_and_agree(tmp_path):
    from concurrent.futures import ThreadPoolExecutor

    from resources.secrets import DevSecrets
    from tradeops_assets.core import signing

    keys = tmp_path / "keys"
    secrets = DevSecrets(root=str(keys))
    assert not keys.exists()  # nothing until a resource asks
    with ThreadPoolExecutor(8) as pool:
        tokens = set(pool.map(lambda _: DevSecrets(root=str(keys)).api_token(), range(8)))
    assert len(tokens) == 1
    assert len(next(iter(tokens))) >= 32
    assert secrets.signing_key().startswith("-----BEGIN PRIVATE KEY-----")
    files = [p for p in keys.iterdir() if not p.name.startswith(".")]
    assert {p.name for p in files} == {"api_token", "signing_key", "signing_public_key"}
    assert all((p.stat().st_mode & 0o777) == 0o600 for p in files)
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    (bundle / "f").write_text("x")
    signing.sign_bundle(bundle, secrets.signing_key())
    assert signing.verify_bundle(bundle, secrets.public_key())  # the pair belongs together


def test_the_launchpad_lists_the_algorithms_and_the_recipe_defaults(defs):
    from tradeops_assets.core.algorithms import Algorithm
    from tradeops_assets.core.recipe import TrainConfig

    job = defs.resolve_implicit_global_asset_job_def()
    ops = job.run_config_schema.config_type.fields["ops"].config_type.fields
    training = ops["trained_policy"].config_type.fields["config"].config_type.fields
    algorithm = training["algorithm"].config_type
    algorithm = getattr(algorithm, "inner_type", algorithm)  # optional: a default is given
    assert algorithm.kind.name == "ENUM"
    assert [v.config_value for v in algorithm.enum_values] == [a.value for a in Algorithm]
    assert training["timesteps"].default_value == TrainConfig().timesteps


def test_what_the_daemon_automates_is_on_from_the_start_and_covers_the_eager_assets(defs):
    """Dagster would create its default automation sensor stopped; the loop needs it on."""
    graph = defs.resolve_asset_graph()
    eager = {
        key.to_user_string()
        for key in graph.get_all_asset_keys()
        if graph.get(key).automation_condition is not None
    }
    assert eager == {"market_features", "feature_drift", "live_performance"}
    sensors = {s.name: s for s in defs.sensors}
    assert set(sensors) == {
        "market_data_sensor",
        "automation_sensor",
        "drift_sensor",
        "run_failure_sensor",
    }
    assert all(s.default_status == dg.DefaultSensorStatus.RUNNING for s in sensors.values())
    covered = sensors["automation_sensor"].asset_selection.resolve(graph)
    assert {k.to_user_string() for k in covered} == eager
    retried = {
        key.to_user_string()
        for assets in defs.assets or []
        if isinstance(assets, dg.AssetsDefinition) and assets.op.retry_policy is not None
        for key in assets.keys
    }
    assert {"champion_policy", "policy_bento", "feature_drift"} <= retried
    assert "policy_deployment" not in retried  # each attempt is audited; no silent retry
