import dagster as dg
import polars as pl

from resources.datasets import DatasetStore
from tradeops_assets.core.validation import RULES, Rule, RuleResult
from tradeops_assets.defs.market_data.assets import MARKET_BARS
from tradeops_assets.defs.market_data.config import BarValidationConfig

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
        },
    )


def _bar_check(rule: Rule, market_bars: dg.AssetsDefinition) -> dg.AssetChecksDefinition:
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
        datasets: DatasetStore,
    ) -> dg.AssetCheckResult:
        bars, _ = datasets.read(MARKET_BARS, list(context.partition_keys))
        return check_result(rule.evaluate(bars, config.policy()))

    return bar_check


def build_bar_checks(market_bars: dg.AssetsDefinition) -> list[dg.AssetChecksDefinition]:
    """One blocking check per rule in core.validation, so each failure is named on its own."""
    return [_bar_check(rule, market_bars) for rule in RULES]
