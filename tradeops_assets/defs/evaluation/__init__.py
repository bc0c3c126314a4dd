"""Evaluation: the backtest report, the promotion gate and the champion alias."""

import dagster as dg

from tradeops_assets.defs.code_versions import versioned
from tradeops_assets.defs.evaluation.assets import backtest_report, champion_policy
from tradeops_assets.defs.evaluation.checks import promotion_gate

defs = dg.Definitions(
    assets=versioned(backtest_report, champion_policy), asset_checks=[promotion_gate]
)
