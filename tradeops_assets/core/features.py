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
from functools import lru_cache

import numpy as np
import pandera.polars as pa
import polars as pl
from numpy.lib.stride_tricks import as_strided
from scipy.signal import lfilter

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


# The serving path. The polars query above costs ~2-8 ms a call whatever the batch
# size, which alone would cap the endpoint at a few hundred requests a second, so the
# endpoint evaluates the same formulas here in numpy, for the last bars of many
# equal-length requests at once. ``feature_mismatch`` holds the two paths equal; the
# service runs it at start-up and refuses to serve if an edit above is not mirrored.
#
# Only the exponential averages carry state from a series' first bar, so only their
# inputs run over the whole request; every other feature reads the last ``rows`` bars
# and at most ``SERVING_LOOKBACK`` bars before them, so a 4096-bar request costs the
# rolling windows no more than an 80-bar one.

SERVING_LOOKBACK = max(
    *RETURN_HORIZONS,  # ret_h reads the close h bars back
    *VOL_WINDOWS,  # a w-bar std of 1-bar returns reads the close w bars back
    BOLLINGER_WINDOW - 1,
    VOLUME_WINDOW - 1,
    TREND_WINDOW - 1,
    1,  # the overnight gap and the true range read the previous close
)
"""Bars before a feature row that any non-recursive feature of that row reads."""


EWM_MATRIX_BARS = 256
"""Up to this many bars an exponential average is one matrix product (a few BLAS calls for
a whole batch), beyond it a recursive filter (whose cost is per series and per bar)."""


@lru_cache(maxsize=16)
def _ewm_weights(alpha: float) -> np.ndarray:
    """W with x @ W[:n, :n] the average over n <= EWM_MATRIX_BARS bars: y_t = (1-a)^t x_0 +
    sum over 1 <= k <= t of a (1-a)^(t-k) x_k, the recursion below unrolled (W[k, t]
    depends on t and t - k only, so every n is a corner of the same matrix)."""
    t = np.arange(EWM_MATRIX_BARS)[None, :]
    k = np.arange(EWM_MATRIX_BARS)[:, None]
    weights = np.where(k <= t, alpha * (1.0 - alpha) ** np.maximum(t - k, 0), 0.0)
    weights[0] = (1.0 - alpha) ** t[0]
    return weights


def _np_ewm(x: np.ndarray, alpha: float, rows: int | None = None) -> np.ndarray:
    """polars' ``ewm_mean(adjust=False)`` along axis 1: y0 = x0, y = (1-a) y + a x; only the
    last ``rows`` (all if None)."""
    n = x.shape[1]
    first = 0 if rows is None else n - rows
    if n <= EWM_MATRIX_BARS:
        return x @ _ewm_weights(alpha)[:n, first:n]
    y, _ = lfilter([alpha], [1.0, alpha - 1.0], x, axis=1, zi=(1.0 - alpha) * x[:, :1])
    return y[:, first:]


def _np_mean_std(x: np.ndarray, width: int, rows: int) -> tuple[np.ndarray, np.ndarray]:
    """Rolling mean and sample std of the windows ending on each of the last ``rows`` values.

    Both come from the window's offsets d from its own last value: a flat window then
    gives its value and exactly 0, as polars does (a plain mean can be one ulp off and a
    std a tiny positive number, which would flip the ``den > 0`` branches of the ratios).
    One pass suffices, var = (sum d^2 - (sum d)^2 / w) / (w - 1), and it is well
    conditioned: the last value lies within sqrt(w - 1) stds of the mean, so sum d^2 is
    at most (w + 1) (w - 1) var and rounding costs at most ~w ulps of the variance.
    """
    start = x[..., x.shape[-1] - rows - width + 1 :]
    step = start.strides[-1]
    win = as_strided(
        start, (*start.shape[:-1], rows, width), (*start.strides, step), writeable=False
    )
    last = start[..., width - 1 :]
    offsets = win - last[..., None]
    total = offsets.sum(axis=-1)
    squares = np.einsum("...i,...i->...", offsets, offsets)
    var = np.maximum(squares - total * total / width, 0.0) / (width - 1)
    return last + total / width, np.sqrt(var)


def _np_safe_div(num: np.ndarray, den: np.ndarray, fallback: float) -> np.ndarray:
    ok = den > 0
    return np.where(ok, num / np.where(ok, den, 1.0), fallback)


EWM_HISTORY = 768
"""Bars before the first feature row that the exponential averages of a long request start
from. What older bars left in them has decayed by (13/14)^768 < 3e-25 (Wilder's, the
slowest), so skipping them changes no feature beyond 1e-18 as long as the prices stay
within ``EWM_TAME_RANGE`` of each other; a request beyond that runs over all its bars."""
EWM_TAME_RANGE = 2.0**20


def _smoothed(ohlcv: np.ndarray, rows: int, col: dict[str, np.ndarray]) -> np.ndarray:
    """Writes the features of the exponential averages (RSI, ATR, MACD) for the last ``rows``
    bars into ``col``; returns Wilder's gain + loss there."""
    h, lo, c = ohlcv[1:4]
    batch, n = c.shape
    # Wilder's gain, loss and true range in one pass, then MACD and its signal.
    prev_c = c[:, :-1]
    wilder = np.empty((3, batch, n))
    gain, loss, true_range = wilder
    gain[:, 0] = 0.0
    np.subtract(c[:, 1:], prev_c, out=gain[:, 1:])
    np.negative(gain, out=loss)
    np.maximum(gain, 0.0, out=gain)
    np.maximum(loss, 0.0, out=loss)
    np.subtract(h, lo, out=true_range)
    gap = np.abs(h[:, 1:] - prev_c)
    np.maximum(true_range[:, 1:], gap, out=true_range[:, 1:])
    np.abs(np.subtract(lo[:, 1:], prev_c, out=gap), out=gap)
    np.maximum(true_range[:, 1:], gap, out=true_range[:, 1:])
    smoothed = _np_ewm(wilder.reshape(3 * batch, n), 1.0 / RSI_PERIOD, rows)
    gain, loss, atr = smoothed.reshape(3, batch, rows)
    turnover = gain + loss
    col["rsi_14"][:] = _np_safe_div(100.0 * gain, turnover, 50.0)
    np.divide(atr, c[:, n - rows :], out=col["atr_14"])
    macd = _np_ewm(c, 2.0 / (MACD_FAST + 1.0))
    macd -= _np_ewm(c, 2.0 / (MACD_SLOW + 1.0))
    macd /= c
    signal = _np_ewm(macd, 2.0 / (MACD_SIGNAL + 1.0), rows)
    col["macd"][:] = macd[:, n - rows :]
    col["macd_signal"][:] = signal
    np.subtract(col["macd"], signal, out=col["macd_hist"])
    return turnover


def tail_features(ohlcv: np.ndarray, rows: int) -> np.ndarray:
    """``core.features`` for the last ``rows`` bars of equal-length series.

    ``ohlcv``: float64 [5, B, n] (open, high, low, close, volume), n >= WARMUP_BARS + rows.
    Returns float64 [B, rows, len(FEATURE_COLUMNS)] in FEATURE_COLUMNS order.
    """
    o, h, lo, c, v = ohlcv
    batch, n = c.shape
    if n < WARMUP_BARS + rows:
        raise ValueError(f"{n} bars give no {rows} feature rows after {WARMUP_BARS} warm-up")
    if not BOLLINGER_WINDOW == VOLUME_WINDOW == VOL_WINDOWS[0]:  # pragma: no cover
        raise NotImplementedError("20-bar windows differ: give each width its own pass")
    if ATR_PERIOD != RSI_PERIOD:  # pragma: no cover - constants agree today
        raise NotImplementedError("RSI and ATR periods differ: smooth them separately")
    out = np.empty((len(FEATURE_COLUMNS), batch, rows))
    col = {name: out[j] for j, name in enumerate(FEATURE_COLUMNS)}

    # The exponential averages carry state from a series' first bar; a long request's
    # oldest bars are skipped when what they left behind provably no longer shows: the
    # prices are tame, and RSI's gain + loss is not so small that a 3e-25 share of a
    # price move could tip its ratio (a long flat stretch).
    start = n - rows - EWM_HISTORY
    if start <= 0 or not (h.max(axis=1) <= EWM_TAME_RANGE * lo.min(axis=1)).all():
        _smoothed(ohlcv, rows, col)
    else:
        turnover = _smoothed(ohlcv[:, :, start:], rows, col)
        moves = c.max(axis=1) - c.min(axis=1)
        if not (turnover >= 1e-12 * moves[:, None]).all():
            _smoothed(ohlcv, rows, col)

    # The rest reads only the last rows + SERVING_LOOKBACK bars.
    m = rows + SERVING_LOOKBACK
    o, h, lo, c, v = ohlcv[:, :, n - m :]
    log_c = np.log(c)
    ct, ht, lt, lct = c[:, m - rows :], h[:, m - rows :], lo[:, m - rows :], log_c[:, m - rows :]
    for horizon in RETURN_HORIZONS:
        np.subtract(lct, log_c[:, m - rows - horizon : m - horizon], out=col[f"ret_{horizon}"])
    ret1 = np.diff(log_c, axis=1)  # ret1[:, j]: the log return into bar j + 1
    width = BOLLINGER_WINDOW
    span = rows + width - 1
    twenty = np.empty((3, batch, span))
    twenty[0] = c[:, m - span :]
    np.log1p(v[:, m - span :], out=twenty[1])
    twenty[2] = ret1[:, m - 1 - span :]
    mean20, std20 = _np_mean_std(twenty, width, rows)
    bb_mid, bb_std, vol_mean, vol_std = mean20[0], std20[0], mean20[1], std20[1]
    col[f"vol_{VOL_WINDOWS[0]}"][:] = std20[2]
    col[f"vol_{VOL_WINDOWS[1]}"][:] = _np_mean_std(ret1, VOL_WINDOWS[1], rows)[1]
    trend_mean = _np_mean_std(c, TREND_WINDOW, rows)[0]

    bb_band = BOLLINGER_K * bb_std
    col["bb_pctb"][:] = _np_safe_div(ct - (bb_mid - bb_band), 2.0 * bb_band, 0.5)
    col["volume_z"][:] = _np_safe_div(twenty[1, :, span - rows :] - vol_mean, vol_std, 0.0)
    np.log(ht / lt, out=col["hl_range"])
    col["close_location"][:] = _np_safe_div(ct - lt, ht - lt, 0.5)
    np.log(o[:, m - rows :] / c[:, m - rows - 1 : m - 1], out=col["overnight_gap"])
    np.log(ct / trend_mean, out=col[f"trend_{TREND_WINDOW}"])
    return out.transpose(1, 2, 0)


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
        ohlcv = group.select(OHLCV).to_numpy().T[:, None, :]
        mine = tail_features(np.ascontiguousarray(ohlcv), take)[0]
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
