"""Gaps and annualisation on the market's own calendar, measured on real data."""

from datetime import UTC, datetime

import numpy as np
import polars as pl
import pytest

from tests.realdata import eurusd_hourly_csv, msft_bars
from tradeops_assets.core import calendars
from tradeops_assets.core.calendars import ALWAYS_OPEN, FX, CalendarChoice, bars_per_year
from tradeops_assets.core.errors import ConfigError
from tradeops_assets.core.synthetic import SyntheticSpec, generate
from tradeops_assets.core.validation import ValidationPolicy, validate_bars
from tradeops_assets.core.vendor import read_vendor_file


@pytest.fixture(scope="module")
def fx_hourly(tmp_path_factory) -> pl.DataFrame:
    return read_vendor_file(eurusd_hourly_csv(tmp_path_factory.mktemp("fx")))


@pytest.fixture(scope="module")
def msft(tmp_path_factory) -> pl.DataFrame:
    return msft_bars(tmp_path_factory.mktemp("msft"))


def failed(bars: pl.DataFrame, policy: ValidationPolicy) -> set[str]:
    return {r.rule for r in validate_bars(bars, policy) if not r.passed}


def test_real_hourly_fx_with_weekends_and_christmas_passes_on_the_fx_calendar(fx_hourly):
    """A year of real EUR/USD hours: 52 weekends of 48-50 wall-clock hours, Christmas shut."""
    wall = fx_hourly["timestamp"].diff().dt.total_hours()
    assert (wall >= 48).sum() >= 50
    assert failed(fx_hourly, ValidationPolicy()) == set()
    result = next(r for r in validate_bars(fx_hourly) if r.rule == "bars_no_gaps")
    assert result.details["calendars"] == {"EURUSD": {"calendar": FX, "chosen": "inferred (auto)"}}
    gaps, _ = calendars.trading_gaps(fx_hourly.sort("symbol", "timestamp"), CalendarChoice())
    assert gaps.max() == 3600.0  # every weekend and holiday is at most one bar of trading time
    wall_clock = ValidationPolicy(calendars=CalendarChoice(ALWAYS_OPEN))
    assert failed(fx_hourly, wall_clock) == {"bars_no_gaps"}  # the defect, on the wall clock


def test_a_real_hole_in_hourly_fx_is_still_a_gap(fx_hourly):
    march = fx_hourly["timestamp"].is_between(
        datetime(2017, 3, 6, tzinfo=UTC), datetime(2017, 3, 8, tzinfo=UTC)
    )
    holed = fx_hourly.filter(~march)  # two trading days missing mid-week
    result = next(r for r in validate_bars(holed) if r.rule == "bars_no_gaps")
    assert not result.passed
    assert result.sample["timestamp"][0] == datetime(2017, 3, 8, 1, tzinfo=UTC)  # the bar after


def test_exchange_calendar_knows_holidays_and_half_days(msft):
    xnys = CalendarChoice("XNYS")
    gaps, used = calendars.trading_gaps(msft, xnys)
    assert used["MSFT"].name == "XNYS"
    ratio = (gaps / gaps.median()).drop_nulls()
    # 30 years of real sessions: the 2001-09-11 closure and every holiday are no gap; the
    # file misses a few sessions the exchange held, and a half day is half a session.
    assert ratio.max() <= 2.0
    assert ratio.min() == pytest.approx(210 / 390)
    assert failed(msft, ValidationPolicy(max_gap_ratio=2.5, calendars=xnys)) == set()
    on_wall_clock = ValidationPolicy(max_gap_ratio=2.5, calendars=CalendarChoice(ALWAYS_OPEN))
    assert "bars_no_gaps" in failed(msft, on_wall_clock)


def test_bars_per_year_follows_the_calendar(msft, fx_hourly):
    assert bars_per_year(msft, CalendarChoice("XNYS")) == pytest.approx(252, abs=1.5)
    assert bars_per_year(msft, CalendarChoice(FX)) == pytest.approx(260, abs=2)
    assert bars_per_year(fx_hourly, CalendarChoice()) == pytest.approx(24 * 259.5, rel=0.01)
    minutes = generate(SyntheticSpec(symbols=2, bars=3000, freq="1m"))
    assert bars_per_year(minutes, CalendarChoice()) == pytest.approx(365.25 * 24 * 60)


def test_calendars_are_chosen_per_symbol_and_unknown_ones_are_named(msft):
    both = pl.concat([msft, msft.with_columns(pl.lit("MSFT2").alias("symbol"))])
    choice = CalendarChoice(FX, {"MSFT2": "XNYS"})
    _, used = calendars.trading_gaps(both.sort("symbol", "timestamp"), choice)
    assert {s: c.name for s, c in used.items()} == {"MSFT": FX, "MSFT2": "XNYS"}
    with pytest.raises(ConfigError, match="unknown trading calendar 'XMARS'"):
        calendars.trading_gaps(msft, CalendarChoice("XMARS"))


def test_fx_clock_stands_still_over_a_weekend_and_runs_on_weekdays():
    stamps = pl.Series(
        [
            datetime(2017, 3, 10, 20, tzinfo=UTC),  # Friday 15:00 New York
            datetime(2017, 3, 10, 21, tzinfo=UTC),  # 16:00
            datetime(2017, 3, 11, 12, tzinfo=UTC),  # Saturday: closed
            datetime(2017, 3, 12, 21, tzinfo=UTC),  # Sunday 17:00 EDT: open again
            datetime(2017, 3, 12, 22, tzinfo=UTC),
        ]
    )
    clock = calendars.ForexWeek().clock(stamps)
    assert np.diff(clock).tolist() == [3600.0, 3600.0, 0.0, 3600.0]
