"""The peer: the same features written the way most quants would in pandas.

Grouped rolling and ewm per symbol, nothing clever. Used only by ``make bench``,
which also checks that its numbers equal core.features' before timing either.
"""

import numpy as np
import pandas as pd

from tradeops_assets.core import features as feat


def compute(bars: pd.DataFrame) -> pd.DataFrame:
    out = bars[["timestamp", "symbol", "close"]].copy()
    g = bars.groupby("symbol", sort=False)
    close, high, low, open_ = bars["close"], bars["high"], bars["low"], bars["open"]
    log_close = np.log(close)
    prev_close = g["close"].shift(1)
    ret1 = log_close.groupby(bars["symbol"]).diff()
    for h in feat.RETURN_HORIZONS:
        out[f"ret_{h}"] = log_close - log_close.groupby(bars["symbol"]).shift(h)
    for w in feat.VOL_WINDOWS:
        out[f"vol_{w}"] = ret1.groupby(bars["symbol"]).transform(lambda s, w=w: s.rolling(w).std())

    def ewm(series: pd.Series, **kw) -> pd.Series:
        return series.groupby(bars["symbol"]).transform(lambda s: s.ewm(adjust=False, **kw).mean())

    change = (close - prev_close).fillna(0.0)
    gain = ewm(change.clip(lower=0), alpha=1 / feat.RSI_PERIOD)
    loss = ewm((-change).clip(lower=0), alpha=1 / feat.RSI_PERIOD)
    total = gain + loss
    out["rsi_14"] = np.where(total > 0, 100 * gain / total.where(total > 0, 1), 50.0)
    macd = (ewm(close, span=feat.MACD_FAST) - ewm(close, span=feat.MACD_SLOW)) / close
    out["macd"] = macd
    out["macd_signal"] = ewm(macd, span=feat.MACD_SIGNAL)
    out["macd_hist"] = out["macd"] - out["macd_signal"]
    roll = g["close"].rolling(feat.BOLLINGER_WINDOW)
    mid = roll.mean().reset_index(level=0, drop=True)
    band = feat.BOLLINGER_K * roll.std().reset_index(level=0, drop=True)
    out["bb_pctb"] = np.where(band > 0, (close - (mid - band)) / (2 * band).where(band > 0, 1), 0.5)
    true_range = pd.concat(
        [high - low, (high - prev_close).abs(), (low - prev_close).abs()], axis=1
    ).max(axis=1)
    out["atr_14"] = ewm(true_range, alpha=1 / feat.ATR_PERIOD) / close
    log_volume = np.log1p(bars["volume"])
    lv = log_volume.groupby(bars["symbol"])
    vmean = lv.transform(lambda s: s.rolling(feat.VOLUME_WINDOW).mean())
    vstd = lv.transform(lambda s: s.rolling(feat.VOLUME_WINDOW).std())
    out["volume_z"] = np.where(vstd > 0, (log_volume - vmean) / vstd.where(vstd > 0, 1), 0.0)
    out["hl_range"] = np.log(high / low)
    rng = high - low
    out["close_location"] = np.where(rng > 0, (close - low) / rng.where(rng > 0, 1), 0.5)
    out["overnight_gap"] = np.log(open_ / prev_close)
    trend = g["close"].transform(lambda s: s.rolling(feat.TREND_WINDOW).mean())
    out[f"trend_{feat.TREND_WINDOW}"] = np.log(close / trend)
    keep = g.cumcount() >= feat.WARMUP_BARS
    return out[keep].reset_index(drop=True)
