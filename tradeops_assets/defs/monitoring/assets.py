from datetime import datetime

import dagster as dg
import numpy as np
import polars as pl

from resources.datasets import DatasetStore
from resources.mlflow_policy import CHAMPION, PolicyRegistry
from resources.notifier import DRIFT, SERVING, Notifier
from resources.prediction_log import PredictionLogStore
from resources.serving import ServingTarget
from tradeops_assets.core import drift
from tradeops_assets.core.features import FEATURE_COLUMNS
from tradeops_assets.core.recipe import RegisteredPolicy
from tradeops_assets.core.schemas import SYMBOL, TIMESTAMP
from tradeops_assets.defs import plots
from tradeops_assets.defs.lineage import lineage_metadata
from tradeops_assets.defs.monitoring.config import DriftConfig, HealthConfig, PerformanceConfig
from tradeops_assets.defs.monitoring.partitions import monitoring_days
from tradeops_assets.defs.retries import IO_RETRY
from tradeops_assets.keys import (
    CHAMPION_POLICY,
    FEATURE_DRIFT,
    FEATURE_DRIFT_CHECK,
    LIVE_PERFORMANCE,
    LIVE_PERFORMANCE_CHECK,
    MARKET_BARS,
    MARKET_FEATURES,
    MONITORING_GROUP,
    POLICY_DEPLOYMENT,
    SERVING_HEALTH,
    SERVING_HEALTH_CHECK,
)


def _verdict(check: str, value: float, warn: float, error: float, why: str, meta: dict):
    """Passed below ``warn``; a warning up to ``error``; an error at or above it."""
    severity = dg.AssetCheckSeverity.ERROR if value >= error else dg.AssetCheckSeverity.WARN
    return dg.AssetCheckResult(
        check_name=check,
        passed=value < warn,
        severity=severity,
        description=why,
        metadata={"value": value, "warn_at": warn, "error_at": error, **meta},
    )


def _not_judged(check: str, why: str) -> dg.AssetCheckResult:
    """Nothing to judge is said as such: not applicable is not a pass of the threshold."""
    return dg.AssetCheckResult(
        check_name=check,
        passed=True,
        severity=dg.AssetCheckSeverity.WARN,
        description=f"not applicable: {why}",
        metadata={"verdict": "not_applicable", "why": why},
    )


def _champion(registry: PolicyRegistry) -> tuple[RegisteredPolicy | None, str]:
    """The champion monitoring can judge against, or why there is none."""
    version = registry.version_for(CHAMPION)
    if not version:
        return None, "no champion yet"
    champion = registry.fetch(version)
    if champion.reference is None:
        return None, "the champion has no stored reference"
    return champion, ""


def _day(context: dg.AssetExecutionContext) -> tuple[datetime, datetime]:
    window = context.partition_time_window
    return window.start, window.end


def _served_on(predictions: PredictionLogStore, start: datetime, end: datetime) -> pl.DataFrame:
    log = predictions.read()
    return log.filter(pl.col("predicted_at").is_between(start, end, closed="left"))


def _monitoring_asset(
    name: str, check: str, deps: list[str], *, eager: bool, kind: str, owner: str
):
    """A daily monitoring asset with its one warn/error check; eager ones follow new data."""
    return dg.asset(
        name=name,
        group_name=MONITORING_GROUP,
        partitions_def=monitoring_days,
        retry_policy=IO_RETRY,
        deps=deps,
        check_specs=[dg.AssetCheckSpec(check, asset=name)],
        automation_condition=dg.AutomationCondition.eager() if eager else None,
        kinds={kind},
        owners=[owner],
    )


@_monitoring_asset(
    FEATURE_DRIFT,
    FEATURE_DRIFT_CHECK,
    [MARKET_FEATURES, CHAMPION_POLICY],
    eager=True,
    kind="numpy",
    owner="team:ml-engineering",
)
def feature_drift(
    context: dg.AssetExecutionContext,
    config: DriftConfig,
    datasets: DatasetStore,
    registry: PolicyRegistry,
    predictions: PredictionLogStore,
    notifier: Notifier,
) -> dg.MaterializeResult:
    """How far today's market, and what traders sent the endpoint, are from what the
    champion policy learned on.

    Reference: every feature over the champion's training window (stored with it at
    registration). Current: the latest bars of every symbol up to the day's end, and the
    features the endpoint computed for the day's requests. Per feature: PSI (0.1 / 0.25
    is moderate / significant shift), KS and Wasserstein distance; also the drift of the
    champion's served actions from its validation-window actions. An error-level breach
    asks drift_sensor for a retrain.
    """
    start, end = _day(context)
    champion, why = _champion(registry)
    if champion is None:
        return dg.MaterializeResult(
            metadata={"verdict": why}, check_results=[_not_judged(FEATURE_DRIFT_CHECK, why)]
        )
    frame, md5s = datasets.read(MARKET_FEATURES)
    latest = frame.filter(pl.col(TIMESTAMP) < end).sort(SYMBOL, TIMESTAMP)
    latest = latest.group_by(SYMBOL, maintain_order=True).tail(config.window_bars)
    served = _served_on(predictions, start, end)
    reference = champion.reference
    market = drift.drift(reference.features, latest.select(FEATURE_COLUMNS).to_numpy())
    live = drift.drift(reference.features, served.select(FEATURE_COLUMNS).to_numpy())
    actions = drift.action_drift(reference.actions, served["target_position"].to_numpy())
    judged = [market] if market.judged else []
    if live.rows >= config.min_served_rows:
        judged.append(live)
    if not judged:
        why = (
            f"no market bars before the day's end and {live.rows} served requests "
            f"(fewer than {config.min_served_rows})"
        )
        return dg.MaterializeResult(check_results=[_not_judged(FEATURE_DRIFT_CHECK, why)])
    worst = max(judged, key=lambda d: d.worst_psi)
    source = "market" if worst is market else "served requests"
    figures = {
        "worst_feature": worst.worst,
        "worst_psi": round(worst.worst_psi, 4),
        "features_over_error": ", ".join(
            f"{name} {psi:.2f}" for name, psi in worst.over(config.psi_error).items()
        )
        or "none",
        "source": source,
        "champion_version": champion.version,
        "features_data_version": md5s["full"],
    }
    if worst.worst_psi >= config.psi_error:
        notifier.alert(DRIFT, f"feature drift: {worst.worst} PSI {worst.worst_psi:.3f}", figures)
    check = _verdict(
        FEATURE_DRIFT_CHECK,
        worst.worst_psi,
        config.psi_warn,
        config.psi_error,
        f"worst feature {worst.worst} ({source}): PSI {worst.worst_psi:.3f}",
        figures,
    )
    images = {
        "psi_by_feature": _psi_plot(market, live, config),
        "worst_feature": _distributions_plot(
            reference.features, worst, latest if worst is market else served
        ),
    }
    return dg.MaterializeResult(
        metadata={
            **figures,
            "market_rows": market.rows,
            "served_rows": live.rows,
            "action_psi": round(float(actions.psi[0]), 4) if actions.judged else "no requests",
            "market_drift": dg.MetadataValue.md(_table(market)),
            "served_drift": dg.MetadataValue.md(_table(live) if live.judged else "no requests"),
            "plots": dg.MetadataValue.md(plots.markdown(images)),
            **lineage_metadata(
                config=config.model_dump(),
                upstream={MARKET_FEATURES: md5s["full"], CHAMPION_POLICY: f"v{champion.version}"},
            ),
        },
        check_results=[check],
    )


def _table(result: drift.Drift) -> str:
    lines = ["| feature | PSI | KS | Wasserstein |", "|---|---|---|---|"]
    for row in result.table().iter_rows(named=True):
        lines.append(
            f"| {row['feature']} | {row['psi']:.4f} | {row['ks']:.4f} | {row['wasserstein']:.4g} |"
        )
    return "\n".join(lines)


def _psi_plot(market: drift.Drift, live: drift.Drift, config: DriftConfig) -> str:
    fig, ax = plots.figure(8, 3.5)
    x = np.arange(len(market.columns))
    ax.bar(x - 0.2, market.psi, 0.4, label="market")
    if live.judged:
        ax.bar(x + 0.2, live.psi, 0.4, label="served requests")
    ax.axhline(config.psi_warn, color="orange", lw=1, ls="--", label="warn")
    ax.axhline(config.psi_error, color="red", lw=1, ls="--", label="error")
    ax.set_xticks(x, market.columns, rotation=60, ha="right", fontsize=7)
    ax.set_title("PSI per feature against the champion's training window")
    ax.legend(fontsize=7)
    return plots.png(fig)


def _distributions_plot(
    reference: drift.DistributionReference, worst: drift.Drift, current_rows: pl.DataFrame
) -> str:
    """The worst feature's share of rows per reference bin, training window against now."""
    name = worst.worst or reference.columns[0]
    i = reference.columns.index(name)
    current = drift.bin_shares(
        current_rows[name].to_numpy()[:, None],
        reference.edges[i : i + 1],
        reference.low[i : i + 1],
        reference.high[i : i + 1],
    )[0]
    fig, ax = plots.figure(8, 3)
    centres = np.arange(reference.shares.shape[1])
    ax.step(centres, reference.shares[i], where="mid", label="training window")
    ax.step(centres, current, where="mid", label="current")
    ax.set_title(f"{name}: share of rows per reference percentile (outside bins at the ends)")
    ax.legend(fontsize=7)
    return plots.png(fig)


@_monitoring_asset(
    LIVE_PERFORMANCE,
    LIVE_PERFORMANCE_CHECK,
    # Whichever months the served decisions fall in: all of them, not the same day's key.
    [dg.AssetDep(MARKET_BARS, partition_mapping=dg.AllPartitionMapping()), POLICY_DEPLOYMENT],
    eager=True,
    kind="numpy",
    owner="team:ml-engineering",
)
def live_performance(
    context: dg.AssetExecutionContext,
    config: PerformanceConfig,
    datasets: DatasetStore,
    registry: PolicyRegistry,
    predictions: PredictionLogStore,
) -> dg.MaterializeResult:
    """What the champion's served decisions actually earned, against what it earned on its
    validation window.

    Every decision the endpoint served up to the day's end is priced with the bar that
    followed it, like the backtest prices (fees, slippage, borrow): realised P&L, Sharpe,
    hit rate and drawdown, with the equity curve. A Sharpe far enough below the
    expectation asks drift_sensor for a retrain; too few decisions are not judged.
    """
    _, end = _day(context)
    champion, why = _champion(registry)
    if champion is None:
        return dg.MaterializeResult(check_results=[_not_judged(LIVE_PERFORMANCE_CHECK, why)])
    log = predictions.read()
    served = log.filter(
        (pl.col("policy_version") == champion.version) & (pl.col("predicted_at") < end)
    )
    bars, _ = datasets.read(MARKET_BARS)
    live = drift.realised(
        served, bars, champion.recipe.env, champion.reference.expected, config.min_decisions
    )
    figures = {
        "decisions_with_outcome": live.decisions,
        "served_decisions": served.height,
        "pnl_total": round(live.pnl_total, 6),
        "sharpe": round(live.sharpe, 3),
        "expected_sharpe": round(live.expected.sharpe, 3),
        "hit_rate": round(live.hit_rate, 4),
        "expected_hit_rate": round(live.expected.hit_rate, 4),
        "max_drawdown": round(live.max_drawdown, 6),
        "champion_version": champion.version,
    }
    if not live.judged:
        why = f"{live.decisions} decisions with a known outcome, fewer than {live.min_decisions}"
        check = _not_judged(LIVE_PERFORMANCE_CHECK, why)
    else:
        check = _verdict(
            LIVE_PERFORMANCE_CHECK,
            live.sharpe_shortfall,
            config.shortfall_warn,
            config.shortfall_error,
            f"live Sharpe {live.sharpe:.2f} vs {live.expected.sharpe:.2f} expected",
            figures,
        )
    images = {}
    if live.decisions:
        fig, ax = plots.figure()
        ax.plot(live.curve["bar_timestamp"].to_list(), live.curve["equity"].to_list())
        ax.set_title(f"Realised equity of served decisions, v{champion.version} (log return)")
        images["equity"] = plots.png(fig)
    return dg.MaterializeResult(
        metadata={**figures, "plots": dg.MetadataValue.md(plots.markdown(images))},
        check_results=[check],
    )


@_monitoring_asset(
    SERVING_HEALTH,
    SERVING_HEALTH_CHECK,
    [POLICY_DEPLOYMENT],
    eager=False,
    kind="bentoml",
    owner="team:mlops",
)
def serving_health(
    context: dg.AssetExecutionContext,
    config: HealthConfig,
    predictions: PredictionLogStore,
    serving: ServingTarget,
    notifier: Notifier,
) -> dg.MaterializeResult:
    """How the traders' endpoint served the day: requests, error rate, latency, restarts.

    Answered requests and their latency come from the prediction log; refused and
    failed requests from the service's own counters. The firm's limit is 300 ms. A
    bento that died and was started again by the front door, a restart that failed,
    and prediction-log writes that failed (decisions not yet durable) are counted and
    alerted; a failed restart is a breach, since the endpoint was down.
    """
    start, end = _day(context)
    served = _served_on(predictions, start, end)
    latency = served["latency_ms"].to_numpy()
    counts = serving.request_counts()
    refused = sum(n for code, n in counts.items() if 400 <= code < 500)
    failed = sum(n for code, n in counts.items() if code >= 500)
    total = sum(counts.values())
    events = [e for e in serving.events() if start <= datetime.fromisoformat(e["time"]) < end]
    figures = {
        "answered": served.height,
        "p50_ms": round(float(np.percentile(latency, 50)), 2) if latency.size else 0.0,
        "p99_ms": round(float(np.percentile(latency, 99)), 2) if latency.size else 0.0,
        "refused_4xx": refused,
        "failed_5xx": failed,
        "requests_since_start": total,
        "error_rate": round(failed / total, 5) if total else 0.0,
        "bento_restarts": sum(e["event"] == "bento_restarted" for e in events),
        "bento_restart_failures": sum(e["event"] == "bento_restart_failed" for e in events),
        "prediction_log_write_failures": int(
            serving.counter("tradeops_prediction_log_write_failures_total")
        ),
    }
    if figures["bento_restarts"] or figures["bento_restart_failures"]:
        notifier.alert(SERVING, "the bento died and was started again", {"events": events})
    if figures["prediction_log_write_failures"]:
        notifier.alert(SERVING, "prediction log writes failed (rows kept, retried)", figures)
    if not served.height and not total and not events:
        check = _not_judged(SERVING_HEALTH_CHECK, "no requests served that day")
    else:
        over = max(
            figures["p99_ms"] / config.p99_limit_ms,
            figures["error_rate"] / config.error_rate_limit,
            float(figures["bento_restart_failures"] > 0),
        )
        check = _verdict(
            SERVING_HEALTH_CHECK,
            over,
            1.0,
            1.0,
            f"p99 {figures['p99_ms']} ms, error rate {figures['error_rate']:.2%}, bento "
            f"restarts {figures['bento_restarts']} ({figures['bento_restart_failures']} failed)",
            figures,
        )
        if over >= 1.0:
            notifier.alert(SERVING, "serving health breach", figures)
    return dg.MaterializeResult(metadata=figures, check_results=[check])
