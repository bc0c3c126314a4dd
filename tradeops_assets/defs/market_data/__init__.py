"""Market bars: ingestion from the configured source, and the rules they must pass."""

import dagster as dg

from tradeops_assets.defs.market_data.assets import build_market_bars
from tradeops_assets.defs.market_data.checks import build_bar_checks
from tradeops_assets.defs.market_data.partitions import market_partitions
from tradeops_assets.deployment import Deployment


def defs(deployment: Deployment) -> dg.Definitions:
    partitions = market_partitions(deployment)
    market_bars = build_market_bars(partitions)
    return dg.Definitions(assets=[market_bars], asset_checks=build_bar_checks(market_bars))
