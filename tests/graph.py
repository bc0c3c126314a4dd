"""The asset graph the design fixes, in lineage order: what the tests expect to find."""

ASSET_CHAIN = (
    "market_bars",
    "market_features",
    "trained_policy",
    "backtest_report",
    "champion_policy",
    "policy_bento",
    "policy_deployment",
)
