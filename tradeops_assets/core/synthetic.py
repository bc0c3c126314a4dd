"""A seeded regime-switching market for scale tests, benchmarks and drift drills.

Real data is short and one history; the platform also has to be exercised on
hundreds of symbols, minute bars and known regime changes. Each symbol walks a
Markov chain over three regimes (trend, mean-reversion, high volatility) with
Student-t shocks (fat tails) and volume that rises with the size of the move.
The same spec and seed give the same bytes on every machine: numpy's PCG64 is
specified bit for bit.
"""

from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np
import polars as pl

from tradeops_assets.core.errors import ConfigError
from tradeops_assets.core.schemas import BAR_COLUMNS

FREQUENCIES = {"1d": "1d", "1h": "1h", "1m": "1m"}
BARS_PER_YEAR = {"1d": 252, "1h": 252 * 24, "1m": 252 * 24 * 60}

# Per-regime annualised drift and volatility, and mean-reversion speed per bar.
REGIMES = ("trend", "mean_revert", "high_vol")
DRIFT = np.array([0.25, 0.0, -0.10])
VOL = np.array([0.15, 0.12, 0.55])
REVERSION = np.array([0.0, 0.05, 0.0])
# Rows: from-regime, columns: to-regime; regimes last ~50-100 bars.
TRANSITIONS = np.array(
    [
        [0.985, 0.010, 0.005],
        [0.010, 0.980, 0.010],
        [0.020, 0.020, 0.960],
    ]
)
STUDENT_T_DF = 4.0


@dataclass(frozen=True)
class SyntheticSpec:
    symbols: int = 4
    bars: int = 2520
    freq: str = "1d"
    seed: int = 7
    start: str = "2015-01-02"
    # Planted next-bar reversal: each return carries -reversal x the previous one. Real
    # markets show a faint trace of it; a strong one is an edge a policy can provably learn,
    # which the demo and the promotion tests need (the momentum and buy-and-hold baselines
    # cannot trade it).
    reversal: float = 0.0

    def __post_init__(self) -> None:
        if self.freq not in FREQUENCIES:
            raise ConfigError(f"synthetic freq '{self.freq}' not in {sorted(FREQUENCIES)}")
        if not 0 <= self.reversal < 1:
            raise ConfigError(f"synthetic reversal must be in [0, 1), got {self.reversal}")
        if self.symbols < 1 or self.bars < 2:
            raise ConfigError(
                "synthetic source needs symbols >= 1 and bars >= 2, "
                f"got symbols={self.symbols}, bars={self.bars}"
            )

    @classmethod
    def parse(cls, text: str) -> "SyntheticSpec":
        """Parses 'symbols=20,bars=5000,freq=1m,seed=3,start=2020-01-01' (any subset)."""
        fields = {
            "symbols": int,
            "bars": int,
            "freq": str,
            "seed": int,
            "start": str,
            "reversal": float,
        }
        values = {}
        for part in filter(None, (p.strip() for p in text.split(","))):
            key, sep, value = part.partition("=")
            if not sep or key not in fields:
                raise ConfigError(
                    f"synthetic spec '{text}': '{part}' is not key=value "
                    f"with key in {sorted(fields)}"
                )
            try:
                values[key] = fields[key](value)
            except ValueError as exc:
                raise ConfigError(f"synthetic spec '{text}': bad value for {key}: {value}") from exc
        return cls(**values)

    def timestamps(self) -> pl.Series:
        start = datetime.fromisoformat(self.start)
        if self.freq == "1d":
            days = pl.date_range(
                start, start.replace(year=start.year + 3 + self.bars // 200), "1d", eager=True
            )
            days = days.filter(days.dt.weekday() <= 5).head(self.bars)
            stamps = days.cast(pl.Datetime("us"))
        else:
            step = {"1h": 3_600_000_000, "1m": 60_000_000}[self.freq]
            first = int(start.timestamp()) * 1_000_000
            stamps = pl.Series(np.arange(self.bars, dtype=np.int64) * step + first).cast(
                pl.Datetime("us")
            )
        return stamps.dt.replace_time_zone("UTC").alias("timestamp")


def _regime_paths(rng: np.random.Generator, symbols: int, bars: int) -> np.ndarray:
    cumulative = TRANSITIONS.cumsum(axis=1)
    draws = rng.random((bars, symbols))
    regimes = np.empty((bars, symbols), dtype=np.int8)
    regimes[0] = rng.integers(0, len(REGIMES), symbols)
    for t in range(1, bars):
        regimes[t] = (draws[t, :, None] > cumulative[regimes[t - 1]]).sum(axis=1)
    return regimes


def generate(spec: SyntheticSpec) -> pl.DataFrame:
    rng = np.random.Generator(np.random.PCG64(spec.seed))
    n, s = spec.bars, spec.symbols
    per_year = BARS_PER_YEAR[spec.freq]
    regimes = _regime_paths(rng, s, n)
    shocks = rng.standard_t(STUDENT_T_DF, (n, s)) / np.sqrt(STUDENT_T_DF / (STUDENT_T_DF - 2))
    vol = VOL[regimes] / np.sqrt(per_year) * rng.uniform(0.6, 1.6, s)
    drift = DRIFT[regimes] / per_year * rng.choice([-1.0, 1.0], s)

    log_close = np.empty((n, s))
    anchor = np.log(rng.uniform(20, 500, s))
    log_close[0] = anchor
    for t in range(1, n):
        pull = REVERSION[regimes[t]] * (anchor - log_close[t - 1])
        log_close[t] = log_close[t - 1] + drift[t] + pull + vol[t] * shocks[t]
        if spec.reversal and t > 1:
            log_close[t] -= spec.reversal * (log_close[t - 1] - log_close[t - 2])
    returns = np.diff(log_close, axis=0, prepend=log_close[:1])

    close = np.exp(log_close)
    gap = vol * 0.3 * rng.standard_normal((n, s))
    open_ = np.exp(np.vstack([log_close[:1], log_close[:-1]]) + gap)
    wick = np.abs(rng.standard_normal((2, n, s))) * vol * 0.5
    high = np.maximum(open_, close) * np.exp(wick[0])
    low = np.minimum(open_, close) * np.exp(-wick[1])
    base_volume = rng.uniform(1e5, 5e6, s)
    surprise = np.abs(returns) / np.maximum(vol, 1e-12)
    volume = np.round(base_volume * rng.lognormal(0.0, 0.35, (n, s)) * (1 + 0.5 * surprise))

    names = [f"SYN{i:04d}" for i in range(s)]
    stamps = spec.timestamps()
    frame = pl.DataFrame(
        {
            "timestamp": pl.concat([stamps] * s),
            "symbol": pl.Series(np.repeat(np.array(names, dtype=object), n), dtype=pl.String),
            "open": open_.T.ravel(),
            "high": high.T.ravel(),
            "low": low.T.ravel(),
            "close": close.T.ravel(),
            "volume": volume.T.ravel(),
        }
    )
    return frame.select(BAR_COLUMNS)


@dataclass(frozen=True)
class RegimeShift:
    """The market after a regime change, continuing each symbol from its last bar.

    The drift drill's new month: returns follow ``r_t = momentum * r_{t-1} + shock``
    with volatility ``vol_scale`` times each symbol's own over its last year, wider
    intrabar ranges and overnight gaps, so both the distribution a policy learned on
    and the planted edge move (a positive ``momentum`` reverses the demo market's
    next-bar reversal). The defaults are a market in turmoil that still passes the bar
    checks: a month of it moves the worst feature's PSI over the last 378 bars to about
    0.35, where a month of the old regime leaves it near 0.15.
    """

    vol_scale: float = 4.0
    momentum: float = 0.5
    trend: float = 0.0  # log return added per bar: a sell-off below zero
    range_scale: float = 6.0  # intrabar high-low range, times the new volatility's
    gap_scale: float = 8.0  # overnight gaps (open against the last close), likewise
    max_move: float = 0.3  # no bar moves more (log): the bar checks refuse 0.4
    seed: int = 12

    def __post_init__(self) -> None:
        if self.vol_scale <= 0 or not -1 < self.momentum < 1:
            raise ConfigError(
                f"regime shift needs vol_scale > 0 and momentum in (-1, 1), "
                f"got {self.vol_scale}, {self.momentum}"
            )

    def month_after(self, history: pl.DataFrame) -> pl.DataFrame:
        """The weekdays of the calendar month after ``history``'s last bar, every symbol."""
        last = history.get_column("timestamp").max()
        first_day = (last.replace(day=1) + timedelta(days=32)).replace(day=1)  # type: ignore[union-attr]
        days = pl.date_range(first_day, (first_day + timedelta(days=32)).replace(day=1), eager=True)
        days = days.filter((days.dt.weekday() <= 5) & (days.dt.month() == first_day.month))
        stamps = days.cast(pl.Datetime("us")).dt.replace_time_zone("UTC").alias("timestamp")
        return self.continue_from(history, stamps)

    def continue_from(self, history: pl.DataFrame, stamps: pl.Series) -> pl.DataFrame:
        rng = np.random.Generator(np.random.PCG64(self.seed))
        frames = []
        for (symbol,), past in history.sort("timestamp").group_by("symbol", maintain_order=True):
            log_close = np.log(past.get_column("close").to_numpy())
            recent = np.diff(log_close[-253:])
            vol = float(recent.std()) * self.vol_scale if recent.size > 1 else 0.01
            n = stamps.len()
            shocks = rng.standard_t(STUDENT_T_DF, n) / np.sqrt(STUDENT_T_DF / (STUDENT_T_DF - 2))
            returns = np.empty(n)
            previous = float(recent[-1]) if recent.size else 0.0
            for t in range(n):
                previous = self.momentum * previous + vol * shocks[t] + self.trend
                previous = float(np.clip(previous, -self.max_move, self.max_move))
                returns[t] = previous
            close = np.exp(log_close[-1] + np.cumsum(returns))
            open_ = np.concatenate([[np.exp(log_close[-1])], close[:-1]]) * np.exp(
                vol * 0.3 * self.gap_scale * rng.standard_normal(n)
            )
            wick = np.abs(rng.standard_normal((2, n))) * vol * 0.5 * self.range_scale
            volume = float(past.get_column("volume").tail(253).median())  # type: ignore[arg-type]
            frames.append(
                pl.DataFrame(
                    {
                        "timestamp": stamps,
                        "symbol": [symbol] * n,
                        "open": open_,
                        "high": np.maximum(open_, close) * np.exp(wick[0]),
                        "low": np.minimum(open_, close) * np.exp(-wick[1]),
                        "close": close,
                        "volume": np.round(volume * rng.lognormal(0.5, 0.35, n)),
                    }
                )
            )
        return pl.concat(frames).select(BAR_COLUMNS)
