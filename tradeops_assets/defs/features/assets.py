import dagster as dg

from resources.datasets import DatasetStore
from tradeops_assets.core import features
from tradeops_assets.core.errors import ValidationError
from tradeops_assets.core.schemas import SYMBOL, TIMESTAMP
from tradeops_assets.defs.lineage import combined_version, lineage_metadata
from tradeops_assets.defs.market_data.verdicts import months_not_passed
from tradeops_assets.keys import FEATURES_GROUP, MARKET_BARS, MARKET_FEATURES


def load_checked_bars(instance: dg.DagsterInstance, datasets: DatasetStore):
    """Every stored month of bars, provided each passed every bar check as last stored.

    A month whose checks failed stays stored for inspection; it never feeds features,
    and nothing here judges bars a second time with thresholds of its own.
    """
    months = datasets.partitions(MARKET_BARS)
    refused = months_not_passed(instance, months)
    if refused:
        listed = "; ".join(f"{m} ({', '.join(why)})" for m, why in sorted(refused.items())[:5])
        raise ValidationError(
            f"{len(refused)} stored month(s) of {MARKET_BARS} have not passed every bar check, "
            f"refusing to build features from them: {listed}"
        )
    bars, md5s = datasets.read(MARKET_BARS, months)
    return bars.sort(SYMBOL, TIMESTAMP), md5s


@dg.asset(
    name=MARKET_FEATURES,
    group_name=FEATURES_GROUP,
    deps=[MARKET_BARS],
    backfill_policy=dg.BackfillPolicy.single_run(),
    automation_condition=dg.AutomationCondition.eager(),
    kinds={"polars", "parquet", "dvc"},
    owners=["team:ml-engineering"],
    tags={"layer": "features"},
)
def market_features(
    context: dg.AssetExecutionContext, datasets: DatasetStore
) -> dg.MaterializeResult:
    """Causal features of every symbol's bars: the exact inputs a policy sees, in training and live.

    Multi-horizon log returns, realised volatility, RSI, MACD, Bollinger %b, ATR,
    volume z-score, range, close location, overnight gap and trend, all computed by
    core/features.py, the same module the serving endpoint calls. Each value uses
    only bars at or before its timestamp (the no-look-ahead check proves it); the
    first warm-up bars of each symbol are dropped.
    """
    bars, upstream = load_checked_bars(context.instance, datasets)
    frame = features.compute_features(bars)
    (snapshot,) = datasets.write(MARKET_FEATURES, {"full": frame})
    context.log.info(f"{frame.height} feature rows from {bars.height} bars, md5 {snapshot.md5}")
    return dg.MaterializeResult(
        data_version=dg.DataVersion(snapshot.md5),
        metadata={
            "dagster/row_count": frame.height,
            "feature_columns": dg.MetadataValue.json(list(features.FEATURE_COLUMNS)),
            "warmup_bars": features.WARMUP_BARS,
            "dvc_md5": snapshot.md5,
            "upstream_data_version": combined_version(upstream),
            **lineage_metadata(
                config={"warmup_bars": features.WARMUP_BARS},
                upstream={f"{MARKET_BARS}/{k}": v for k, v in upstream.items()},
            ),
        },
    )
