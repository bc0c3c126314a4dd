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
FEATURE_DRIFT = "feature_drift"
LIVE_PERFORMANCE = "live_performance"
SERVING_HEALTH = "serving_health"
AUDIT_TRAIL = "audit_trail"
"""The hash-chained audit log as the UI shows it: one observation per appended record,
each carrying the new head (an anchor ``tradeops audit verify`` checks the files against)."""

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
    FEATURE_DRIFT: MONITORING_GROUP,
    LIVE_PERFORMANCE: MONITORING_GROUP,
    SERVING_HEALTH: MONITORING_GROUP,
    AUDIT_TRAIL: EVALUATION_GROUP,
}
MONITORING = (FEATURE_DRIFT, LIVE_PERFORMANCE, SERVING_HEALTH)
"""Watch the live policy; upstream of nothing the traders call."""

RETRAIN_CHAIN = CHAIN[CHAIN.index(TRAINED_POLICY) :]
"""What a retrain rebuilds once the data is in: training through the live endpoint."""

MARKET_MONTHS = "market_months"
"""The dynamic partitions of market_bars: one key per calendar month the source holds."""

PROMOTION_GATE = "promotion_gate"
"""The blocking check on backtest_report whose verdict alone moves the champion."""

REPORT_LOCATION = "report_path"
"""backtest_report's metadata entry naming where its summary is stored: what the gate,
champion_policy, policy_bento and the CLI read back."""

FEATURE_DRIFT_CHECK = "feature_psi"
LIVE_PERFORMANCE_CHECK = "live_sharpe"
SERVING_HEALTH_CHECK = "serving_slo"
BREACH_CHECKS = ((FEATURE_DRIFT, FEATURE_DRIFT_CHECK), (LIVE_PERFORMANCE, LIVE_PERFORMANCE_CHECK))
"""The checks whose error-level failure asks for a retrain (drift_sensor)."""

TRIGGER_TAG = "tradeops/trigger"
"""Tags a run with what started it beyond Dagster's own (the breached check and its figures)."""
