"""An asset's code version changes exactly when code it runs changes."""

import pytest

from tradeops_assets.defs.code_versions import compute_fn, read_module, sources_behind, version_of
from tradeops_assets.defs.evaluation.assets import backtest_report, champion_policy
from tradeops_assets.defs.market_data.assets import market_bars
from tradeops_assets.defs.serving.assets import policy_deployment
from tradeops_assets.defs.training.assets import trained_policy


def modules_behind(asset) -> set[str]:
    return {name for name in sources_behind(compute_fn(asset)) if ":" not in name}


def edited(module: str):
    def read(name: str) -> str:
        return read_module(name) + ("\n# an edit\n" if name == module else "")

    return read


@pytest.mark.parametrize(
    ("asset", "runs"),
    [
        (backtest_report, {"tradeops_assets.core.market", "tradeops_assets.core.env"}),
        (trained_policy, {"tradeops_assets.core.features", "tradeops_assets.defs.training.config"}),
        (policy_deployment, {"resources.serving", "bentos.trading_policy.settings"}),
        (champion_policy, {"tradeops_assets.core.promotion", "resources.audit"}),
    ],
)
def test_the_modules_an_asset_runs_are_in_its_version(asset, runs):
    assert runs <= modules_behind(asset)


def test_editing_a_dependency_changes_the_versions_of_the_assets_that_run_it():
    fn = compute_fn(backtest_report)
    before = version_of(fn)
    assert version_of(fn, edited("tradeops_assets.core.market")) != before
    assert version_of(fn, edited("tradeops_assets.core.vendor")) == before  # not on its path
    bars = compute_fn(market_bars)
    assert version_of(bars, edited("tradeops_assets.core.market")) == version_of(bars)
    assert "tradeops_assets.core.training" not in modules_behind(market_bars)
    training = compute_fn(trained_policy)
    assert version_of(training, edited("tradeops_assets.defs.training.config")) != version_of(
        training
    )


def test_the_definitions_carry_the_derived_versions():
    from tradeops_assets.definitions import defs

    graph = defs.resolve_asset_graph()
    for asset in (market_bars, trained_policy, backtest_report, policy_deployment):
        assert graph.get(asset.key).code_version == version_of(compute_fn(asset))
