from datetime import datetime

import dagster as dg
import polars as pl

from tradeops_assets.deployment import Deployment, month_start


def market_partitions(deployment: Deployment) -> dg.MonthlyPartitionsDefinition:
    """One partition per calendar month (UTC) that the source holds bars for.

    Bounded by the source's own history so that "backfill everything" means the
    data that exists, not decades of empty months; a new month of vendor files
    adds a partition at the next code-location load.
    """
    history = deployment.history()
    last = history.last
    after_last = datetime(last.year + (last.month == 12), last.month % 12 + 1, 1)
    return dg.MonthlyPartitionsDefinition(
        start_date=month_start(history.first), end_date=after_last.strftime("%Y-%m-%d")
    )


def partition_key_expr() -> pl.Expr:
    """The partition key of each bar, in the partitions' own '%Y-%m-%d' format."""
    return pl.col("timestamp").dt.truncate("1mo").dt.strftime("%Y-%m-%d")
