"""Out-of-sample backtests: a policy and its baselines traded on bars it never trained on.

Execution follows the env exactly (`env.step_accounting`): the position chosen
at bar t is held from t's close to t+1's close, the change from the previous
position pays fees and slippage in bp of the traded fraction, a short pays
borrow. Running a strategy only produces positions; one vectorised ledger then
prices every strategy the same way, so a baseline cannot be flattered by a
different fill rule.

Every symbol is stepped at once: the policy in the loop sees one batch of
observations per bar, which is what makes a backtest over thousands of symbols
cheap (BENCHMARKS.md, backtest_bars_per_s).
"""

import math
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import polars as pl

from tradeops_assets.core.errors import ConfigError
from tradeops_assets.core.market import (
    EnvConfig,
    MarketArrays,
    Normaliser,
    assert_causal,
    decision_rows,
    step_accounting,
)
from tradeops_assets.core.policy import NumpyPolicy
from tradeops_assets.core.schemas import SYMBOL, TIMESTAMP
from tradeops_assets.core.windows import Window

BUY_AND_HOLD, FLAT, MOMENTUM, CHAMPION, CHALLENGER = (
    "buy_and_hold",
    "flat",
    "momentum",
    "champion",
    "challenger",
)
BASELINES = (BUY_AND_HOLD, FLAT, MOMENTUM)
MOMENTUM_LOOKBACK = 20
PORTFOLIO = "portfolio"
METRICS = (
    "total_return",
    "annualised_return",
    "volatility",
    "sharpe",
    "sortino",
    "max_drawdown",
    "calmar",
    "turnover",
    "hit_rate",
    "exposure",
    "cost_drag",
    "bars",
)


class Traded(Protocol):
    """A policy as the backtest trades it: its decision and the scaling it was trained with."""

    @property
    def policy(self) -> NumpyPolicy: ...

    @property
    def normaliser(self) -> Normaliser: ...


@dataclass(frozen=True)
class TradedPolicy:
    policy: NumpyPolicy
    normaliser: Normaliser


@dataclass(frozen=True)
class Book:
    """The decision bars of one backtest: per symbol, rows [first, last) of ``arrays``."""

    arrays: MarketArrays
    first: np.ndarray
    last: np.ndarray

    @property
    def lengths(self) -> np.ndarray:
        return self.last - self.first

    def rows(self) -> np.ndarray:
        return np.concatenate(
            [np.arange(a, b) for a, b in zip(self.first, self.last, strict=True)]
        ).astype(np.int64)

    def symbol_starts(self) -> np.ndarray:
        """Offsets of each symbol's first decision in the flat ``rows()`` order."""
        return np.concatenate([[0], np.cumsum(self.lengths)[:-1]]).astype(np.int64)


def book(arrays: MarketArrays, window: int, span: Window) -> Book:
    """Decision bars inside ``span``, by the env's rule (``env.decision_rows``)."""
    first, last = decision_rows(arrays, window, span)
    result = Book(arrays, first, np.maximum(first, last))
    if result.lengths.sum() == 0:
        raise ConfigError(f"no symbol has a decision bar inside the backtest window {span}")
    return result


def run_on_book(
    policy: NumpyPolicy, positions_of: Book, config: EnvConfig, chunk: int = 65_536
) -> np.ndarray:
    arrays, window = positions_of.arrays, config.window
    n_features = arrays.n_features
    windows = np.lib.stride_tricks.sliding_window_view(arrays.features, (window, n_features))[:, 0]
    rows = positions_of.rows()
    market = np.empty((rows.size, policy.weights[0].shape[1]), np.float32)
    for lo in range(0, rows.size, chunk):
        block = windows[rows[lo : lo + chunk] - (window - 1)].reshape(-1, window * n_features)
        if lo == 0:
            probe = np.linspace(0, len(block) - 1, min(len(block), 16)).astype(np.int64)
            assert_causal(block[probe], arrays, rows[probe], window, "backtest")
        market[lo : lo + chunk] = policy.market_term(block)
    lengths, offsets = positions_of.lengths, positions_of.symbol_starts()
    order = np.argsort(-lengths, kind="stable")  # longest first: live symbols are a prefix
    lengths, offsets = lengths[order], offsets[order]
    out = np.empty(rows.size, np.float64)
    held = np.zeros(len(lengths))
    live = len(lengths)
    for k in range(int(lengths.max())):
        while live and lengths[live - 1] <= k:
            live -= 1
        at = offsets[:live] + k
        target = policy.act_on_market(market[at], held[:live]) * config.max_position
        out[at] = target
        held[:live] = target
    return out


def momentum_positions(
    frame: pl.DataFrame, positions_of: Book, config: EnvConfig, lookback: int = MOMENTUM_LOOKBACK
) -> np.ndarray:
    """Long after a rise over ``lookback`` bars, short after a fall: the classic trend rule."""
    signal = (
        frame.sort(SYMBOL, TIMESTAMP)
        .select(
            (pl.col("close") / pl.col("close").shift(lookback))
            .log()
            .sign()
            .over(SYMBOL)
            .fill_null(0.0)
        )
        .to_series()
        .to_numpy()
    )
    return signal[positions_of.rows()] * config.max_position


@dataclass(frozen=True)
class Ledger:
    """Per decision bar: what was held, what it earned, and what it cost, in log-return units."""

    position: np.ndarray
    traded: np.ndarray
    gross: np.ndarray
    fees: np.ndarray
    slippage: np.ndarray
    borrow: np.ndarray
    pnl: np.ndarray


def account(
    position: np.ndarray, next_return: np.ndarray, starts: np.ndarray, config: EnvConfig
) -> Ledger:
    """Prices positions for many symbols back to back; each symbol starts flat at ``starts``.

    The same arithmetic as ``env.step_accounting`` (a test holds them equal), written as
    a few in-place passes: this is memory-bound, and each temporary array costs a pass.
    """
    traded = np.empty_like(position)
    traded[0] = position[0]
    np.subtract(position[1:], position[:-1], out=traded[1:])
    traded[starts] = position[starts]
    np.abs(traded, out=traded)
    gross = position * next_return
    fees = traded * (config.fee_bps / 1e4)
    slippage = traded * (config.slippage_bps / 1e4)
    pnl = traded * config.cost_per_unit
    np.subtract(gross, pnl, out=pnl)
    if config.borrow_per_bar:
        borrow = np.maximum(-position, 0.0)
        borrow *= config.borrow_per_bar
        pnl -= borrow
    else:
        borrow = np.zeros_like(position)
    return Ledger(position, traded, gross, fees, slippage, borrow, pnl)


def metrics(
    returns: np.ndarray,
    position: np.ndarray,
    traded: np.ndarray,
    gross: np.ndarray,
    costs: np.ndarray,
    bars_per_year: int,
) -> dict[str, float]:
    """Performance of one return series; ``returns`` are simple per-bar returns."""
    n = len(returns)
    if n == 0:
        return dict.fromkeys(METRICS, 0.0)
    equity = np.cumprod(1.0 + returns)
    years = n / bars_per_year
    total = float(equity[-1] - 1.0)
    annual = float(equity[-1] ** (1.0 / years) - 1.0) if equity[-1] > 0 else -1.0
    std = float(returns.std(ddof=1)) if n > 1 else 0.0
    mean = float(returns.mean())
    downside = math.sqrt(float(np.mean(np.minimum(returns, 0.0) ** 2)))
    peak = np.maximum.accumulate(np.maximum(equity, 1.0))
    max_drawdown = float(np.max(1.0 - equity / peak))
    holding = position != 0
    return {
        "total_return": total,
        "annualised_return": annual,
        "volatility": std * math.sqrt(bars_per_year),
        "sharpe": _ratio(mean, std) * math.sqrt(bars_per_year),
        "sortino": _ratio(mean, downside) * math.sqrt(bars_per_year),
        "max_drawdown": max_drawdown,
        "calmar": _ratio(annual, max_drawdown),
        "turnover": float(traded.sum()) / years,
        "hit_rate": float((gross[holding] > 0).mean()) if holding.any() else 0.0,
        "exposure": float(np.abs(position).mean()),
        "cost_drag": float(costs.sum()) / years,
        "bars": float(n),
    }


def _ratio(numerator: float, denominator: float) -> float:
    """A ratio with nothing to divide by is reported as 0, so reports stay finite JSON."""
    return numerator / denominator if denominator > 1e-15 else 0.0


@dataclass(frozen=True)
class Backtest:
    """Every strategy's ledger rows and metrics per symbol and for the equal-weight portfolio."""

    ledger: pl.DataFrame  # strategy, symbol, timestamp, position, traded, gross, fees, ...
    metrics: pl.DataFrame  # strategy, symbol (or 'portfolio'), one column per metric

    def metric(self, strategy: str, name: str, symbol: str = PORTFOLIO) -> float:
        row = self.metrics.filter((pl.col("strategy") == strategy) & (pl.col("symbol") == symbol))
        if row.is_empty():
            raise ConfigError(f"no backtest of strategy '{strategy}' on '{symbol}'")
        return float(row[name][0])

    @property
    def strategies(self) -> list[str]:
        return self.metrics["strategy"].unique(maintain_order=True).to_list()

    def portfolio_curves(self) -> pl.DataFrame:
        """Per strategy and timestamp: the equal-weight return, equity and drawdown."""
        return (
            self.ledger.group_by("strategy", TIMESTAMP, maintain_order=True)
            .agg(pl.col("return").mean(), pl.col("position").mean())
            .sort("strategy", TIMESTAMP)
            .with_columns(equity=(1 + pl.col("return")).cum_prod().over("strategy"))
            .with_columns(
                drawdown=1
                - pl.col("equity")
                / pl.max_horizontal(pl.col("equity").cum_max(), pl.lit(1.0)).over("strategy")
            )
        )


def backtest(
    frame: pl.DataFrame,
    span: Window,
    config: EnvConfig,
    policies: dict[str, Traded],
    momentum_lookback: int = MOMENTUM_LOOKBACK,
) -> Backtest:
    """Trades ``policies`` and the baselines on the decision bars of ``span``."""
    base = MarketArrays.from_features(frame, Normaliser.identity())
    positions_of = book(base, config.window, span)
    strategies: dict[str, np.ndarray] = {}
    for name, traded in policies.items():
        arrays = MarketArrays.from_features(frame, traded.normaliser)
        strategies[name] = run_on_book(
            traded.policy, Book(arrays, positions_of.first, positions_of.last), config
        )
    rows = positions_of.rows()
    strategies[BUY_AND_HOLD] = np.full(rows.size, config.max_position)
    strategies[FLAT] = np.zeros(rows.size)
    strategies[MOMENTUM] = momentum_positions(frame, positions_of, config, momentum_lookback)
    return price(strategies, positions_of, config)


def price(strategies: dict[str, np.ndarray], positions_of: Book, config: EnvConfig) -> Backtest:
    rows, starts = positions_of.rows(), positions_of.symbol_starts()
    arrays = positions_of.arrays
    symbols = np.repeat(np.asarray(arrays.symbols, dtype=object), positions_of.lengths)
    next_return = arrays.next_return[rows]
    ledgers, summaries = [], []
    for name, position in strategies.items():
        ledger = account(position, next_return, starts, config)
        ledgers.append(
            pl.DataFrame(
                {
                    "strategy": name,
                    SYMBOL: symbols,
                    TIMESTAMP: arrays.timestamps[rows],
                    "position": ledger.position,
                    "traded": ledger.traded,
                    "gross": ledger.gross,
                    "fees": ledger.fees,
                    "slippage": ledger.slippage,
                    "borrow": ledger.borrow,
                    "pnl": ledger.pnl,
                    "return": np.expm1(ledger.pnl),
                }
            )
        )
    ledger_frame = pl.concat(ledgers).with_columns(pl.col(TIMESTAMP).dt.replace_time_zone("UTC"))
    costs = pl.col("fees") + pl.col("slippage") + pl.col("borrow")
    for (name, symbol), part in ledger_frame.group_by("strategy", SYMBOL, maintain_order=True):
        summaries.append(_summary(name, symbol, part, config.bars_per_year))
    portfolio = ledger_frame.group_by("strategy", TIMESTAMP, maintain_order=True).agg(
        pl.col("return").mean(),
        pl.col("position").abs().mean().alias("position"),
        pl.col("traded").mean(),
        pl.col("gross").mean(),
        costs.mean().alias("costs"),
    )
    for (name,), part in portfolio.sort(TIMESTAMP).group_by("strategy", maintain_order=True):
        summaries.append(_summary(name, PORTFOLIO, part, config.bars_per_year))
    return Backtest(ledger_frame, pl.DataFrame(summaries))


def _summary(name: str, symbol: str, part: pl.DataFrame, bars_per_year: int) -> dict:
    costs = (
        part["costs"].to_numpy()
        if "costs" in part.columns
        else (part["fees"] + part["slippage"] + part["borrow"]).to_numpy()
    )
    return {
        "strategy": name,
        "symbol": symbol,
        **metrics(
            part["return"].to_numpy(),
            part["position"].to_numpy(),
            part["traded"].to_numpy(),
            part["gross"].to_numpy(),
            costs,
            bars_per_year,
        ),
    }


def per_bar_loop(
    policy: NumpyPolicy,
    arrays: MarketArrays,
    positions_of: Book,
    config: EnvConfig,
) -> np.ndarray:
    """The textbook loop, a bar at a time, kept as the benchmark's peer and a test oracle."""
    window, n = config.window, arrays.n_features
    pnl = []
    for s in range(len(positions_of.first)):
        held = 0.0
        for row in range(positions_of.first[s], positions_of.last[s]):
            obs = np.empty((1, window * n + 1), np.float32)
            obs[0, :-1] = arrays.features[row - window + 1 : row + 1].reshape(-1)
            obs[0, -1] = held
            target = float(policy.act(obs)[0]) * config.max_position
            step, _ = step_accounting(held, target, float(arrays.next_return[row]), config)
            pnl.append(step)
            held = target
    return np.asarray(pnl)
