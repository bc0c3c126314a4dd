import tomllib
from pathlib import Path

import dagster as dg
import pytest
import yaml

from tradeops_assets.core.validation import RULES
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
    assert keys == {"market_bars", "market_features", "trained_policy"}
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
    }
    assert set(specs) == expected
    assert len(BAR_CHECK_NAMES) == len(RULES)
    assert all(spec.blocking for spec in specs.values())


def test_partitions_span_exactly_the_sample_history():
    from tradeops_assets.defs.market_data.partitions import market_partitions

    keys = market_partitions(Deployment.from_env({})).get_partition_keys()
    assert keys[0] == "2009-05-01"  # GOOGL starts 2009-05-22
    assert keys[-1] == "2018-08-01"  # and ends 2018-08-29


def test_unknown_deployment_and_bad_source_are_refused_clearly(tmp_path):
    from tradeops_assets.core.errors import ConfigError

    with pytest.raises(ConfigError, match="TRADEOPS_ENV='staging'"):
        Deployment.from_env({"TRADEOPS_ENV": "staging"})
    bad = Deployment.from_env({"TRADEOPS_MARKET_SOURCE": str(tmp_path / "nope")})
    with pytest.raises(ConfigError, match="neither 'sample'"):
        bad.source()
