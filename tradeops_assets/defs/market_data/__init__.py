"""Market bars: ingestion from the configured source, and the rules they must pass."""

import dagster as dg

from tradeops_assets.defs.code_versions import versioned
from tradeops_assets.defs.market_data.assets import market_bars
from tradeops_assets.defs.market_data.checks import bar_checks

defs = dg.Definitions(assets=versioned(market_bars), asset_checks=bar_checks)
