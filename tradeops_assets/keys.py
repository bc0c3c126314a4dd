"""The asset graph's names, groups and order: the contract every layer shares.

Framework-free on purpose: definitions, sensors, the CLI and the tests read the
graph from here, so no group imports another group's asset module to learn a key,
and nothing keeps its own copy of the chain.
"""

MARKET_BARS = "market_bars"
MARKET_FEATURES = "market_features"
TRAINED_POLICY = "trained_policy"
BACKTEST_REPORT = "backtest_report"
CHAMPION_POLICY = "champion_policy"
POLICY_BENTO = "policy_bento"
POLICY_DEPLOYMENT = "policy_deployment"

MARKET_DATA_GROUP = "market_data"
FEATURES_GROUP = "features"
TRAINING_GROUP = "training"
EVALUATION_GROUP = "evaluation"
SERVING_GROUP = "serving"
MONITORING_GROUP = "monitoring"

CHAIN = (
    MARKET_BARS,
    MARKET_FEATURES,
    TRAINED_POLICY,
    BACKTEST_REPORT,
    CHAMPION_POLICY,
    POLICY_BENTO,
    POLICY_DEPLOYMENT,
)
"""Lineage order: each asset depends on the one before it."""

GROUP_OF = {
    MARKET_BARS: MARKET_DATA_GROUP,
    MARKET_FEATURES: FEATURES_GROUP,
    TRAINED_POLICY: TRAINING_GROUP,
    BACKTEST_REPORT: EVALUATION_GROUP,
    CHAMPION_POLICY: EVALUATION_GROUP,
    POLICY_BENTO: SERVING_GROUP,
    POLICY_DEPLOYMENT: SERVING_GROUP,
}

RETRAIN_CHAIN = CHAIN[CHAIN.index(TRAINED_POLICY) :]
"""What a retrain rebuilds once the data is in: training through the live endpoint."""

MARKET_MONTHS = "market_months"
"""The dynamic partitions of market_bars: one key per calendar month the source holds."""

PROMOTION_GATE = "promotion_gate"
"""The blocking check on backtest_report whose verdict alone moves the champion."""

REPORT_LOCATION = "report_path"
"""backtest_report's metadata entry naming where its summary is stored: what the gate,
champion_policy, policy_bento and the CLI read back."""
