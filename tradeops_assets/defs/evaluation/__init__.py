"""Evaluation: the backtest report, the promotion gate and the champion alias."""

import dagster as dg

from tradeops_assets.defs.code_versions import versioned
from tradeops_assets.defs.evaluation.assets import backtest_report, champion_policy
from tradeops_assets.defs.evaluation.checks import promotion_gate
from tradeops_assets.keys import AUDIT_TRAIL, EVALUATION_GROUP

audit_trail = dg.AssetSpec(
    AUDIT_TRAIL,
    group_name=EVALUATION_GROUP,
    description=(
        "The hash-chained audit log of every gate verdict, champion move, override, "
        "packaging and deployment, with who or what did it and why. Each appended record "
        "is an observation here carrying the chain's new head, its verification status and "
        "the latest records; `tradeops audit verify` checks the log's files against these "
        "heads, so a log rewritten or cut outside tradeops is caught."
    ),
    kinds={"json"},
    owners=["team:mlops"],
)

defs = dg.Definitions(
    assets=[*versioned(backtest_report, champion_policy), audit_trail],
    asset_checks=[promotion_gate],
)
