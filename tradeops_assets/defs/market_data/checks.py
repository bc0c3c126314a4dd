import dagster as dg
import polars as pl

# Not re-exported by dagster 1.13; needed to tie a logged evaluation to its materialisation.
from dagster._core.definitions.asset_checks.asset_check_evaluation import (
    AssetCheckEvaluationTargetMaterializationData,
)

from resources.datasets import DatasetStore
from resources.market_data import MarketDataResource, month_key_expr
from tradeops_assets.core.validation import RULES, Rule, RuleResult
from tradeops_assets.defs.market_data.assets import market_bars
from tradeops_assets.defs.market_data.config import BarValidationConfig
from tradeops_assets.keys import MARKET_BARS

BARS_SCHEMA_CHECK = "bars_schema"
BAR_CHECK_NAMES = tuple(rule.name for rule in RULES)
assert BARS_SCHEMA_CHECK in BAR_CHECK_NAMES


def check_result(result: RuleResult) -> dg.AssetCheckResult:
    sample = result.sample.with_columns(pl.col(pl.Datetime).cast(pl.String)).to_dicts()
    return dg.AssetCheckResult(
        passed=result.passed,
        severity=dg.AssetCheckSeverity.ERROR,
        description=result.message,
        metadata={
            "rule": result.rule,
            "rule_description": result.description,
            "failing_rows": result.failing_rows,
            "first_offending_rows": dg.MetadataValue.json(sample),
            **{k: dg.MetadataValue.json(v) for k, v in result.details.items()},
        },
    )


def _bar_check(rule: Rule) -> dg.AssetChecksDefinition:
    @dg.asset_check(
        asset=market_bars,
        name=rule.name,
        description=f"Blocking: {rule.description}.",
        blocking=True,
        partitions_def=market_bars.partitions_def,
    )
    def bar_check(
        context: dg.AssetCheckExecutionContext,
        config: BarValidationConfig,
        market_data: MarketDataResource,
        datasets: DatasetStore,
    ) -> dg.AssetCheckResult:
        keys = list(context.op_execution_context.partition_keys)
        bars, _ = datasets.read(MARKET_BARS, keys)
        result = rule.evaluate(bars, config.policy(market_data.calendars()))
        for event in per_month_evaluations(context, rule, result, bars, keys):
            context.op_execution_context.log_event(event)
        return check_result(result)

    return bar_check


def per_month_evaluations(
    context: dg.AssetCheckExecutionContext,
    rule: Rule,
    result: RuleResult,
    bars: pl.DataFrame,
    keys: list[str],
) -> list[dg.AssetCheckEvaluation]:
    """One verdict per month, tied to that month's materialisation, for the UI's partition view.

    The blocking verdict judges the run's months together (a gap or jump across two
    months is visible only that way); Dagster 1.13 records that range-wide result
    against no partition, which would leave every month "planned" in the UI.
    """
    bad_months = (
        bars[result.rows.to_list()].select(month_key_expr()).to_series().value_counts()
        if len(result.rows)
        else pl.DataFrame({"timestamp": [], "count": []})
    )
    bad = dict(zip(bad_months[:, 0].to_list(), bad_months[:, 1].to_list(), strict=True))
    latest = {
        record.partition_key: record
        for record in context.instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=dg.AssetKey(MARKET_BARS), asset_partitions=keys),
            limit=len(keys),
        ).records
    }
    events = []
    for key in keys:
        record = latest.get(key)
        target = (
            AssetCheckEvaluationTargetMaterializationData(
                storage_id=record.storage_id, run_id=record.run_id, timestamp=record.timestamp
            )
            if record
            else None
        )
        events.append(
            dg.AssetCheckEvaluation(
                asset_key=dg.AssetKey(MARKET_BARS),
                check_name=rule.name,
                passed=key not in bad,  # a rule that could not run marks every row bad
                metadata={"failing_rows": bad.get(key, 0), "run_verdict": result.message},
                target_materialization_data=target,
                severity=dg.AssetCheckSeverity.ERROR,
                blocking=True,
                partition=key,
            )
        )
    return events


bar_checks = [_bar_check(rule) for rule in RULES]
"""One blocking check per rule in core.validation, so each failure is named on its own."""
