"""Features: the one causal feature set shared by training and serving."""

import dagster as dg

from tradeops_assets.defs.code_versions import versioned
from tradeops_assets.defs.features import checks
from tradeops_assets.defs.features.assets import market_features

defs = dg.Definitions(
    assets=versioned(market_features),
    asset_checks=[checks.features_schema, checks.features_finite, checks.features_no_look_ahead],
)
