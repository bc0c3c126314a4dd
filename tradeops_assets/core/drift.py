"""Has the market moved away from what the policy learned, and does the policy still earn?

Feature drift compares live feature values with a reference fitted on the champion's
training window. The reference keeps, per feature, 99 quantile edges, its range, and
the share of training rows between the edges; the current sample is binned on the
same edges with one ``searchsorted`` per feature (values outside the reference's
range in bins of their own), and three distances come from those counts:

- PSI (population stability index) on the 10 decile bins and the two outside ones: the
  industry's drift score, read by convention as < 0.1 stable, 0.1-0.25 moderate,
  > 0.25 significant;
- KS: the largest gap between the two cumulative distributions on the 100 bins;
- Wasserstein-1: the area between them, in the feature's own units.

Counting once serves all three, so a million rows of fifty features take well under
a second (``make bench``, ``drift_seconds``). Degenerate inputs have defined answers:
a constant feature has all its reference in one bin and any other value outside its
range, an empty current window reports
zero rows and no score (``judged`` is False), one symbol is as good as many.

Performance drift joins what the endpoint actually served with the bars that
followed and prices it like the backtest (``market.step_accounting``): realised P&L,
Sharpe, hit rate and drawdown, against the expectation stored at training.
"""

import math
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl

from tradeops_assets.core.errors import ConfigError
from tradeops_assets.core.market import EnvConfig, step_accounting
from tradeops_assets.core.schemas import SYMBOL, TIMESTAMP

FINE_BINS = 100
COARSE_BINS = 10
BLOCK_ROWS = 16_384
GRID_CELLS = 4096
EPSILON = 1e-4  # a share floor so an empty bin scores a large, finite PSI
PSI_WARN, PSI_ERROR = 0.1, 0.25
ACTION_EDGES = np.linspace(-1.0, 1.0, 21)[1:-1]  # 20 equal bins of target position
MIN_DECISIONS = 20
"""Fewer realised decisions than this are reported but not judged: too few to tell noise."""
SHARPE_SHORTFALL_WARN, SHARPE_SHORTFALL_ERROR = 1.0, 2.0
"""Live Sharpe this far (annualised points) below the expectation warns, then errs."""


@dataclass(frozen=True)
class DistributionReference:
    """Per column, interior quantile edges, the range, and the reference's share per bin.

    Bins: below the range, the ``FINE_BINS`` between edges, above the range.
    """

    columns: tuple[str, ...]
    edges: np.ndarray  # float64 [columns, FINE_BINS - 1]
    shares: np.ndarray  # float64 [columns, FINE_BINS + 2]
    rows: int
    summary: dict[str, dict[str, float]]
    low: np.ndarray  # float64 [columns]: the reference's smallest value
    high: np.ndarray  # float64 [columns]: its largest

    @classmethod
    def fit(cls, values: np.ndarray, columns: tuple[str, ...]) -> "DistributionReference":
        values = np.asarray(values, dtype=np.float64)
        if values.ndim != 2 or values.shape[1] != len(columns) or values.shape[0] == 0:
            raise ConfigError(
                f"a drift reference needs rows x {len(columns)} values, got {values.shape}"
            )
        finite = np.where(np.isfinite(values), values, np.nan)
        quantiles = np.linspace(0, 1, FINE_BINS + 1)[1:-1]
        edges = np.nan_to_num(np.nanquantile(finite, quantiles, axis=0).T)
        low = np.nan_to_num(np.nanmin(finite, axis=0))
        high = np.nan_to_num(np.nanmax(finite, axis=0))
        shares = bin_shares(values, edges, low, high)
        summary = {
            name: {
                "mean": float(np.nanmean(finite[:, i])),
                "std": float(np.nanstd(finite[:, i])),
                "p01": float(np.nanquantile(finite[:, i], 0.01)),
                "p50": float(np.nanquantile(finite[:, i], 0.5)),
                "p99": float(np.nanquantile(finite[:, i], 0.99)),
            }
            for i, name in enumerate(columns)
        }
        return cls(tuple(columns), edges, shares, int(values.shape[0]), summary, low, high)

    def to_dict(self) -> dict[str, Any]:
        return {
            "columns": list(self.columns),
            "edges": self.edges.tolist(),
            "shares": self.shares.tolist(),
            "rows": self.rows,
            "summary": self.summary,
            "low": self.low.tolist(),
            "high": self.high.tolist(),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "DistributionReference":
        return cls(
            tuple(data["columns"]),
            np.asarray(data["edges"], dtype=np.float64),
            np.asarray(data["shares"], dtype=np.float64),
            int(data["rows"]),
            dict(data["summary"]),
            np.asarray(data["low"], dtype=np.float64),
            np.asarray(data["high"], dtype=np.float64),
        )

    def shares_of(self, values: np.ndarray) -> np.ndarray:
        return bin_shares(values, self.edges, self.low, self.high)


class _Binner:
    """Finds a value's bin among sorted ``bounds`` without a binary search for most values.

    A uniform grid of ``GRID_CELLS`` cells spans the first to the last interior edge; a
    cell that lies inside one bin answers with a table lookup. Values in a cell an edge
    crosses, or beyond the interior edges (the table's two outer cells), are searched:
    a few percent of a continuous feature, more of a discrete one whose values sit on
    the edges. Each cell's answer is computed with a slack wider than the rounding of
    the cell index, so the result is exactly ``searchsorted(bounds, v, "right")``.
    """

    SEARCH = -1

    def __init__(self, bounds: np.ndarray) -> None:
        self.bounds = bounds
        first, last = float(bounds[1]), float(bounds[-2])
        width = (last - first) / GRID_CELLS
        self.usable = bool(np.isfinite(width) and width > 0)
        if self.usable:
            self.scale, self.origin = 1.0 / width, first - width  # cell 0: below the grid
            lefts = first + np.arange(GRID_CELLS) * width
            slack = 1e-9 * width + 16 * np.spacing(max(abs(first), abs(last)))
            low = np.searchsorted(bounds, lefts - slack, side="right")
            high = np.searchsorted(bounds, lefts + width + slack, side="right")
            inner = np.where(low == high, low, self.SEARCH)
            self.table = np.concatenate([[self.SEARCH], inner, [self.SEARCH]]).astype(np.int16)

    def __call__(self, column: np.ndarray) -> np.ndarray:
        if not self.usable:
            return np.searchsorted(self.bounds, column, side="right")
        cell = np.subtract(column, self.origin)
        cell *= self.scale
        np.clip(cell, 0, GRID_CELLS + 1, out=cell)
        index = self.table[cell.astype(np.int32)]
        searched = index == self.SEARCH
        index[searched] = np.searchsorted(self.bounds, column[searched], side="right")
        return index


def bin_shares(
    values: np.ndarray, edges: np.ndarray, low: np.ndarray, high: np.ndarray
) -> np.ndarray:
    """Share of each column's rows per bin: below ``low``, between the edges, above ``high``.

    Non-finite values are not counted. Rows go in blocks that stay in cache and are
    shared among threads (numpy's loops run without the GIL); a row-major sample is
    transposed a block at a time, so each column is read contiguously either way.
    """
    values = np.asarray(values, dtype=np.float64)
    columns, inner = edges.shape[0], edges.shape[1] + 1
    # [low, edges..., just above high]: one search gives bin 0 below the range, the
    # inner bins, and inner + 1 above it.
    bounds = np.concatenate([low[:, None], edges, np.nextafter(high, np.inf)[:, None]], axis=1)
    binners = [_Binner(bounds[i]) for i in range(columns)]
    starts = range(0, values.shape[0], BLOCK_ROWS)
    empty = np.zeros((columns, inner + 2), dtype=np.int64)

    def count(start: int) -> np.ndarray:
        rows = values[start : start + BLOCK_ROWS]
        # Column-major input (polars hands features over so) is read in place; row-major
        # is transposed one cache-sized block at a time.
        block = rows.T if values.flags.f_contiguous else np.ascontiguousarray(rows.T)
        out = empty.copy()
        with np.errstate(invalid="ignore", over="ignore"):
            sums = block.sum(axis=1)  # NaN and inf survive a sum: finite sum, finite column
        for i in range(columns):
            column = block[i]
            if not np.isfinite(sums[i]):
                column = column[np.isfinite(column)]
            out[i] = np.bincount(binners[i](column), minlength=inner + 2)
        return out

    with ThreadPoolExecutor(max_workers=max(1, min(len(starts), os.cpu_count() or 1))) as pool:
        counts = sum(pool.map(count, starts), empty)
    totals = counts.sum(axis=1, keepdims=True)
    return np.divide(counts, totals, out=np.zeros(counts.shape), where=totals > 0)


def psi(reference: np.ndarray, current: np.ndarray, coarse: int = COARSE_BINS) -> np.ndarray:
    """Population stability index per row of shares: the inner bins merged into ``coarse``
    groups, plus the two outside the reference's range."""

    def merged(shares: np.ndarray) -> np.ndarray:
        inner = shares[:, 1:-1]
        grouped = inner.reshape(shares.shape[0], coarse, inner.shape[1] // coarse).sum(axis=2)
        return np.concatenate([shares[:, :1], grouped, shares[:, -1:]], axis=1)

    ref, cur = np.maximum(merged(reference), EPSILON), np.maximum(merged(current), EPSILON)
    return ((cur - ref) * np.log(cur / ref)).sum(axis=1)


def ks(reference: np.ndarray, current: np.ndarray) -> np.ndarray:
    """Largest gap between the cumulative distributions, on the fine bins."""
    return np.abs(np.cumsum(reference, axis=1) - np.cumsum(current, axis=1)).max(axis=1)


def wasserstein(reference: np.ndarray, current: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Area between the two cumulative distributions between the reference's 1st and 99th
    percentiles (mass beyond them counts in PSI and KS, not here)."""
    gaps = np.abs(np.cumsum(reference, axis=1) - np.cumsum(current, axis=1))
    # gaps[:, k + 1] is the CDF gap just above edge k (bin 0 lies below the range)
    return (gaps[:, 1 : edges.shape[1]] * np.diff(edges, axis=1)).sum(axis=1)


@dataclass(frozen=True)
class Drift:
    """Distances of a current sample from a reference, per column."""

    columns: tuple[str, ...]
    psi: np.ndarray
    ks: np.ndarray
    wasserstein: np.ndarray
    rows: int

    @property
    def judged(self) -> bool:
        return self.rows > 0

    @property
    def worst(self) -> str | None:
        return self.columns[int(np.argmax(self.psi))] if self.judged and self.columns else None

    @property
    def worst_psi(self) -> float:
        return float(self.psi.max()) if self.judged and self.columns else 0.0

    def over(self, threshold: float, top: int = 5) -> dict[str, float]:
        """The columns at or above ``threshold`` PSI, worst first: what an alert names."""
        order = np.argsort(-self.psi, kind="stable")[:top] if self.judged else []
        return {
            self.columns[i]: round(float(self.psi[i]), 3) for i in order if self.psi[i] >= threshold
        }

    def table(self) -> pl.DataFrame:
        return pl.DataFrame(
            {
                "feature": list(self.columns),
                "psi": self.psi,
                "ks": self.ks,
                "wasserstein": self.wasserstein,
            }
        ).sort("psi", descending=True)


def drift(reference: DistributionReference, values: np.ndarray) -> Drift:
    values = np.asarray(values, dtype=np.float64).reshape(-1, len(reference.columns))
    rows = int(np.isfinite(values).all(axis=1).sum())
    if rows == 0:
        zeros = np.zeros(len(reference.columns))
        return Drift(reference.columns, zeros, zeros, zeros, 0)
    current = reference.shares_of(values)
    return Drift(
        reference.columns,
        psi(reference.shares, current),
        ks(reference.shares, current),
        wasserstein(reference.shares, current, reference.edges),
        rows,
    )


def action_reference(targets: np.ndarray) -> DistributionReference:
    """The served target positions' reference: 20 equal bins over [-1, 1], not quantiles,
    because a policy's actions pile up at the limits."""
    targets = np.asarray(targets, dtype=np.float64).reshape(-1, 1)
    edges, low, high = ACTION_EDGES[None, :], np.array([-1.0]), np.array([1.0])
    shares = bin_shares(targets, edges, low, high)
    summary = {"target_position": {"mean": float(targets.mean()), "std": float(targets.std())}}
    columns = ("target_position",)
    return DistributionReference(columns, edges, shares, targets.shape[0], summary, low, high)


def action_drift(reference: DistributionReference, targets: np.ndarray) -> Drift:
    """PSI of the served actions against the validation window's, on the 20 bins (as 10)."""
    targets = np.asarray(targets, dtype=np.float64).reshape(-1, 1)
    if targets.size == 0:
        return drift(reference, targets)
    current = reference.shares_of(targets)
    return Drift(
        reference.columns,
        psi(reference.shares, current, coarse=10),
        ks(reference.shares, current),
        wasserstein(reference.shares, current, reference.edges),
        int(targets.size),
    )


@dataclass(frozen=True)
class Expectation:
    """What the policy earned per decision where it was judged: the yardstick for live P&L."""

    pnl_mean: float
    pnl_std: float
    sharpe: float
    hit_rate: float
    bars_per_year: float
    decisions: int

    def to_dict(self) -> dict[str, float]:
        return dict(self.__dict__)

    @classmethod
    def from_dict(cls, data: dict[str, float]) -> "Expectation":
        return cls(**{k: data[k] for k in cls.__dataclass_fields__})


@dataclass(frozen=True)
class LivePerformance:
    decisions: int
    """Served decisions whose next bar is known, so their outcome is."""
    pnl_total: float
    pnl_mean: float
    sharpe: float
    hit_rate: float
    max_drawdown: float
    expected: Expectation
    curve: pl.DataFrame  # bar_timestamp, pnl, equity
    min_decisions: int = MIN_DECISIONS

    @property
    def judged(self) -> bool:
        return self.decisions >= self.min_decisions

    @property
    def sharpe_shortfall(self) -> float:
        """How far live Sharpe is below the expectation (positive = worse)."""
        return self.expected.sharpe - self.sharpe if self.judged else 0.0


def realised(
    decisions: pl.DataFrame,
    bars: pl.DataFrame,
    env: EnvConfig,
    expected: Expectation,
    min_decisions: int = MIN_DECISIONS,
) -> LivePerformance:
    """Prices each served decision with the bar that followed it, as the backtest would.

    ``decisions``: the prediction log (symbol, bar_timestamp, position, target_position);
    ``bars``: market bars (symbol, timestamp, close). A decision whose next bar has not
    arrived yet has no outcome and is left out.
    """
    closes = (
        bars.select(SYMBOL, TIMESTAMP, "close")
        .sort(SYMBOL, TIMESTAMP)
        .with_columns(next_return=(pl.col("close").shift(-1) / pl.col("close")).log().over(SYMBOL))
        .drop_nulls("next_return")
    )
    served = decisions.select(
        SYMBOL, pl.col("bar_timestamp").alias(TIMESTAMP), "position", "target_position"
    )
    joined = served.join(closes, on=[SYMBOL, TIMESTAMP], how="inner").sort(TIMESTAMP)
    if joined.is_empty():
        empty = pl.DataFrame(
            schema={
                "bar_timestamp": pl.Datetime("us", "UTC"),
                "pnl": pl.Float64,
                "equity": pl.Float64,
            }
        )
        return LivePerformance(0, 0.0, 0.0, 0.0, 0.0, 0.0, expected, empty, min_decisions)
    target = joined["target_position"].to_numpy()
    pnl, _ = step_accounting(
        joined["position"].to_numpy(), target, joined["next_return"].to_numpy(), env
    )
    std = float(pnl.std(ddof=1)) if pnl.size > 1 else 0.0
    equity = np.cumsum(pnl)
    peak = np.maximum.accumulate(np.maximum(equity, 0.0))
    holding = target != 0
    gross = target * joined["next_return"].to_numpy()
    curve = pl.DataFrame({"bar_timestamp": joined[TIMESTAMP], "pnl": pnl, "equity": equity})
    return LivePerformance(
        decisions=int(pnl.size),
        pnl_total=float(pnl.sum()),
        pnl_mean=float(pnl.mean()),
        sharpe=float(pnl.mean() / std * math.sqrt(expected.bars_per_year)) if std > 0 else 0.0,
        hit_rate=float((gross[holding] > 0).mean()) if holding.any() else 0.0,
        max_drawdown=float((peak - equity).max()),
        expected=expected,
        curve=curve,
        min_decisions=min_decisions,
    )


@dataclass(frozen=True)
class PolicyReference:
    """What monitoring compares a live policy against, stored with it when it is registered."""

    features: DistributionReference
    """The raw features of the training window."""
    actions: DistributionReference
    """The policy's target positions on the validation window."""
    expected: Expectation
    """What it earned per decision on the validation window."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "features": self.features.to_dict(),
            "actions": self.actions.to_dict(),
            "expected": self.expected.to_dict(),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "PolicyReference":
        return cls(
            DistributionReference.from_dict(data["features"]),
            DistributionReference.from_dict(data["actions"]),
            Expectation.from_dict(data["expected"]),
        )


def reference_for(frame: pl.DataFrame, recipe: Any, traded: Any) -> PolicyReference:
    """The reference of a policy trained with ``recipe``: features of its training window,
    and its actions and earnings when it trades its validation window."""
    from tradeops_assets.core.backtest import CHALLENGER, backtest
    from tradeops_assets.core.features import FEATURE_COLUMNS

    values = frame.filter(recipe.train_window.contains()).select(FEATURE_COLUMNS).to_numpy()
    result = backtest(frame, recipe.validation_window, recipe.env, {CHALLENGER: traded})
    mine = result.ledger.filter(pl.col("strategy") == CHALLENGER)
    pnl = mine["pnl"].to_numpy()
    std = float(pnl.std(ddof=1)) if pnl.size > 1 else 0.0
    holding = mine["position"].to_numpy() != 0
    per_year = math.sqrt(recipe.env.bars_per_year)
    expected = Expectation(
        pnl_mean=float(pnl.mean()),
        pnl_std=std,
        sharpe=float(pnl.mean() / std * per_year) if std > 0 else 0.0,  # per decision, as live
        hit_rate=float((mine["gross"].to_numpy()[holding] > 0).mean()) if holding.any() else 0.0,
        bars_per_year=float(recipe.env.bars_per_year),
        decisions=int(pnl.size),
    )
    return PolicyReference(
        DistributionReference.fit(values, FEATURE_COLUMNS),
        action_reference(mine["position"].to_numpy() / recipe.env.max_position),
        expected,
    )
