"""Properties that must hold for every input, searched by Hypothesis rather than picked.

Accounting identities of the ledger, monotonicity and exact thresholds of the
promotion gate, and request validation's refusal of every malformed bar.
"""

import copy
from datetime import datetime

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from tradeops_assets.core import backtest, promotion
from tradeops_assets.core.errors import RequestError
from tradeops_assets.core.market import EnvConfig, step_accounting
from tradeops_assets.core.promotion import GateCriteria
from tradeops_assets.core.request import parse_request
from tradeops_assets.core.summary import BacktestSummary, FoldResult
from tradeops_assets.core.windows import Window

PROPERTY = settings(max_examples=150, deadline=None, derandomize=True)

positions = hnp.arrays(
    np.float64, st.integers(1, 60), elements=st.floats(-1, 1, allow_nan=False, width=64)
)
costs = st.builds(
    EnvConfig,
    fee_bps=st.floats(0, 50),
    slippage_bps=st.floats(0, 50),
    borrow_bps_per_year=st.floats(0, 500),
    bars_per_year=st.sampled_from([252, 6227.04, 525960]),
)


def returns_like(position: np.ndarray, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).normal(0, 0.02, position.size)


@PROPERTY
@given(position=positions, config=costs, seed=st.integers(0, 2**16), cut=st.integers(0, 59))
def test_pnl_is_gross_less_fees_slippage_and_borrow(position, config, seed, cut):
    next_return = returns_like(position, seed)
    starts = np.unique([0, min(cut, position.size - 1)])
    ledger = backtest.account(position, next_return, starts, config)
    costs = ledger.fees + ledger.slippage + ledger.borrow
    np.testing.assert_allclose(ledger.pnl, ledger.gross - costs, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(ledger.gross, position * next_return, rtol=0, atol=0)
    previous = np.r_[0.0, position[:-1]]
    previous[starts] = 0.0  # every symbol starts flat
    env_pnl, env_cost = step_accounting(previous, position, next_return, config)
    np.testing.assert_allclose(ledger.pnl, env_pnl, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(costs, env_cost, rtol=1e-12, atol=1e-15)


@PROPERTY
@given(n=st.integers(1, 60), config=costs, seed=st.integers(0, 2**16))
def test_a_flat_book_pays_nothing(n, config, seed):
    flat = np.zeros(n)
    ledger = backtest.account(flat, returns_like(flat, seed), np.array([0]), config)
    for part in (ledger.traded, ledger.fees, ledger.slippage, ledger.borrow, ledger.pnl):
        assert not part.any()


@PROPERTY
@given(position=positions, config=costs, scale=st.floats(0.01, 1.0), seed=st.integers(0, 2**16))
def test_costs_scale_with_the_size_traded(position, config, scale, seed):
    next_return = returns_like(position, seed)
    full = backtest.account(position, next_return, np.array([0]), config)
    part = backtest.account(position * scale, next_return, np.array([0]), config)
    np.testing.assert_allclose(part.traded, full.traded * scale, rtol=1e-12, atol=1e-15)
    for a, b in (
        (part.fees, full.fees),
        (part.slippage, full.slippage),
        (part.borrow, full.borrow),
    ):
        np.testing.assert_allclose(a, b * scale, rtol=1e-12, atol=1e-18)
    np.testing.assert_allclose(
        full.fees, full.traded * config.fee_bps / 1e4, rtol=1e-12, atol=1e-18
    )


YEAR = Window(datetime(2021, 1, 4), datetime(2021, 12, 31))
STRATEGIES = ("challenger", "champion", "buy_and_hold", "flat", "momentum")
sharpe = st.floats(-3, 5, allow_nan=False)


def summary(held: dict[str, float], folds: list[dict[str, float]], drawdown, turnover):
    metrics = {s: {"sharpe": v, "max_drawdown": 0.05, "turnover": 10.0} for s, v in held.items()}
    metrics["challenger"].update(max_drawdown=drawdown, turnover=turnover)
    return BacktestSummary(
        challenger_version="2",
        champion_version="1",
        challenger_run_id="run",
        data_version="md5",
        held_out=YEAR,
        metrics=metrics,
        folds=tuple(FoldResult(i, 0, YEAR, YEAR, f, 0.05) for i, f in enumerate(folds)),
    )


gate_inputs = st.fixed_dictionaries(
    {
        "held": st.fixed_dictionaries({s: sharpe for s in STRATEGIES}),
        "folds": st.lists(
            st.fixed_dictionaries(
                {s: sharpe for s in ("challenger", "buy_and_hold", "flat", "momentum")}
            ),
            min_size=1,
            max_size=6,
        ),
        "drawdown": st.floats(0, 0.6),
        "turnover": st.floats(0, 600),
    }
)
criteria = st.builds(
    GateCriteria,
    baseline_margin=st.floats(0, 0.5),
    champion_margin=st.floats(0, 0.5),
    min_fold_win_rate=st.sampled_from([0.25, 0.5, 2 / 3, 1.0]),
    max_drawdown=st.floats(0.05, 0.5),
    max_turnover=st.floats(10, 500),
)


@PROPERTY
@given(inputs=gate_inputs, limits=criteria, better=st.floats(0, 2))
def test_the_gate_is_monotone_in_the_challengers_figures(inputs, limits, better):
    """A challenger better on any figure, everything else equal, is never refused for it."""
    before = promotion.judge(summary(**inputs), limits)
    improved = copy.deepcopy(inputs)
    improved["held"]["challenger"] += better
    for fold in improved["folds"]:
        fold["challenger"] += better
    improved["drawdown"] = max(0.0, inputs["drawdown"] - better / 10)
    improved["turnover"] = max(0.0, inputs["turnover"] - better * 50)
    after = promotion.judge(summary(**improved), limits)
    was = {c.name: c.passed for c in before.criteria}
    assert all(c.passed for c in after.criteria if was[c.name])
    assert after.passed or not before.passed


@PROPERTY
@given(inputs=gate_inputs, limits=criteria, worse=st.floats(0, 2))
def test_stronger_baselines_never_turn_a_refusal_into_a_promotion(inputs, limits, worse):
    before = promotion.judge(summary(**inputs), limits)
    harder = copy.deepcopy(inputs)
    for name in ("champion", "buy_and_hold", "flat", "momentum"):
        harder["held"][name] += worse
    after = promotion.judge(summary(**harder), limits)
    assert before.passed or not after.passed


@PROPERTY
@given(inputs=gate_inputs, limits=criteria)
def test_each_threshold_is_exact(inputs, limits):
    """At a limit a risk figure passes; a Sharpe equal to baseline plus margin does not beat it."""
    at_limits = copy.deepcopy(inputs)
    at_limits["drawdown"] = limits.max_drawdown
    for fold in at_limits["folds"]:
        fold["challenger"] = min(fold["challenger"], 0.0)
    at_limits["turnover"] = limits.max_turnover
    verdict = promotion.judge(summary(**at_limits), limits)
    by_name = {c.name: c for c in verdict.criteria}
    assert by_name["turnover"].passed
    assert by_name["max_drawdown"].passed == (limits.max_drawdown >= 0.05)
    tie = copy.deepcopy(inputs)
    tie["held"]["challenger"] = tie["held"]["flat"] + limits.baseline_margin
    tied = {c.name: c for c in promotion.judge(summary(**tie), limits).criteria}
    assert not tied["held_out_sharpe_vs_flat"].passed


def good_bars(n: int = 90) -> list[dict]:
    rng = np.random.default_rng(3)
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, n)))
    start = datetime(2024, 1, 1).timestamp()
    return [
        {
            "timestamp": start + 86400 * i,
            "open": float(c),
            "high": float(c) * 1.01,
            "low": float(c) * 0.99,
            "close": float(c),
            "volume": 1000.0,
        }
        for i, c in enumerate(close)
    ]


class Bundle:
    """Only what parse_request reads from a bundle."""

    symbols = frozenset()
    min_bars = 80
    window = 16


BROKEN = st.sampled_from(
    [
        ("high", lambda b: b["low"] * 0.5),  # OHLC inconsistent
        ("low", lambda b: b["high"] * 2.0),
        ("open", lambda b: b["high"] * 1.5),
        ("close", lambda b: b["low"] * 0.5),
        ("close", lambda _: float("nan")),
        ("volume", lambda _: float("inf")),
        ("open", lambda _: -1.0),
        ("volume", lambda _: -1.0),
    ]
)


@PROPERTY
@given(index=st.integers(0, 89), broken=BROKEN)
def test_every_malformed_bar_is_refused_naming_it(index, broken):
    bars = good_bars()
    column, value = broken
    bars[index][column] = value(bars[index])
    with pytest.raises(RequestError) as err:
        parse_request({"symbol": "X", "bars": bars, "position": 0.0}, Bundle())
    assert err.value.field.startswith(f"bars[{index}]")


@PROPERTY
@given(index=st.integers(1, 89), back=st.integers(0, 5))
def test_a_timestamp_that_repeats_or_goes_back_is_refused(index, back):
    bars = good_bars()
    bars[index]["timestamp"] = bars[max(index - 1 - back, 0)]["timestamp"]
    with pytest.raises(RequestError) as err:
        parse_request({"symbol": "X", "bars": bars, "position": 0.0}, Bundle())
    assert err.value.field == f"bars[{index}].timestamp"
