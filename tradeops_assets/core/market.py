"""The market as a policy sees it, in numpy alone: the serving path and the backtest import this.

The execution rule lives here once. At decision bar t a policy sees the last
``window`` feature rows of one symbol up to bar t plus its current position,
and chooses a target position in [-1, 1]. The trade fills at bar t's close plus
slippage and fees, both charged in basis points of the traded fraction; holding
it earns the next bar's log return, minus any borrow on a short. Nothing after
bar t is ever visible at t. The Gymnasium envs (``core/env.py``), the backtest and
the endpoint all build on these pieces, so they cannot disagree on a fill, a fee
or an observation; none of them needs torch to do it.
"""

from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import polars as pl

from tradeops_assets.core.errors import ConfigError, LeakageError
from tradeops_assets.core.features import FEATURE_COLUMNS
from tradeops_assets.core.schemas import SYMBOL, TIMESTAMP
from tradeops_assets.core.windows import Window, to_datetime64

OBS_CLIP = 10.0
DISCRETE_POSITIONS = np.array([-1.0, 0.0, 1.0])  # short, flat, long
RewardKind = Literal["log_return", "drawdown_penalty", "differential_sharpe"]
REWARDS: tuple[RewardKind, ...] = ("log_return", "drawdown_penalty", "differential_sharpe")
DAILY_BARS_PER_YEAR = 252


@dataclass(frozen=True)
class EnvConfig:
    window: int = 16
    episode_bars: int = 256
    fee_bps: float = 1.0
    slippage_bps: float = 2.0
    max_position: float = 1.0
    borrow_bps_per_year: float = 0.0
    bars_per_year: float = DAILY_BARS_PER_YEAR
    reward: RewardKind = "log_return"
    drawdown_penalty: float = 0.5
    sharpe_eta: float = 0.01
    discrete: bool = False

    def __post_init__(self) -> None:
        if self.window < 1 or self.episode_bars < 1:
            raise ConfigError(f"env needs window >= 1 and episode_bars >= 1, got {self}")
        if not 0 < self.max_position <= 1:
            raise ConfigError(f"max_position must be in (0, 1], got {self.max_position}")
        if self.reward not in REWARDS:
            raise ConfigError(f"unknown reward '{self.reward}', expected one of {list(REWARDS)}")
        if not self.bars_per_year > 0:
            raise ConfigError(f"bars_per_year must be > 0, got {self.bars_per_year}")

    @property
    def cost_per_unit(self) -> float:
        return (self.fee_bps + self.slippage_bps) / 1e4

    @property
    def borrow_per_bar(self) -> float:
        return self.borrow_bps_per_year / 1e4 / self.bars_per_year

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "EnvConfig":
        unknown = set(data) - set(cls.__dataclass_fields__)
        if unknown:
            raise ConfigError(f"env config has unknown fields {sorted(unknown)}")
        return cls(**data)


@dataclass(frozen=True)
class Normaliser:
    """Feature scaling fitted on the training window only, and saved with the policy.

    ``fitted_on`` is the first and last timestamp of the rows it was actually fitted on,
    recorded so registration can refuse a scaler that saw bars past the training window.
    """

    mean: np.ndarray
    std: np.ndarray
    fitted_on: Window | None = None

    @classmethod
    def fit(cls, features: np.ndarray, fitted_on: Window | None = None) -> "Normaliser":
        std = features.std(axis=0)
        return cls(features.mean(axis=0), np.where(std > 0, std, 1.0), fitted_on)

    @classmethod
    def identity(cls) -> "Normaliser":
        return cls(np.zeros(1), np.ones(1))

    def apply(self, features: np.ndarray) -> np.ndarray:
        scaled = features - self.mean
        scaled /= self.std  # in place: the serving path applies this to every batch
        return np.clip(scaled, -OBS_CLIP, OBS_CLIP, out=scaled).astype(np.float32)

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"mean": self.mean.tolist(), "std": self.std.tolist()}
        if self.fitted_on is not None:
            data["fitted_on"] = self.fitted_on.to_dict()
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Normaliser":
        fitted = data.get("fitted_on")
        return cls(
            np.asarray(data["mean"]),
            np.asarray(data["std"]),
            Window.from_dict(fitted) if fitted else None,
        )

    def check_fitted_within(self, window: Window) -> None:
        """Refuses a scaler fitted on rows outside ``window`` (or on rows it cannot account for)."""
        fitted = self.fitted_on
        if fitted is None or fitted.first < window.first or fitted.last > window.last:
            raise LeakageError(
                f"feature scaling was fitted on rows {fitted or 'of unknown dates'}, "
                f"outside the training window {window}: later bars would leak into the policy"
            )


def fit_normaliser(frame: pl.DataFrame, window: Window) -> Normaliser:
    """Feature scaling from the training window's rows only: no later row leaks into it."""
    rows = frame.filter(window.contains())
    if rows.is_empty():
        raise ConfigError(f"no feature rows inside the training window {window}")
    stamps = rows.get_column(TIMESTAMP)
    used = Window(stamps.min(), stamps.max())  # type: ignore[arg-type]
    return Normaliser.fit(rows.select(FEATURE_COLUMNS).to_numpy(), used)


@dataclass(frozen=True)
class MarketArrays:
    """Every symbol's rows back to back: scaled features and the next bar's log return."""

    features: np.ndarray  # float32 [rows, n_features], scaled
    next_return: np.ndarray  # float64 [rows]; log(close[t+1] / close[t]), 0 on a symbol's last row
    starts: np.ndarray  # int64 [symbols]: first row of each symbol
    ends: np.ndarray  # int64 [symbols]: one past the last row
    symbols: tuple[str, ...]
    timestamps: np.ndarray = field(repr=False)

    @classmethod
    def from_features(cls, frame: pl.DataFrame, normaliser: Normaliser) -> "MarketArrays":
        frame = frame.sort(SYMBOL, TIMESTAMP)
        counts = frame.group_by(SYMBOL, maintain_order=True).len()
        ends = np.cumsum(counts["len"].to_numpy()).astype(np.int64)
        starts = ends - counts["len"].to_numpy()
        nxt = frame.select(
            (pl.col("close").shift(-1) / pl.col("close")).log().over(SYMBOL).fill_null(0.0)
        ).to_series()
        raw = frame.select(FEATURE_COLUMNS).to_numpy()
        return cls(
            features=np.ascontiguousarray(normaliser.apply(raw)),
            next_return=nxt.to_numpy().astype(np.float64),
            starts=starts,
            ends=ends,
            symbols=tuple(counts[SYMBOL].to_list()),
            timestamps=frame[TIMESTAMP].dt.replace_time_zone(None).to_numpy(),
        )

    @property
    def n_features(self) -> int:
        return self.features.shape[1]


def observation_rows(arrays: MarketArrays, rows: np.ndarray, window: int) -> np.ndarray:
    """The market part of the observation at each decision row, by plain slicing: rows
    t - window + 1 .. t of the row's own symbol, flattened. The reference the envs and
    the backtest are checked against."""
    width = window * arrays.n_features
    out = np.empty((len(rows), width), np.float32)
    for i, row in enumerate(np.asarray(rows, dtype=np.int64)):
        out[i] = arrays.features[row - window + 1 : row + 1].reshape(width)
    return out


def assert_causal(
    observed: np.ndarray, arrays: MarketArrays, rows: np.ndarray, window: int, where: str
) -> None:
    """Refuses an observation built from anything but the bars up to its decision row.

    Cheap enough to run on a sample of every rollout: the envs and the backtest build
    observations through strided views for speed, and this holds them to the slicing
    a reader can check by eye.
    """
    expected = observation_rows(arrays, rows, window)
    bad = np.flatnonzero(~(observed == expected).all(axis=1))
    if bad.size:
        row = int(np.asarray(rows)[bad[0]])
        raise LeakageError(
            f"{where}: the observation for decision row {row} is not the feature rows "
            f"{row - window + 1}..{row}; a policy must see nothing after its decision bar"
        )


def step_accounting(
    position: np.ndarray | float,
    target: np.ndarray | float,
    next_return: np.ndarray | float,
    config: EnvConfig,
) -> tuple[Any, Any]:
    """(P&L in log-return units, costs) of moving to ``target`` and holding it one bar.

    Plain operators only, so one definition runs at full speed on Python floats (the
    single env) and on numpy arrays (the vectorised env).
    """
    short = (abs(target) - target) * 0.5
    cost = config.cost_per_unit * abs(target - position) + config.borrow_per_bar * short
    return target * next_return - cost, cost


def decision_rows(
    arrays: MarketArrays, window: int, span: Window | None
) -> tuple[np.ndarray, np.ndarray]:
    """Per symbol, the rows [first, last) a policy may decide on.

    A decision at row t needs ``window`` rows up to t and the next bar, whose return
    pays it. With ``span`` the decision bar and that next bar both lie inside it; the
    observation window may reach back before ``span.first``, which is the past and
    allowed. Training episodes and backtests share this rule.
    """
    first = arrays.starts + window - 1
    last = arrays.ends - 1
    if span is not None:
        lo, hi = to_datetime64(span.first), to_datetime64(span.last)
        first_in, end_in = [], []
        for s, e in zip(arrays.starts, arrays.ends, strict=True):
            stamps = arrays.timestamps[s:e]
            first_in.append(s + np.searchsorted(stamps, lo))
            end_in.append(s + np.searchsorted(stamps, hi, side="right"))
        first = np.maximum(first, np.asarray(first_in, dtype=np.int64))
        last = np.minimum(last, np.asarray(end_in, dtype=np.int64) - 1)
    return first, last
