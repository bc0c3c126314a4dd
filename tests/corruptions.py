"""One corruption per validation rule, injected into otherwise good bars.

Each function breaks exactly one rule, so a test can demand that exactly that
rule fails, in core and through a real Dagster run alike.
"""

import polars as pl

ROW = 140  # mid-July 2015 in the first synthetic symbol: away from month edges


def _with_row(bars: pl.DataFrame, row: int, **values) -> pl.DataFrame:
    index = pl.int_range(pl.len()) == row
    return bars.with_columns(
        [
            pl.when(index).then(pl.lit(v, dtype=bars.schema[k])).otherwise(pl.col(k)).alias(k)
            for k, v in values.items()
        ]
    )


def nan_close(bars):
    return _with_row(bars, ROW, close=float("nan"))


def negative_prices(bars):
    return _with_row(bars, ROW, open=-1.0, high=-1.0, low=-1.0, close=-1.0)


def high_below_low(bars):
    r = bars.row(ROW, named=True)
    return _with_row(bars, ROW, high=r["low"], low=r["high"])


def negative_volume(bars):
    return _with_row(bars, ROW, volume=-5.0)


def duplicate_bar(bars):
    return pl.concat([bars.slice(0, ROW + 1), bars.slice(ROW, 1), bars.slice(ROW + 1)])


def unsorted_bars(bars):
    order = list(range(bars.height))
    order[ROW], order[ROW + 1] = order[ROW + 1], order[ROW]
    return bars[order]


def gap_of_three_weeks(bars):
    return bars.filter((pl.int_range(pl.len()) < ROW) | (pl.int_range(pl.len()) >= ROW + 15))


def price_spike(bars):
    r = bars.row(ROW, named=True)
    return _with_row(bars, ROW, **{k: r[k] * 2.0 for k in ("open", "high", "low", "close")})


CORRUPTIONS = {
    "bars_finite": nan_close,
    "bars_positive_prices": negative_prices,
    "bars_ohlc_consistent": high_below_low,
    "bars_non_negative_volume": negative_volume,
    "bars_unique": duplicate_bar,
    "bars_sorted": unsorted_bars,
    "bars_no_gaps": gap_of_three_weeks,
    "bars_no_jumps": price_spike,
}
