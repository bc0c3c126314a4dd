"""``core.features`` for the last bars of many requests, compiled: the serving path.

The polars query costs milliseconds a call whatever the batch, and the same
formulas in numpy cost about 30 array operations a batch (10-15 µs a decision in
100-request batches, 600 µs for a lone request); this kernel walks each series
once, in machine code. Every formula mirrors ``core.features``: the exponential
averages run over the whole series, as polars' recursion does, and the rolling
windows sum offsets from their own last value, so a flat window gives exactly
its value and a std of exactly 0 (as polars does), not one ulp off, which would
flip the ``den > 0`` branches of the ratios. A window's sums are its
neighbour's moved by one bar (``_rolling``), so a row costs the same whatever
the window's width. ``features.feature_mismatch`` holds the two equal; the
service runs it at start-up and refuses to serve on a difference.

Compiled with an explicit signature when first imported (about 2 s), never
cached on disk: a cached object file would be machine code that runs without
passing the bento's signature check.
"""

import math

import numba
import numpy as np

from tradeops_assets.core.features import (
    ATR_PERIOD,
    BOLLINGER_K,
    BOLLINGER_WINDOW,
    FEATURE_COLUMNS,
    MACD_FAST,
    MACD_SIGNAL,
    MACD_SLOW,
    RETURN_HORIZONS,
    RSI_PERIOD,
    TREND_WINDOW,
    VOL_WINDOWS,
    VOLUME_WINDOW,
)

_AT = {name: j for j, name in enumerate(FEATURE_COLUMNS)}
N_FEATURES = len(FEATURE_COLUMNS)
RET_AT = tuple(_AT[f"ret_{h}"] for h in RETURN_HORIZONS)
VOL_AT = tuple(_AT[f"vol_{w}"] for w in VOL_WINDOWS)
RSI, MACD, SIGNAL, HIST = (_AT[k] for k in ("rsi_14", "macd", "macd_signal", "macd_hist"))
PCTB, ATR, VOLUME_Z, HL = (_AT[k] for k in ("bb_pctb", "atr_14", "volume_z", "hl_range"))
LOCATION, GAP, TREND = (
    _AT[k] for k in ("close_location", "overnight_gap", f"trend_{TREND_WINDOW}")
)
WILDER_A, ATR_A = 1.0 / RSI_PERIOD, 1.0 / ATR_PERIOD
FAST_A, SLOW_A = 2.0 / (MACD_FAST + 1.0), 2.0 / (MACD_SLOW + 1.0)
SIGNAL_A = 2.0 / (MACD_SIGNAL + 1.0)

ROLLING = tuple(range(5))
"""The rolling windows a row reads: where the kernel keeps each one's mean and std."""
VOL_SHORT, VOL_LONG, BB, LOG_VOLUME, TREND_MEAN = ROLLING

LOG_CLOSE_REACH = max(*RETURN_HORIZONS, *VOL_WINDOWS)
"""Bars before a feature row whose log close a return or a volatility window reads."""

_OPTIONS = {"cache": False, "nogil": True, "boundscheck": False, "error_model": "numpy"}
"""Every function here: never cached on disk (see above)."""
_jit = numba.njit(**_OPTIONS)


LOST_BITS = 2.0**-16
"""A window's sums are summed afresh once the squares that moved through them since they
were last summed (a spike that has left, say) outweigh what they hold by 2**16: rounding
could then have cost 16 of their 53 bits. A std stays good to about 1e-11 of itself."""


@numba.njit(**_OPTIONS, fastmath={"reassoc"})  # a flat window still sums to 0
def _sums(x, end, width):
    """Sum and sum of squares of ``x[end - width + 1 : end + 1] - x[end]``."""
    last = x[end]
    total = 0.0
    squares = 0.0
    for k in range(end - width + 1, end + 1):
        d = x[k] - last
        total += d
        squares += d * d
    return total, squares


@_jit
def _rolling(x, first, n, width, mean, std):
    """Mean and sample std of the ``width`` values ending at each t in [first, n), into
    ``mean[t - first]`` and ``std[t - first]``.

    Each window's sums are its neighbour's with one value out, one in, and re-centred on
    its own last value. A window of equal values gets exactly that value and a std of
    exactly 0, as ``_sums`` gives it, whatever passed through before; sums that
    rounding may have spoiled (``LOST_BITS``) are summed afresh.
    """
    if first >= n:
        return
    run = 1  # equal values ending at t, at most width
    while run < width and x[first - run] == x[first]:
        run += 1
    total, squares = _sums(x, first, width)
    scale = squares
    for t in range(first, n):
        if t > first:
            last = x[t - 1]
            leaving, entering = x[t - width] - last, x[t] - last
            total += entering - leaving
            squares += entering * entering - leaving * leaving
            moved = total
            total -= width * entering
            squares += width * entering * entering - 2.0 * entering * moved
            scale += leaving * leaving + (1.0 + width) * entering * entering
            scale += 2.0 * abs(entering * moved)
            run = min(run + 1, width) if x[t] == last else 1
            if run == width:
                total, squares, scale = 0.0, 0.0, 0.0
            elif not squares >= scale * LOST_BITS:  # also when not finite
                total, squares = _sums(x, t, width)
                scale = squares
        mean[t - first] = x[t] + total / width
        std[t - first] = math.sqrt(max(squares - total * total / width, 0.0) / (width - 1))


@_jit
def _safe_div(num, den, fallback):
    return num / den if den > 0 else fallback


@numba.njit(
    numba.float64[:, :, ::1](numba.float64[:, ::1], numba.int64[::1], numba.int64), **_OPTIONS
)
def tail_kernel(bars, ends, rows):
    """float64 [5, all bars] (open, high, low, close, volume of every series, one after
    another; series b ends before ``ends[b]``) -> [B, rows, N_FEATURES]. Every series has
    at least WARMUP_BARS + rows bars, checked by the caller."""
    batch = ends.shape[0]
    out = np.empty((batch, rows, N_FEATURES))
    longest = 0
    for b in range(batch):
        longest = max(longest, ends[b] - (ends[b - 1] if b else 0))
    log_c = np.empty(longest)
    ret1 = np.empty(longest)
    log_v = np.empty(longest)
    mean = np.empty((len(ROLLING), rows))
    std = np.empty((len(ROLLING), rows))
    for b in range(batch):
        start = ends[b - 1] if b else 0
        n = ends[b] - start
        first = n - rows
        o, h, lo = bars[0, start : ends[b]], bars[1, start : ends[b]], bars[2, start : ends[b]]
        c, v = bars[3, start : ends[b]], bars[4, start : ends[b]]
        # Logs only where a row's window reads them: they are a third of the work.
        reach = max(first - LOG_CLOSE_REACH, 0)
        for t in range(reach, n):
            log_c[t] = math.log(c[t])
        for t in range(max(first - VOLUME_WINDOW + 1, 0), n):
            log_v[t] = math.log1p(v[t])
        for t in range(reach + 1, n):
            ret1[t] = log_c[t] - log_c[t - 1]
        # Exponential averages from the first bar: y_0 = x_0, y_t = (1-a) y_{t-1} + a x_t.
        gain, loss, atr = 0.0, 0.0, h[0] - lo[0]
        fast, slow = c[0], c[0]
        signal = (fast - slow) / c[0]
        for t in range(1, n):
            change = c[t] - c[t - 1]
            true_range = max(h[t] - lo[t], abs(h[t] - c[t - 1]), abs(lo[t] - c[t - 1]))
            gain = (1.0 - WILDER_A) * gain + WILDER_A * max(change, 0.0)
            loss = (1.0 - WILDER_A) * loss + WILDER_A * max(-change, 0.0)
            atr = (1.0 - ATR_A) * atr + ATR_A * true_range
            fast = (1.0 - FAST_A) * fast + FAST_A * c[t]
            slow = (1.0 - SLOW_A) * slow + SLOW_A * c[t]
            macd = (fast - slow) / c[t]
            signal = (1.0 - SIGNAL_A) * signal + SIGNAL_A * macd
            if t >= first:
                row = out[b, t - first]
                row[RSI] = _safe_div(100.0 * gain, gain + loss, 50.0)
                row[ATR] = atr / c[t]
                row[MACD] = macd
                row[SIGNAL] = signal
                row[HIST] = macd - signal
        _rolling(ret1, first, n, VOL_WINDOWS[0], mean[VOL_SHORT], std[VOL_SHORT])
        _rolling(ret1, first, n, VOL_WINDOWS[1], mean[VOL_LONG], std[VOL_LONG])
        _rolling(c, first, n, BOLLINGER_WINDOW, mean[BB], std[BB])
        _rolling(log_v, first, n, VOLUME_WINDOW, mean[LOG_VOLUME], std[LOG_VOLUME])
        _rolling(c, first, n, TREND_WINDOW, mean[TREND_MEAN], std[TREND_MEAN])
        for t in range(first, n):
            i = t - first
            row = out[b, i]
            for j in range(len(RETURN_HORIZONS)):
                row[RET_AT[j]] = log_c[t] - log_c[t - RETURN_HORIZONS[j]]
            row[VOL_AT[0]] = std[VOL_SHORT, i]
            row[VOL_AT[1]] = std[VOL_LONG, i]
            band = BOLLINGER_K * std[BB, i]
            row[PCTB] = _safe_div(c[t] - (mean[BB, i] - band), 2.0 * band, 0.5)
            z = log_v[t] - mean[LOG_VOLUME, i]
            row[VOLUME_Z] = _safe_div(z, std[LOG_VOLUME, i], 0.0)
            row[HL] = math.log(h[t] / lo[t])
            row[LOCATION] = _safe_div(c[t] - lo[t], h[t] - lo[t], 0.5)
            row[GAP] = math.log(o[t] / c[t - 1])
            row[TREND] = math.log(c[t] / mean[TREND_MEAN, i])
    return out


COMPILED = (_sums, _rolling, _safe_div, tail_kernel)
"""Every compiled function here: none may cache machine code on disk."""
