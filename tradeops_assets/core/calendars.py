"""Market time: how much trading happens between two bars, by the market's own calendar.

A weekend is 48 hours of wall clock and zero hours of FX trading; an exchange
holiday is a missing day on the wall clock and no missing session on the
exchange's. Gap checks and annualisation measure bars on a *trading clock*: a
monotone count of open-market seconds, which stands still while the market is
closed. Three kinds of market:

- ``24x7`` (crypto): the wall clock.
- ``24x5`` (spot FX): open from Sunday 17:00 to Friday 17:00 New York time, the
  interbank convention, and closed on 25 December and 1 January.
- an exchange's MIC (``XNYS``, ``XLON``, ...): its sessions from the
  exchange-calendars library, holidays and half days included.

``auto`` picks ``24x7`` for a symbol with bars on a weekend and ``24x5`` otherwise;
exchange-traded intraday bars need their exchange named (their overnight closes
are not weekends), and daily bars gain holiday-awareness from it.
"""

import itertools
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Protocol

import numpy as np
import polars as pl

from tradeops_assets.core.errors import ConfigError
from tradeops_assets.core.schemas import SYMBOL, TIMESTAMP

AUTO = "auto"
ALWAYS_OPEN = "24x7"
FX = "24x5"
SECONDS_PER_DAY = 86_400
FX_ZONE = "America/New_York"
FX_ROLL = timedelta(hours=7)  # 17:00 New York + 7 h = midnight: the FX week is Monday..Friday
FX_HOLIDAYS = ((12, 25), (1, 1))


class Calendar(Protocol):
    name: str

    def clock(self, stamps: pl.Series) -> np.ndarray:
        """Seconds of open market before each UTC timestamp (float64, non-decreasing in time)."""
        ...

    def seconds_per_year(self) -> float: ...


@dataclass(frozen=True)
class AlwaysOpen:
    name: str = ALWAYS_OPEN

    def clock(self, stamps: pl.Series) -> np.ndarray:
        return stamps.dt.epoch("us").to_numpy().astype(np.float64) / 1e6

    def seconds_per_year(self) -> float:
        return 365.25 * SECONDS_PER_DAY


def _fx_holidays() -> np.ndarray:
    years = range(1970, 2101)
    return np.array(
        [np.datetime64(f"{y}-{m:02d}-{d:02d}") for y in years for m, d in FX_HOLIDAYS],
        dtype="datetime64[D]",
    )


@dataclass(frozen=True)
class ForexWeek:
    """Spot FX hours: in New York time shifted by 7 hours, every weekday but two holidays."""

    name: str = FX
    holidays: np.ndarray = field(default_factory=_fx_holidays, repr=False, compare=False)

    def clock(self, stamps: pl.Series) -> np.ndarray:
        local = (_fx_local(stamps) + FX_ROLL).to_numpy()
        days = local.astype("datetime64[D]")
        into_day = (local - days).astype("timedelta64[us]").astype(np.float64) / 1e6
        before = np.busday_count(np.datetime64("1970-01-01"), days, holidays=self.holidays)
        open_now = np.is_busday(days, holidays=self.holidays)
        return before * float(SECONDS_PER_DAY) + np.where(open_now, into_day, 0.0)

    def seconds_per_year(self) -> float:
        days = np.busday_count(
            np.datetime64("2000-01-01"), np.datetime64("2100-01-01"), holidays=self.holidays
        )
        return days / 100 * SECONDS_PER_DAY


@dataclass(frozen=True)
class Exchange:
    """An exchange's sessions (open to close, holidays and half days) from exchange-calendars."""

    name: str
    opens: np.ndarray = field(repr=False, compare=False)  # int64 µs, one per session
    durations: np.ndarray = field(repr=False, compare=False)  # float64 s
    before: np.ndarray = field(repr=False, compare=False)  # float64 s open before each session

    def clock(self, stamps: pl.Series) -> np.ndarray:
        at = stamps.dt.epoch("us").to_numpy()
        if len(at) and (at.min() < self.opens[0] or at.max() > self.opens[-1] + 86_400e6):
            raise ConfigError(
                f"calendar {self.name} covers {_day(self.opens[0])} .. {_day(self.opens[-1])}, "
                f"bars run {_day(at.min())} .. {_day(at.max())}"
            )
        session = np.searchsorted(self.opens, at, side="right") - 1
        safe = np.maximum(session, 0)
        elapsed = np.clip((at - self.opens[safe]) / 1e6, 0.0, self.durations[safe])
        return np.where(session >= 0, self.before[safe] + elapsed, 0.0)

    def seconds_per_year(self) -> float:
        years = (self.opens[-1] - self.opens[0]) / 1e6 / (365.25 * SECONDS_PER_DAY)
        return float(self.before[-1] + self.durations[-1]) / max(years, 1e-9)


def _day(micros: float) -> str:
    return str(np.datetime64(int(micros), "us").astype("datetime64[D]"))


@lru_cache(maxsize=16)
def exchange(mic: str, first_year: int, last_year: int) -> Exchange:
    """The exchange's sessions over whole years, built once per process (it takes a second)."""
    import exchange_calendars

    try:
        calendar = exchange_calendars.get_calendar(
            mic, start=f"{first_year}-01-01", end=f"{last_year}-12-31"
        )
    except exchange_calendars.errors.InvalidCalendarName:
        raise ConfigError(
            f"unknown trading calendar {mic!r}: use {AUTO!r}, {ALWAYS_OPEN!r}, {FX!r} or an "
            "exchange MIC known to exchange-calendars (XNYS, XNAS, XLON, XTKS, ...)"
        ) from None
    except ValueError as exc:  # a range the calendar does not cover
        raise ConfigError(f"trading calendar {mic}: {exc}") from None
    schedule = calendar.schedule
    opens = schedule["open"].astype("int64").to_numpy() // 1000  # ns since the epoch, UTC
    closes = schedule["close"].astype("int64").to_numpy() // 1000
    durations = (closes - opens) / 1e6
    before = np.concatenate([[0.0], np.cumsum(durations)[:-1]])
    return Exchange(mic, opens, durations, before)


@dataclass(frozen=True)
class CalendarChoice:
    """Which calendar each symbol trades on: ``default`` unless ``by_symbol`` names one."""

    default: str = AUTO
    by_symbol: Mapping[str, str] = field(default_factory=dict)

    def name_for(self, symbol: str) -> str:
        return self.by_symbol.get(symbol, self.default)

    def resolve(self, symbol: str, stamps: pl.Series) -> Calendar:
        """The calendar for ``symbol``'s bars (UTC timestamps); ``auto`` looks at the bars."""
        name = self.name_for(symbol).strip()
        if name.upper() == AUTO.upper():
            name = ALWAYS_OPEN if trades_on_weekends(stamps) else FX
        if name == ALWAYS_OPEN:
            return AlwaysOpen()
        if name == FX:
            return ForexWeek()
        present = stamps.drop_nulls()
        if present.is_empty():
            return AlwaysOpen()
        first, last = present.min(), present.max()
        assert isinstance(first, datetime)
        assert isinstance(last, datetime)
        return exchange(name.upper(), first.year - 1, last.year + 1)


def trades_on_weekends(stamps: pl.Series) -> bool:
    """Bars on a Saturday or Sunday in the FX week's shifted clock: the market never closes."""
    return bool(((_fx_local(stamps.drop_nulls()) + FX_ROLL).dt.weekday() >= 6).any())


def _fx_local(stamps: pl.Series) -> pl.Series:
    return stamps.dt.convert_time_zone(FX_ZONE).dt.replace_time_zone(None)


def trading_gaps(
    bars: pl.DataFrame, choice: CalendarChoice
) -> tuple[pl.Series, dict[str, Calendar]]:
    """Open-market seconds since the symbol's previous bar, row by row (null on a first bar).

    ``bars`` must be sorted by (symbol, timestamp). Also returns the calendar each
    symbol was measured on, for the record.
    """
    gaps = np.full(bars.height, np.nan)
    used: dict[str, Calendar] = {}
    symbols = bars.get_column(SYMBOL)
    offsets = np.flatnonzero(symbols.ne_missing(symbols.shift(1)).fill_null(True).to_numpy())
    bounds = [*offsets.tolist(), bars.height]
    for lo, hi in itertools.pairwise(bounds):
        symbol = symbols[lo]
        stamps = bars.get_column(TIMESTAMP).slice(lo, hi - lo)
        calendar = choice.resolve(str(symbol), stamps)
        used[str(symbol)] = calendar
        clock = calendar.clock(stamps.fill_null(strategy="forward").fill_null(strategy="backward"))
        gaps[lo + 1 : hi] = np.diff(clock)
    series = pl.Series("trading_gap_s", gaps).fill_nan(None)
    return series, used


def bars_per_year(bars: pl.DataFrame, choice: CalendarChoice) -> float:
    """How many bars a year this data has on its calendar: the annualisation factor.

    The median open-market spacing of each symbol's bars against its calendar's open
    seconds in a year (daily bars on an exchange: ~252; hourly FX: ~6,200); the median
    over symbols.
    """
    ordered = bars.sort(SYMBOL, TIMESTAMP)
    gaps, used = trading_gaps(ordered, choice)
    per_symbol = (
        ordered.select(SYMBOL)
        .with_columns(gaps)
        .filter(pl.col("trading_gap_s") > 0)
        .group_by(SYMBOL)
        .agg(pl.col("trading_gap_s").median())
    )
    if per_symbol.is_empty():
        raise ConfigError("cannot tell the bar frequency: no symbol has two bars apart in time")
    rates = [used[s].seconds_per_year() / gap for s, gap in per_symbol.iter_rows()]
    return float(np.median(rates))
