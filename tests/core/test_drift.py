"""Drift scores against known distributions, degenerate inputs, and realised P&L by hand."""

import math
from datetime import UTC, datetime, timedelta

import numpy as np
import polars as pl
import pytest

from tradeops_assets.core import drift
from tradeops_assets.core.market import EnvConfig

COLUMNS = ("a", "b", "c")


@pytest.fixture(scope="module")
def reference() -> drift.DistributionReference:
    rng = np.random.default_rng(0)
    return drift.DistributionReference.fit(rng.normal(0, 1, (200_000, 3)), COLUMNS)


def test_the_same_distribution_does_not_drift_and_a_shift_does(reference):
    rng = np.random.default_rng(1)
    same = drift.drift(reference, rng.normal(0, 1, (50_000, 3)))
    assert same.judged
    assert same.psi.max() < 0.01
    assert same.ks.max() < 0.02
    shifted = rng.normal(0, 1, (50_000, 3))
    shifted[:, 1] += 1.0  # one standard deviation
    moved = drift.drift(reference, shifted)
    assert moved.worst == "b"
    assert moved.psi[1] > drift.PSI_ERROR > moved.psi[0]
    assert moved.ks[1] == pytest.approx(math.erf(0.5 / math.sqrt(2)) * 2 * 0.5 + 0, abs=0.03)
    assert moved.wasserstein[1] == pytest.approx(1.0, abs=0.1)  # W1 of a unit location shift
    assert moved.table()["feature"][0] == "b"


def test_scores_are_the_same_at_any_scale_of_the_feature():
    rng = np.random.default_rng(2)
    base, live = rng.lognormal(0, 1, (20_000, 1)), rng.lognormal(0.3, 1, (5_000, 1))
    small = drift.drift(drift.DistributionReference.fit(base, ("x",)), live)
    large = drift.drift(drift.DistributionReference.fit(base * 1e5, ("x",)), live * 1e5)
    assert small.psi[0] == pytest.approx(large.psi[0], rel=1e-9)
    assert large.wasserstein[0] == pytest.approx(small.wasserstein[0] * 1e5, rel=1e-6)


def test_degenerate_inputs_have_defined_answers(reference):
    constant = drift.DistributionReference.fit(np.full((500, 1), 0.5), ("flat",))
    assert drift.drift(constant, np.full((50, 1), 0.5)).psi[0] == pytest.approx(0.0)
    moved = drift.drift(constant, np.full((50, 1), 0.9))
    assert np.isfinite(moved.psi[0])
    assert moved.psi[0] > drift.PSI_ERROR
    empty = drift.drift(reference, np.empty((0, 3)))
    assert not empty.judged
    assert empty.worst is None
    assert empty.worst_psi == 0.0
    with_gaps = np.random.default_rng(3).normal(0, 1, (1000, 3))
    with_gaps[::7, 2] = np.nan
    result = drift.drift(reference, with_gaps)
    assert np.isfinite(result.psi).all()
    assert result.rows == 1000 - len(range(0, 1000, 7))
    with pytest.raises(Exception, match="rows x 3"):
        drift.DistributionReference.fit(np.empty((0, 3)), COLUMNS)


def test_a_reference_survives_json(reference):
    again = drift.DistributionReference.from_dict(reference.to_dict())
    np.testing.assert_array_equal(again.edges, reference.edges)
    np.testing.assert_array_equal(again.shares, reference.shares)
    assert again.summary == reference.summary
    assert reference.shares.sum(axis=1) == pytest.approx(np.ones(3))


def test_actions_drift_when_the_policy_changes_its_mind():
    calm = drift.action_reference(np.random.default_rng(4).uniform(-0.2, 0.2, 5000))
    assert drift.action_drift(calm, np.random.default_rng(5).uniform(-0.2, 0.2, 500)).psi[0] < 0.05
    assert drift.action_drift(calm, np.full(500, 1.0)).psi[0] > drift.PSI_ERROR
    assert not drift.action_drift(calm, np.empty(0)).judged


def test_served_decisions_are_priced_with_the_bar_that_followed():
    start = datetime(2024, 1, 1, tzinfo=UTC)
    bars = pl.DataFrame(
        {
            "symbol": ["A"] * 3 + ["B"] * 2,
            "timestamp": [start + timedelta(days=d) for d in (0, 1, 2, 0, 1)],
            "close": [100.0, 110.0, 99.0, 50.0, 50.0],
        }
    )
    decisions = pl.DataFrame(
        {
            "symbol": ["A", "A", "A", "B"],
            "bar_timestamp": [start, start + timedelta(days=1), start + timedelta(days=2), start],
            "position": [0.0, 1.0, -1.0, 0.0],
            "target_position": [1.0, -1.0, 0.5, 0.5],
        }
    )
    env = EnvConfig(fee_bps=1.0, slippage_bps=2.0)
    expected = drift.Expectation(0.001, 0.01, 1.0, 0.5, 252, 100)
    live = drift.realised(decisions, bars, env, expected)
    assert live.decisions == 3  # A's last decision has no next bar yet
    pnl = [
        math.log(1.1) - 3e-4,  # long from flat into a 10% rise
        -math.log(99 / 110) * 1 - 2 * 3e-4,  # flipped short into a fall
        0.0 - 0.5 * 3e-4,  # B did not move
    ]
    assert live.pnl_total == pytest.approx(sum(pnl))
    assert live.hit_rate == pytest.approx(2 / 3)
    assert not live.judged  # 3 decisions are too few to judge
    assert live.sharpe_shortfall == 0.0
    none = drift.realised(decisions.head(0), bars, env, expected)
    assert (none.decisions, none.pnl_total, none.sharpe) == (0, 0.0, 0.0)


def test_a_policy_reference_is_fitted_on_its_windows(feature_frame, arrays):
    from tradeops_assets.core.backtest import TradedPolicy
    from tradeops_assets.core.env import VecTradingEnv
    from tradeops_assets.core.market import fit_normaliser
    from tradeops_assets.core.recipe import PolicyRecipe, TrainConfig
    from tradeops_assets.core.training import make_model

    config = TrainConfig(n_envs=2, batch_size=64, env=EnvConfig(window=8, episode_bars=16))
    recipe = PolicyRecipe.by_fraction(config, feature_frame)
    model = make_model(config, VecTradingEnv(arrays, 2, config.env))
    traded = TradedPolicy(
        config.spec.export(model), fit_normaliser(feature_frame, recipe.train_window)
    )
    reference = drift.reference_for(feature_frame, recipe, traded)
    train_rows = feature_frame.filter(recipe.train_window.contains()).height
    assert reference.features.rows == train_rows
    assert reference.expected.decisions > 0
    assert reference.actions.shares.sum() == pytest.approx(1.0)
    assert drift.PolicyReference.from_dict(reference.to_dict()).expected == reference.expected


def _searched(values: np.ndarray, reference: drift.DistributionReference) -> np.ndarray:
    """The definition the fast binning must equal: one binary search per value."""
    out = np.zeros_like(reference.shares)
    for i in range(values.shape[1]):
        column = values[:, i][np.isfinite(values[:, i])]
        index = np.searchsorted(reference.edges[i], column, side="right") + 1
        index[column < reference.low[i]] = 0
        index[column > reference.high[i]] = reference.edges.shape[1] + 2
        if column.size:
            out[i] = np.bincount(index, minlength=out.shape[1]) / column.size
    return out


@pytest.mark.parametrize("scale", [1e-9, 0.1, 1.0, 1e5, 1e12])
def test_fast_binning_equals_a_binary_search_on_every_awkward_value(scale):
    """Values on edges, on the grid's cell boundaries, beyond the range, repeated, discrete,
    constant or non-finite land in the bins one binary search per value would give."""
    rng = np.random.default_rng(5)
    names = ("normal", "fat", "discrete", "constant", "tiny_range")
    base = np.column_stack(
        [
            rng.standard_normal(4000),
            rng.standard_t(2, 4000),
            rng.integers(0, 5, 4000).astype(float),
            np.full(4000, 3.0),
            1.0 + rng.standard_normal(4000) * 1e-13,
        ]
    )
    reference = drift.DistributionReference.fit(base * scale, names)
    edges, low, high = reference.edges, reference.low, reference.high
    first, last = edges[:, :1], edges[:, -1:]
    cells = first + (last - first) * np.arange(drift.GRID_CELLS + 1) / drift.GRID_CELLS
    awkward = np.concatenate(
        [
            edges.T,  # exactly on every edge
            np.nextafter(edges, -np.inf).T,  # one ulp either side
            np.nextafter(edges, np.inf).T,
            cells.T,  # on the lookup grid's cell boundaries
            np.nextafter(cells, np.inf).T,
            np.vstack([low, high, np.nextafter(high, np.inf), np.nextafter(low, -np.inf)]),
            np.vstack([high * 10 + 1, low * 10 - 1]),
            np.full((3, 5), np.nan),
            np.vstack([np.full(5, np.inf), np.full(5, -np.inf)]),
            rng.standard_normal((70_000, 5)) * scale * 1.3,  # enough rows for several blocks
        ]
    )
    np.testing.assert_array_equal(reference.shares_of(awkward), _searched(awkward, reference))
    empty = reference.shares_of(np.full((10, 5), np.nan))
    assert not empty.any()  # nothing finite: no shares, not NaN
