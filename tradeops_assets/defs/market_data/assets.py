import dagster as dg

from resources.datasets import DatasetStore
from resources.market_data import MarketDataResource, month_digests
from tradeops_assets.core import schemas, sources, validation
from tradeops_assets.defs.lineage import combined_version, lineage_metadata
from tradeops_assets.defs.market_data.partitions import SOURCE_DIGEST, market_months, month_bounds
from tradeops_assets.keys import MARKET_BARS, MARKET_DATA_GROUP


@dg.asset(
    name=MARKET_BARS,
    group_name=MARKET_DATA_GROUP,
    partitions_def=market_months,
    backfill_policy=dg.BackfillPolicy.single_run(),
    kinds={"polars", "parquet", "dvc"},
    owners=["team:data-engineering"],
    tags={"layer": "raw"},
)
def market_bars(
    context: dg.AssetExecutionContext,
    market_data: MarketDataResource,
    datasets: DatasetStore,
) -> dg.MaterializeResult:
    """OHLCV bars exactly as the market-data source delivered them, one file per month.

    Columns: timestamp (UTC), symbol, open, high, low, close, volume; vendor headers
    are mapped to these names and Adj Close adjusts the whole bar. Rows are stored
    in delivery order and never repaired: the blocking checks judge them, and a
    failed check stops everything downstream while the raw month stays stored
    (and versioned in DVC) for inspection. Each month records its own row count,
    first and last bar, DVC md5 and the trading calendar of each symbol.
    """
    frames = {key: market_data.bars_between(*month_bounds(key)) for key in context.partition_keys}
    snapshots = datasets.write(MARKET_BARS, frames)
    calendars = market_data.calendars()
    for snap in snapshots:
        month = frames[snap.partition]
        stamps = month.get_column(schemas.TIMESTAMP)
        context.add_asset_metadata(
            {
                "dagster/row_count": month.height,
                "first_bar": str(stamps.min()) if month.height else "none",
                "last_bar": str(stamps.max()) if month.height else "none",
                "dvc_md5": snap.md5,
                "data_version": snap.md5,
                SOURCE_DIGEST: month_digests(month).get(snap.partition, ""),
                "symbols": dg.MetadataValue.json(sources.symbols_of(month)),
                **validation.calendars_used(month, calendars),
            },
            partition_key=snap.partition,
        )
    md5s = {snap.partition: snap.md5 for snap in snapshots}
    context.log.info(
        f"stored {sum(f.height for f in frames.values())} bars for {len(frames)} month(s) from "
        f"source '{market_data.source}', each pushed to DVC (md5s in each month's metadata)"
    )
    # Dagster stamps one data version per run; a one-month run (the sensor's) gets that
    # month's md5, a ranged backfill the digest of all of them (docs/decisions/0008).
    version = next(iter(md5s.values())) if len(md5s) == 1 else combined_version(md5s)
    return dg.MaterializeResult(
        data_version=dg.DataVersion(version),
        metadata={
            "source": market_data.source,
            "months_in_run": len(frames),
            **lineage_metadata(
                config={
                    "source": market_data.source,
                    "calendar": market_data.calendar,
                    "symbol_calendars": dict(market_data.symbol_calendars),
                },
                upstream={f"source/{k}": v for k, v in market_data.fingerprint().items()},
            ),
        },
    )
