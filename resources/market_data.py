"""The market-data source as a Dagster resource, configurable per deployment."""

from datetime import datetime

import dagster as dg
import polars as pl

from tradeops_assets.core.sources import load_bars, parse_source, window


class MarketDataResource(dg.ConfigurableResource):
    """Reads bars from ``sample``, ``synthetic[:k=v,...]`` or a directory of vendor files."""

    source: str = "sample"

    def bars_between(self, start: datetime, end: datetime) -> pl.DataFrame:
        return window(load_bars(self.source), start, end)

    def fingerprint(self) -> dict[str, str]:
        return parse_source(self.source).fingerprint()
