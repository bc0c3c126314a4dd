"""The one feature definition that training, backtests and the serving endpoint all call.

Every feature is causal: the value at bar t uses bars up to and including t and
nothing later, so a policy never trains on information it would not have live.
Prices enter only as ratios and log returns, which makes features comparable
across instruments and price levels. The first ``WARMUP_BARS`` bars of each
symbol are dropped: there the longest windows are still filling.

Speed: rolling windows run over the whole (symbol, time)-sorted column at once;
a window that would straddle two symbols only ever lands in a dropped warm-up
row, because every window is shorter than the warm-up. Only the exponential
averages (MACD, Wilder's RSI and ATR) carry state across rows, so only they are
computed per symbol.
"""

import math
from datetime import UTC, datetime

import numpy as np
import pandera.polars as pa
import polars as pl

from tradeops_assets.core.errors import FeatureError
from tradeops_assets.core.schemas import BAR_DTYPES, SYMBOL, TIMESTAMP

OHLCV = ("open", "high", "low", "close", "volume")

RETURN_HORIZONS = (1, 5, 20, 60)
VOL_WINDOWS = (20, 60)
RSI_PERIOD = 14
ATR_PERIOD = 14
MACD_FAST, MACD_SLOW, MACD_SIGNAL = 12, 26, 9
BOLLINGER_WINDOW, BOLLINGER_K = 20, 2.0
VOLUME_WINDOW = 20
TREND_WINDOW = 50
WARMUP_BARS = 64  # > the longest look-back (61 bars for 60-bar volatility of returns)

FEATURE_COLUMNS = (
    *(f"ret_{h}" for h in RETURN_HORIZONS),
    *(f"vol_{w}" for w in VOL_WINDOWS),
    "rsi_14",
    "macd",
    "macd_signal",
    "macd_hist",
    "bb_pctb",
    "atr_14",
    "volume_z",
    "hl_range",
    "close_location",
    "overnight_gap",
    f"trend_{TREND_WINDOW}",
)
KEY_COLUMNS = (TIMESTAMP, SYMBOL)


def _safe_div(num: pl.Expr, den: pl.Expr, fallback: float) -> pl.Expr:
    return pl.when(den > 0).then(num / den).otherwise(pl.lit(fallback))


def _alpha(span: int | None, alpha: float | None) -> float:
    return 2.0 / (span + 1.0) if span is not None else float(alpha)  # type: ignore[arg-type]


def _decay_name(a: float) -> str:
    return f"_decay_{a:.12g}"


def _decay(a: float) -> pl.Expr:
    """(1-a)^k for k = bar index within the symbol, looked up rather than exponentiated.

    The table stops where (1-a)^k underflows to zero, so every later bar reads 0.
    """
    length = math.ceil(math.log(1e-300) / math.log1p(-a))
    table = pl.Series(np.power(1.0 - a, np.arange(length + 1)))
    table[length] = 0.0
    return pl.lit(table).gather(pl.col("_bar").clip(upper_bound=length)).alias(_decay_name(a))


def _ewm(expr: pl.Expr, *, span: int | None = None, alpha: float | None = None) -> pl.Expr:
    """Per-symbol EWM (y_0 = x_0, y_t = (1-a) y_{t-1} + a x_t) without a group-by.

    The column-wide recursion z differs from the per-symbol y only by the state z
    carried in from the previous symbol, which then decays geometrically:
    y_t = z_t - (1-a)^k (z_s - x_s), with s the symbol's first row and k = t - s.
    """
    a = _alpha(span, alpha)
    z = expr.ewm_mean(alpha=a, adjust=False)
    carried = pl.when(pl.col("_bar") == 0).then(z - expr).forward_fill()
    return z - carried * pl.col(_decay_name(a))


EWM_ALPHAS = tuple(
    sorted(
        {
            _alpha(None, 1 / RSI_PERIOD),
            _alpha(None, 1 / ATR_PERIOD),
            _alpha(MACD_FAST, None),
            _alpha(MACD_SLOW, None),
            _alpha(MACD_SIGNAL, None),
        }
    )
)


def _stages() -> list[list[pl.Expr]]:
    """Feature expressions in dependency stages, so each intermediate is computed once."""
    close, high, low, open_ = pl.col("close"), pl.col("high"), pl.col("low"), pl.col("open")
    base = [
        close.log().alias("_log_close"),
        pl.when(pl.col("_bar") > 0).then(close.shift(1)).alias("_prev_close"),
        pl.col("volume").log1p().alias("_log_volume"),
        *[_decay(a) for a in EWM_ALPHAS],
    ]
    derived = [
        pl.col("_log_close").diff().alias("_ret1"),
        (close - pl.col("_prev_close")).fill_null(0.0).alias("_change"),
        pl.max_horizontal(
            high - low, (high - pl.col("_prev_close")).abs(), (low - pl.col("_prev_close")).abs()
        ).alias("_true_range"),
    ]
    change = pl.col("_change")
    smoothed = [
        *[
            (pl.col("_log_close") - pl.col("_log_close").shift(h)).alias(f"ret_{h}")
            for h in RETURN_HORIZONS
        ],
        *[pl.col("_ret1").rolling_std(w).alias(f"vol_{w}") for w in VOL_WINDOWS],
        _ewm(change.clip(lower_bound=0), alpha=1 / RSI_PERIOD).alias("_gain"),
        _ewm((-change).clip(lower_bound=0), alpha=1 / RSI_PERIOD).alias("_loss"),
        _ewm(close, span=MACD_FAST).alias("_ema_fast"),
        _ewm(close, span=MACD_SLOW).alias("_ema_slow"),
        close.rolling_mean(BOLLINGER_WINDOW).alias("_bb_mid"),
        (BOLLINGER_K * close.rolling_std(BOLLINGER_WINDOW)).alias("_bb_band"),
        _ewm(pl.col("_true_range"), alpha=1 / ATR_PERIOD).alias("_atr"),
        pl.col("_log_volume").rolling_mean(VOLUME_WINDOW).alias("_vol_mean"),
        pl.col("_log_volume").rolling_std(VOLUME_WINDOW).alias("_vol_std"),
        close.rolling_mean(TREND_WINDOW).alias("_trend_mean"),
        (high / low).log().alias("hl_range"),
        _safe_div(close - low, high - low, 0.5).alias("close_location"),
        (open_ / pl.col("_prev_close")).log().alias("overnight_gap"),
    ]
    ratios = [
        _safe_div(100 * pl.col("_gain"), pl.col("_gain") + pl.col("_loss"), 50.0).alias("rsi_14"),
        ((pl.col("_ema_fast") - pl.col("_ema_slow")) / close).alias("macd"),
        _safe_div(
            close - (pl.col("_bb_mid") - pl.col("_bb_band")), 2 * pl.col("_bb_band"), 0.5
        ).alias("bb_pctb"),
        (pl.col("_atr") / close).alias("atr_14"),
        _safe_div(pl.col("_log_volume") - pl.col("_vol_mean"), pl.col("_vol_std"), 0.0).alias(
            "volume_z"
        ),
        (close / pl.col("_trend_mean")).log().alias(f"trend_{TREND_WINDOW}"),
    ]
    signal = [_ewm(pl.col("macd"), span=MACD_SIGNAL).alias("macd_signal")]
    hist = [(pl.col("macd") - pl.col("macd_signal")).alias("macd_hist")]
    return [base, derived, smoothed, ratios, signal, hist]


def _bar_in_symbol() -> pl.Expr:
    row = pl.int_range(pl.len(), dtype=pl.UInt32)
    first_row = pl.when(pl.col(SYMBOL) != pl.col(SYMBOL).shift(1).fill_null("")).then(row)
    return row - first_row.forward_fill()


def require_sorted(bars: pl.DataFrame) -> None:
    """Features need one bar per (symbol, timestamp), in order; say where that breaks."""
    same = pl.col(SYMBOL) == pl.col(SYMBOL).shift(1)
    bad = (
        bars.lazy()
        .with_row_index("row")
        .filter(
            (pl.col(SYMBOL) < pl.col(SYMBOL).shift(1))
            | (same & (pl.col(TIMESTAMP) <= pl.col(TIMESTAMP).shift(1)))
        )
        .head(3)
        .collect()
    )
    if bad.height:
        raise FeatureError(
            "features need bars sorted by (symbol, timestamp) without duplicates; "
            f"first rows out of order: {bad.select('row', SYMBOL, TIMESTAMP).to_dicts()}"
        )


def compute_features_lazy(bars: pl.LazyFrame) -> pl.LazyFrame:
    frame = bars.with_columns(_bar_in_symbol().alias("_bar"))
    for stage in _stages():
        frame = frame.with_columns(stage)
    return frame.filter(pl.col("_bar") >= WARMUP_BARS).select(
        *KEY_COLUMNS, "close", *FEATURE_COLUMNS
    )


def compute_features(bars: pl.DataFrame) -> pl.DataFrame:
    """Features for bars sorted by (symbol, timestamp); warm-up rows dropped."""
    require_sorted(bars)
    return compute_features_lazy(bars.lazy()).collect()


def look_ahead_mismatches(
    bars: pl.DataFrame, cut: int, rtol: float = 1e-9, atol: float = 1e-12
) -> int:
    """Cells that change when the last ``cut`` bars of every symbol are removed.

    A causal feature computed on truncated history equals the prefix of the same
    feature on the full history; any difference means a feature peeks ahead. Equal
    means equal up to rounding, scaled to the value (``atol + rtol * |value|``): the
    column-wide exponential averages carry a previous symbol's state in, and a
    truncated neighbour shifts that state by a few ulps, which is not look-ahead.
    """
    full = compute_features(bars)
    truncated_bars = bars.filter(pl.int_range(pl.len()).over(SYMBOL) < pl.len().over(SYMBOL) - cut)
    truncated = compute_features(truncated_bars)
    joined = truncated.join(full, on=list(KEY_COLUMNS), how="left", suffix="_full")
    if joined.height != truncated.height:
        return truncated.height
    diffs = [
        (
            (pl.col(c) - pl.col(f"{c}_full")).abs()
            > atol + rtol * pl.max_horizontal(pl.col(c).abs(), pl.col(f"{c}_full").abs())
        )
        .fill_null(True)
        .sum()
        for c in FEATURE_COLUMNS
    ]
    return int(joined.select(pl.sum_horizontal(diffs)).item())


def feature_schema() -> pa.DataFrameSchema:
    """The market_features table as pandera sees it: keys, close and Float64 features."""
    columns = {
        TIMESTAMP: pa.Column(pl.Datetime("us", "UTC"), nullable=False),
        SYMBOL: pa.Column(pl.String, nullable=False),
        "close": pa.Column(pl.Float64, nullable=False),
        **{name: pa.Column(pl.Float64, nullable=False) for name in FEATURE_COLUMNS},
    }
    return pa.DataFrameSchema(columns, strict=True, ordered=True)


def tail_features(bars: np.ndarray, ends: np.ndarray, rows: int) -> np.ndarray:
    """These features for the last ``rows`` bars of many series, as the endpoint needs them:
    compiled (``core.tail_kernel``), since the polars query costs milliseconds a call.
    ``feature_mismatch`` holds the two equal; the service runs it at start-up and refuses
    to serve if an edit above is not mirrored there.

    ``bars``: float64 [5, all bars] (open, high, low, close, volume), the series one after
    another, series b ending before ``ends[b]`` and at least WARMUP_BARS + rows long.
    Returns float64 [B, rows, len(FEATURE_COLUMNS)] in FEATURE_COLUMNS order.
    """
    ends = np.require(ends, np.int64, ("C", "W"))
    lengths = np.diff(ends, prepend=0)
    if ends.size and ends[-1] != bars.shape[-1]:
        raise ValueError(f"the series end at bar {ends[-1]}, not at the last of {bars.shape[-1]}")
    if ends.size and lengths.min() < WARMUP_BARS + rows:
        b = int(np.argmin(lengths))
        raise ValueError(
            f"series {b} has {lengths[b]} bars: no {rows} feature rows after {WARMUP_BARS} warm-up"
        )
    from tradeops_assets.core.tail_kernel import tail_kernel  # numba loads where serving only

    return tail_kernel(np.require(bars, np.float64, ("C", "W")), ends, int(rows))


def feature_mismatch(bars: pl.DataFrame, rows: int = 32) -> float:
    """Largest |numpy - core.features| over the last ``rows`` bars of every symbol in ``bars``.

    Scaled per feature by (1 + |value|), so it reads as a relative error for large
    values and an absolute one near zero.
    """
    reference = compute_features(bars)
    worst = 0.0
    for _, group in bars.group_by(SYMBOL, maintain_order=True):
        symbol = group[SYMBOL][0]
        take = min(rows, group.height - WARMUP_BARS)
        mine = tail_features(group.select(OHLCV).to_numpy().T, [group.height], take)[0]
        theirs = (
            reference.filter(pl.col(SYMBOL) == symbol).tail(take).select(FEATURE_COLUMNS)
        ).to_numpy()
        err = np.abs(mine - theirs) / (1.0 + np.abs(theirs))
        worst = max(worst, float(np.nanmax(err)) if err.size else 0.0)
        if np.isnan(mine).any() != np.isnan(theirs).any():
            return math.inf
    return worst


def self_check_bars(seed: int = 5) -> pl.DataFrame:
    """Bars that exercise every branch of the features: trending, flat and zero-volume."""
    from tradeops_assets.core.synthetic import SyntheticSpec, generate

    bars = generate(SyntheticSpec(symbols=2, bars=WARMUP_BARS + 96, seed=seed))
    n = WARMUP_BARS + 48
    start = datetime(2020, 1, 1, tzinfo=UTC)
    stamps = pl.datetime_range(start, start.replace(year=2021), "1d", eager=True).head(n)
    step = np.r_[np.full(n // 2, 100.0), np.full(n - n // 2, 100.1)]
    flat = pl.DataFrame(
        {
            TIMESTAMP: stamps,
            SYMBOL: ["~FLAT"] * n,
            "open": step,
            "high": step,
            "low": step,
            "close": step,
            "volume": np.zeros(n),
        }
    )
    return pl.concat([bars, flat.cast(BAR_DTYPES)]).sort(SYMBOL, TIMESTAMP)
