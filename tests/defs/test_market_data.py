"""market_bars and market_features through a real Dagster instance, DVC store and checks."""

import dagster as dg
import polars as pl
import pytest

from resources import for_deployment
from resources.deployment import Deployment
from tests.corruptions import CORRUPTIONS
from tests.e2e.conftest import write_vendor_per_symbol
from tradeops_assets.core.synthetic import SyntheticSpec, generate
from tradeops_assets.defs import features, market_data
from tradeops_assets.defs.market_data import partitions
from tradeops_assets.keys import MARKET_FEATURES

pytestmark = pytest.mark.slow
RANGE = {"dagster/asset_partition_range_start": "2015-01-01"}
LOOSE = {"ops": {"market_bars_bars_no_gaps": {"config": {"max_gap_ratio": 50.0}}}}


@pytest.fixture(scope="module")
def gappy(tmp_path_factory):
    """Eight months of a vendor folder with a three-week hole mid-July, and an instance."""
    tmp = tmp_path_factory.mktemp("gappy")
    bars = generate(SyntheticSpec(symbols=2, bars=170, seed=11))
    folder = write_vendor_per_symbol(CORRUPTIONS["bars_no_gaps"](bars), tmp / "vendor")
    deployment = Deployment("local", tmp / "home", market_source=str(folder))
    resources = for_deployment(deployment)
    instance = dg.DagsterInstance.ephemeral()
    plan = partitions.plan_months(instance, resources["market_data"].month_digests())
    partitions.add_months(instance, plan)
    yield instance, resources, plan.todo
    instance.dispose()


def run(instance, resources, selection, run_config=None, keys=()):
    tags = {**RANGE, "dagster/asset_partition_range_end": keys[-1]} if keys else {}
    return dg.materialize(
        [*market_data.defs.assets, *market_data.defs.asset_checks, *features.defs.assets],
        selection=selection,
        instance=instance,
        resources=resources,
        run_config=run_config or {},
        tags=tags,
        raise_on_error=False,
    )


def test_features_use_only_months_that_passed_the_checks_as_configured(gappy):
    instance, resources, months = gappy
    strict = run(instance, resources, "market_bars", keys=months)
    assert not strict.success  # the blocking gap check refuses the hole ...
    refused = run(instance, resources, MARKET_FEATURES)
    assert not refused.success  # ... and features refuse the months it refused
    error = refused.get_step_failure_events()[0].step_failure_data.error
    assert "2015-08-01 (bars_no_gaps: failed)" in error.cause.message  # the bar after the hole
    # A data engineer accepts the hole for this market by raising the threshold of the check;
    # that decision reaches market_features with nothing else to configure.
    loose = run(instance, resources, "market_bars", LOOSE, keys=months)
    assert loose.success
    assert run(instance, resources, MARKET_FEATURES).success


def test_each_month_records_its_own_figures(gappy):
    instance, resources, months = gappy
    # its own run: under xdist the test above may run in another worker's instance
    assert run(instance, resources, "market_bars", LOOSE, keys=months).success
    records = instance.fetch_materializations(dg.AssetKey("market_bars"), limit=100).records
    latest = {}
    for record in records:  # newest first
        latest.setdefault(record.partition_key, record.asset_materialization.metadata)
    assert set(latest) == set(months)
    counts = {m: latest[m]["dagster/row_count"].value for m in months}
    assert sum(counts.values()) == 2 * 170 - 15  # every stored bar counted once
    firsts = [latest[m]["first_bar"].value for m in sorted(months)]
    assert firsts == sorted(firsts)
    assert all(f.startswith(m[:7]) for f, m in zip(firsts, sorted(months), strict=True))
    assert len({latest[m]["dvc_md5"].value for m in months}) == len(months)
    july = pl.Series([latest["2015-07-01"]["last_bar"].value]).str.to_datetime()
    assert july.dt.month()[0] == 7
