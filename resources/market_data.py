"""The market-data source and the trading calendar of its symbols, per deployment.

Both are properties of the deployment's market (``TRADEOPS_MARKET_SOURCE``,
``TRADEOPS_MARKET_CALENDAR``, ``TRADEOPS_SYMBOL_CALENDARS``), not of a run: the bar
checks, market_bars' metadata and training's annualisation all read the calendar
here. ``source`` has no default on purpose: Dagster fills a resource's unspecified
fields with class defaults when a run overrides any of them, so a launchpad override
must name the source rather than silently fall back to another one.
"""

import hashlib
from datetime import datetime

import dagster as dg
import polars as pl
from pydantic import Field

from tradeops_assets.core.calendars import AUTO, CalendarChoice, bars_per_year
from tradeops_assets.core.errors import MarketDataError
from tradeops_assets.core.sources import load_bars, parse_source, window


def month_key_expr() -> pl.Expr:
    """The partition key of each bar: its calendar month (UTC) as '%Y-%m-01'."""
    return pl.col("timestamp").dt.truncate("1mo").dt.strftime("%Y-%m-%d")


class MarketDataResource(dg.ConfigurableResource):
    """Bars from ``sample``, ``synthetic[:k=v,...]`` or a folder of vendor files."""

    source: str = Field(description="sample, synthetic[:k=v,...] or a folder of vendor files")
    calendar: str = Field(
        AUTO,
        description="trading calendar of every symbol: 'auto' (24x7 if it trades on weekends, "
        "else 24x5), '24x5' (FX), '24x7' (crypto) or an exchange MIC such as XNYS",
    )
    symbol_calendars: dict[str, str] = Field(
        default_factory=dict, description="per-symbol calendars, e.g. {'AAPL': 'XNYS'}"
    )

    def bars(self) -> pl.DataFrame:
        return load_bars(self.source)

    def bars_between(self, start: datetime, end: datetime) -> pl.DataFrame:
        return window(self.bars(), start, end)

    def fingerprint(self) -> dict[str, str]:
        return parse_source(self.source).fingerprint()

    def calendars(self) -> CalendarChoice:
        return CalendarChoice(self.calendar, dict(self.symbol_calendars))

    def bars_per_year(self, bars: pl.DataFrame) -> float:
        return bars_per_year(bars, self.calendars())

    def month_digests(self) -> dict[str, str]:
        """Each month's bars as the source holds them now, as a digest: what changed since."""
        return month_digests(self.bars())


def month_digests(bars: pl.DataFrame) -> dict[str, str]:
    """Refuses bars without a timestamp: they belong to no month and would vanish unjudged."""
    keyed = bars.with_columns(month_key_expr().alias("_month"))
    orphans = keyed.filter(pl.col("_month").is_null())
    if orphans.height:
        raise MarketDataError(
            f"{orphans.height} bar(s) from the source have no timestamp, so no month to be "
            f"stored and judged in; first: {orphans.drop('_month').head(3).to_dicts()}"
        )
    return {
        str(month): hashlib.sha256(part.drop("_month").write_csv().encode()).hexdigest()
        for (month,), part in keyed.group_by("_month", maintain_order=True)
    }
