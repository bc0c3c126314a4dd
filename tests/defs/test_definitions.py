import itertools
import tomllib
from pathlib import Path

import dagster as dg
import pytest
import yaml

from tests.graph import ASSET_CHAIN
from tradeops_assets.core.validation import RULES
from tradeops_assets.defs.evaluation.checks import PROMOTION_GATE
from tradeops_assets.defs.features import checks as feature_checks
from tradeops_assets.defs.market_data.checks import BAR_CHECK_NAMES
from tradeops_assets.deployment import Deployment

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def defs() -> dg.Definitions:
    from tradeops_assets.definitions import defs

    return defs


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
    chain = ASSET_CHAIN
    assert keys == set(chain)
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
    assert isinstance(bars.partitions_def, dg.MonthlyPartitionsDefinition)
    assert bars.backfill_policy == dg.BackfillPolicy.single_run()
    assert "Adj Close" in bars.description


def test_every_check_is_blocking_and_named(defs):
    graph = defs.resolve_asset_graph()
    specs = {key.name: graph.get_check_spec(key) for key in graph.asset_check_keys}
    expected = set(BAR_CHECK_NAMES) | {
        feature_checks.FEATURES_SCHEMA_CHECK,
        feature_checks.FEATURES_FINITE_CHECK,
        feature_checks.FEATURES_NO_LOOK_AHEAD_CHECK,
        PROMOTION_GATE,
    }
    assert set(specs) == expected
    assert len(BAR_CHECK_NAMES) == len(RULES)
    assert all(spec.blocking for spec in specs.values())


def test_partitions_span_exactly_the_sample_history():
    from tradeops_assets.defs.market_data.partitions import market_partitions

    sample = Deployment.from_env({"TRADEOPS_MARKET_SOURCE": "sample"})
    keys = market_partitions(sample).get_partition_keys()
    assert keys[0] == "2009-05-01"  # GOOGL starts 2009-05-22
    assert keys[-1] == "2018-08-01"  # and ends 2018-08-29


def test_unknown_deployment_and_bad_source_are_refused_clearly(tmp_path):
    from tradeops_assets.core.errors import ConfigError

    with pytest.raises(ConfigError, match="TRADEOPS_ENV='staging'"):
        Deployment.from_env({"TRADEOPS_ENV": "staging"})
    bad = Deployment.from_env({"TRADEOPS_MARKET_SOURCE": str(tmp_path / "nope")})
    with pytest.raises(ConfigError, match="neither 'sample'"):
        bad.source()


def test_the_default_source_is_the_demo_market_and_the_serving_port_is_checked():
    from tradeops_assets.core.errors import ConfigError
    from tradeops_assets.core.sources import DEFAULT_SOURCE

    assert Deployment.from_env({}).market_source == DEFAULT_SOURCE
    assert Deployment.from_env({"TRADEOPS_SERVE_PORT": "3100"}).serve_port == 3100
    with pytest.raises(ConfigError, match="TRADEOPS_SERVE_PORT='http'"):
        Deployment.from_env({"TRADEOPS_SERVE_PORT": "http"})


def test_local_secrets_are_created_once_owner_only_and_never_override(tmp_path):
    deployment = Deployment.from_env({"TRADEOPS_HOME": str(tmp_path)})
    first: dict[str, str] = {}
    deployment.prepare_process(first)
    again: dict[str, str] = {}
    deployment.prepare_process(again)
    assert first["TRADEOPS_API_TOKEN"] == again["TRADEOPS_API_TOKEN"]
    assert first["TRADEOPS_SIGNING_KEY"].startswith("-----BEGIN PRIVATE KEY-----")
    assert first["BENTOML_HOME"] == str(tmp_path / "bentoml")
    assert all((p.stat().st_mode & 0o777) == 0o600 for p in (tmp_path / "keys").iterdir())
    given = {"TRADEOPS_API_TOKEN": "from-the-secret-store"}
    deployment.prepare_process(given)
    assert given["TRADEOPS_API_TOKEN"] == "from-the-secret-store"
