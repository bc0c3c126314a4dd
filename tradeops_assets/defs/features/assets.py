import dagster as dg

from resources.datasets import DatasetStore
from resources.market_data import MarketDataResource
from tradeops_assets.core import features, validation
from tradeops_assets.core.errors import ValidationError
from tradeops_assets.core.schemas import SYMBOL, TIMESTAMP
from tradeops_assets.defs.lineage import code_version, combined_version, lineage_metadata
from tradeops_assets.keys import FEATURES_GROUP, MARKET_BARS, MARKET_FEATURES


def load_validated_bars(datasets: DatasetStore, market_data: MarketDataResource):
    """All stored months of bars, re-validated by the same rules and thresholds as the checks.

    A month whose checks failed stays stored for inspection; it never feeds features.
    """
    bars, md5s = datasets.read(MARKET_BARS)
    policy = market_data.validation_policy()
    failed = [r.message for r in validation.validate_bars(bars, policy) if not r.passed]
    if failed:
        raise ValidationError(
            f"stored {MARKET_BARS} break validation rules, refusing to build features: {failed}"
        )
    return bars.sort(SYMBOL, TIMESTAMP), md5s


@dg.asset(
    name=MARKET_FEATURES,
    group_name=FEATURES_GROUP,
    deps=[MARKET_BARS],
    backfill_policy=dg.BackfillPolicy.single_run(),
    code_version=code_version(features),
    kinds={"polars", "parquet", "dvc"},
    owners=["team:ml-engineering"],
    tags={"layer": "features"},
)
def market_features(
    context: dg.AssetExecutionContext, datasets: DatasetStore, market_data: MarketDataResource
) -> dg.MaterializeResult:
    """Causal features of every symbol's bars: the exact inputs a policy sees, in training and live.

    Multi-horizon log returns, realised volatility, RSI, MACD, Bollinger %b, ATR,
    volume z-score, range, close location, overnight gap and trend, all computed by
    core/features.py, the same module the serving endpoint calls. Each value uses
    only bars at or before its timestamp (the no-look-ahead check proves it); the
    first warm-up bars of each symbol are dropped.
    """
    bars, upstream = load_validated_bars(datasets, market_data)
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
