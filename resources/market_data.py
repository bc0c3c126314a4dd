"""The market-data source and the rules its bars are judged by, per deployment.

Validation thresholds and trading calendars are resource config, not a check's
run config: the bar checks and ``market_features`` (which re-validates every
month it reads) take them from here, so a threshold set once reaches every place
that validates. Override them for a run in the launchpad's ``resources`` section.
"""

import hashlib
from datetime import datetime

import dagster as dg
import polars as pl
from pydantic import Field

from tradeops_assets.core.calendars import AUTO, CalendarChoice, bars_per_year
from tradeops_assets.core.errors import MarketDataError
from tradeops_assets.core.sources import DEFAULT_SOURCE, load_bars, parse_source, window
from tradeops_assets.core.validation import ValidationPolicy

_RULES = ValidationPolicy()


def month_key_expr() -> pl.Expr:
    """The partition key of each bar: its calendar month (UTC) as '%Y-%m-01'."""
    return pl.col("timestamp").dt.truncate("1mo").dt.strftime("%Y-%m-%d")


class MarketDataResource(dg.ConfigurableResource):
    """Bars from ``sample``, ``synthetic[:k=v,...]`` or a folder of vendor files."""

    source: str = DEFAULT_SOURCE
    calendar: str = Field(
        AUTO,
        description="trading calendar of every symbol: 'auto' (24x7 if it trades on weekends, "
        "else 24x5), '24x5' (FX), '24x7' (crypto) or an exchange MIC such as XNYS",
    )
    symbol_calendars: dict[str, str] = Field(
        default_factory=dict, description="per-symbol calendars, e.g. {'AAPL': 'XNYS'}"
    )
    max_gap_ratio: float = Field(
        _RULES.max_gap_ratio, description="longest gap allowed, in median bar spacings"
    )
    max_abs_log_return: float = Field(
        _RULES.max_abs_log_return, description="largest |log return| a single bar may show"
    )

    def bars(self) -> pl.DataFrame:
        return load_bars(self.source)

    def bars_between(self, start: datetime, end: datetime) -> pl.DataFrame:
        return window(self.bars(), start, end)

    def fingerprint(self) -> dict[str, str]:
        return parse_source(self.source).fingerprint()

    def calendars(self) -> CalendarChoice:
        return CalendarChoice(self.calendar, dict(self.symbol_calendars))

    def validation_policy(self) -> ValidationPolicy:
        return ValidationPolicy(self.max_gap_ratio, self.max_abs_log_return, self.calendars())

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
