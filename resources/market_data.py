"""The market-data source as a Dagster resource, configurable per deployment."""

from datetime import datetime
from functools import lru_cache

import dagster as dg
import polars as pl

from tradeops_assets.core.sources import parse_source, window


@lru_cache(maxsize=2)
def _all_bars(spec: str) -> pl.DataFrame:
    return parse_source(spec).bars()


class MarketDataResource(dg.ConfigurableResource):
    """Reads bars from ``sample``, ``synthetic[:k=v,...]`` or a directory of vendor files."""

    source: str = "sample"

    def bars_between(self, start: datetime, end: datetime) -> pl.DataFrame:
        return window(_all_bars(self.source), start, end)

    def fingerprint(self) -> dict[str, str]:
        return parse_source(self.source).fingerprint()
