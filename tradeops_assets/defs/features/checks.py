import dagster as dg
import pandera.errors as pa_errors
import polars as pl

from resources.datasets import DatasetStore
from tradeops_assets.core import features
from tradeops_assets.defs.features.assets import load_checked_bars
from tradeops_assets.keys import MARKET_FEATURES

FEATURES_SCHEMA_CHECK = "features_schema"
FEATURES_FINITE_CHECK = "features_finite"
FEATURES_NO_LOOK_AHEAD_CHECK = "features_no_look_ahead"
LOOK_AHEAD_CUT_BARS = 25


@dg.asset_check(
    asset=MARKET_FEATURES,
    name=FEATURES_SCHEMA_CHECK,
    blocking=True,
    description="Blocking: key columns and every feature column, Float64.",
)
def features_schema(datasets: DatasetStore) -> dg.AssetCheckResult:
    frame, _ = datasets.read(MARKET_FEATURES)
    try:
        features.feature_schema().validate(frame, lazy=True)
    except (pa_errors.SchemaError, pa_errors.SchemaErrors) as exc:
        return dg.AssetCheckResult(passed=False, description=str(exc)[:2000])
    return dg.AssetCheckResult(passed=True, metadata={"columns": len(frame.columns)})


@dg.asset_check(
    asset=MARKET_FEATURES,
    name=FEATURES_FINITE_CHECK,
    blocking=True,
    description="Blocking: no null, NaN or infinite feature after the warm-up.",
)
def features_finite(datasets: DatasetStore) -> dg.AssetCheckResult:
    frame, _ = datasets.read(MARKET_FEATURES)
    bad = frame.select(
        [
            (pl.col(c).is_null() | ~pl.col(c).is_finite()).sum().alias(c)
            for c in features.FEATURE_COLUMNS
        ]
    ).row(0, named=True)
    offending = {c: n for c, n in bad.items() if n}
    return dg.AssetCheckResult(
        passed=not offending,
        description="all features finite" if not offending else f"non-finite values: {offending}",
        metadata={"non_finite_by_column": dg.MetadataValue.json(offending)},
    )


@dg.asset_check(
    asset=MARKET_FEATURES,
    name=FEATURES_NO_LOOK_AHEAD_CHECK,
    blocking=True,
    description="Blocking: features on truncated history equal the prefix on full history.",
)
def features_no_look_ahead(
    context: dg.AssetCheckExecutionContext, datasets: DatasetStore
) -> dg.AssetCheckResult:
    bars, _ = load_checked_bars(context.instance, datasets)
    mismatches = features.look_ahead_mismatches(bars, cut=LOOK_AHEAD_CUT_BARS)
    return dg.AssetCheckResult(
        passed=mismatches == 0,
        description=f"{mismatches} feature value(s) change when the last "
        f"{LOOK_AHEAD_CUT_BARS} bars of each symbol are removed",
        metadata={"mismatching_values": mismatches, "cut_bars": LOOK_AHEAD_CUT_BARS},
    )
