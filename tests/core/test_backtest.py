import itertools
import math
from dataclasses import replace
from datetime import UTC, datetime

import numpy as np
import polars as pl
import pytest

from tradeops_assets.core import backtest
from tradeops_assets.core.env import TradingEnv, VecTradingEnv
from tradeops_assets.core.errors import ConfigError
from tradeops_assets.core.market import EnvConfig, MarketArrays, Normaliser, step_accounting
from tradeops_assets.core.policy import NumpyPolicy
from tradeops_assets.core.recipe import TrainConfig
from tradeops_assets.core.training import make_model
from tradeops_assets.core.walk_forward import folds_of
from tradeops_assets.core.windows import Window

CONFIG = EnvConfig(window=8, episode_bars=32, fee_bps=1.0, slippage_bps=2.0)


@pytest.fixture(scope="module")
def policy(arrays) -> NumpyPolicy:
    vec = VecTradingEnv(arrays, num_envs=2, config=CONFIG)
    config = TrainConfig(env=CONFIG, n_envs=2, batch_size=512, seed=3)
    return config.spec.export(make_model(config, vec))


def test_metrics_of_a_known_equity_curve():
    r = np.array([0.10, -0.05, 0.02, -0.10, 0.05])
    zeros = np.zeros(5)
    m = backtest.metrics(r, np.ones(5), zeros, r, zeros, bars_per_year=252)
    # mean 0.004; squared deviations sum to 0.02532; downside: sqrt((0.05^2 + 0.10^2) / 5) = 0.05
    assert m["sharpe"] == pytest.approx(0.004 / math.sqrt(0.02532 / 4) * math.sqrt(252))
    assert m["sortino"] == pytest.approx(0.004 / 0.05 * math.sqrt(252))
    # equity 1.1, 1.045, 1.0659, 0.95931, 1.0072755: the trough 0.95931 under the 1.1 peak
    assert m["max_drawdown"] == pytest.approx(1 - 0.95931 / 1.1)
    assert m["total_return"] == pytest.approx(0.0072755)
    assert m["annualised_return"] == pytest.approx(1.0072755 ** (252 / 5) - 1)
    assert m["calmar"] == pytest.approx(m["annualised_return"] / (1 - 0.95931 / 1.1))
    assert m["volatility"] == pytest.approx(math.sqrt(0.02532 / 4) * math.sqrt(252))
    assert m["hit_rate"] == pytest.approx(3 / 5)


def test_a_flat_book_has_zero_ratios_not_infinities():
    zeros = np.zeros(10)
    m = backtest.metrics(zeros, zeros, zeros, zeros, zeros, bars_per_year=252)
    assert m["sharpe"] == m["sortino"] == m["max_drawdown"] == m["calmar"] == 0.0


def test_fees_slippage_and_borrow_are_charged_exactly():
    config = EnvConfig(fee_bps=1.0, slippage_bps=2.0, borrow_bps_per_year=252.0, bars_per_year=252)
    position = np.array([0.5, 0.5, -1.0, 0.0, 1.0, 1.0])
    next_return = np.array([0.01, -0.02, 0.03, 0.04, 0.01, 0.02])
    ledger = backtest.account(position, next_return, np.array([0, 4]), config)  # two symbols
    assert np.allclose(ledger.traded, [0.5, 0.0, 1.5, 1.0, 1.0, 0.0])
    assert np.allclose(ledger.fees, [0.5e-4, 0, 1.5e-4, 1e-4, 1e-4, 0], atol=1e-15)
    assert np.allclose(ledger.slippage, [1e-4, 0, 3e-4, 2e-4, 2e-4, 0], atol=1e-15)
    assert np.allclose(ledger.borrow, [0, 0, 1e-4, 0, 0, 0], atol=1e-15)
    expected = [0.005 - 1.5e-4, -0.01, -0.03 - 4.5e-4 - 1e-4, -3e-4, 0.01 - 3e-4, 0.02]
    assert np.allclose(ledger.pnl, expected, atol=1e-15)
    previous = np.array([0.0, 0.5, 0.5, -1.0, 0.0, 1.0])  # flat again at the second symbol
    env_pnl, env_cost = step_accounting(previous, position, next_return, config)
    assert np.allclose(ledger.pnl, env_pnl, rtol=0, atol=1e-17)
    assert np.allclose(ledger.fees + ledger.slippage + ledger.borrow, env_cost, rtol=0, atol=1e-17)


def test_turnover_and_cost_drag_are_per_year_of_bars_traded():
    """Five bars at ten bars a year is half a year: per-year figures are twice the sums."""
    config = EnvConfig(fee_bps=1.0, slippage_bps=2.0, borrow_bps_per_year=100.0, bars_per_year=10)
    position = np.array([1.0, 1.0, -1.0, 0.0, 0.5])
    next_return = np.array([0.01, -0.02, 0.03, 0.04, -0.01])
    ledger = backtest.account(position, next_return, np.array([0]), config)
    # traded 1 + 0 + 2 + 1 + 0.5 = 4.5 units; 3 bp each; one bar short pays 100 bp / 10 bars
    traded, cost = 4.5, 4.5 * 3e-4 + 1e-3
    assert ledger.traded.sum() == pytest.approx(traded)
    costs = ledger.fees + ledger.slippage + ledger.borrow
    assert costs.sum() == pytest.approx(cost, rel=1e-12)
    m = backtest.metrics(
        np.expm1(ledger.pnl), position, ledger.traded, ledger.gross, costs, config.bars_per_year
    )
    assert m["turnover"] == pytest.approx(traded / 0.5)
    assert m["cost_drag"] == pytest.approx(cost / 0.5, rel=1e-12)
    assert m["exposure"] == pytest.approx((1 + 1 + 1 + 0 + 0.5) / 5)
    assert m["hit_rate"] == pytest.approx(1 / 4)  # of the 4 bars holding a position, 1 made money


def test_backtest_pays_what_the_env_pays_for_the_same_decisions(arrays, policy):
    env = TradingEnv(arrays, CONFIG)
    obs, info = env.reset(seed=4)
    symbol = arrays.symbols.index(info["symbol"])
    rewards = []
    for _ in range(CONFIG.episode_bars):
        obs, reward, _, _, _ = env.step(policy.act(obs[None])[0:1].astype(np.float32))
        rewards.append(reward)
    first = np.array(arrays.starts)
    last = first.copy()
    first[symbol], last[symbol] = info["row"], info["row"] + CONFIG.episode_bars
    book = backtest.Book(arrays, first, last)
    positions = backtest.run_on_book(policy, book, CONFIG)
    ledger = backtest.account(positions, arrays.next_return[book.rows()], np.array([0]), CONFIG)
    assert np.allclose(ledger.pnl, rewards, atol=1e-6)


def test_batched_backtest_equals_the_bar_by_bar_loop(arrays, policy):
    book = backtest.book(
        arrays, CONFIG.window, Window(datetime(2015, 6, 1), datetime(2015, 12, 31))
    )
    assert (book.lengths > 0).all()
    batched = backtest.account(
        backtest.run_on_book(policy, book, CONFIG),
        arrays.next_return[book.rows()],
        book.symbol_starts(),
        CONFIG,
    )
    assert np.allclose(batched.pnl, backtest.per_bar_loop(policy, arrays, book, CONFIG), atol=1e-9)


def test_decision_bars_and_the_bars_that_pay_them_stay_inside_the_window(arrays):
    span = Window(datetime(2015, 6, 1), datetime(2015, 8, 31))
    book = backtest.book(arrays, CONFIG.window, span)
    rows = book.rows()
    assert arrays.timestamps[rows].min() >= np.datetime64("2015-06-01")
    assert arrays.timestamps[rows + 1].max() <= np.datetime64("2015-08-31")
    with pytest.raises(ConfigError, match="no symbol has a decision bar"):
        backtest.book(arrays, CONFIG.window, Window(datetime(2030, 1, 1), datetime(2031, 1, 1)))


def test_momentum_baseline_uses_no_future_close(feature_frame, arrays):
    book = backtest.book(
        arrays, CONFIG.window, Window(datetime(2015, 6, 1), datetime(2015, 12, 31))
    )
    before = backtest.momentum_positions(feature_frame, book, CONFIG)
    cut = feature_frame.sort("symbol", "timestamp")["timestamp"][int(book.rows()[10])]
    poisoned = feature_frame.with_columns(
        pl.when(pl.col("timestamp") > cut).then(1e6).otherwise(pl.col("close")).alias("close")
    )
    after = backtest.momentum_positions(poisoned, book, CONFIG)
    assert np.array_equal(before[:11], after[:11])
    assert set(np.unique(before)) <= {-1.0, 0.0, 1.0}


def test_backtest_prices_baselines_and_policies_alike(feature_frame, policy):
    from tradeops_assets.core.features import FEATURE_COLUMNS

    normaliser = Normaliser.fit(feature_frame.select(FEATURE_COLUMNS).to_numpy())
    span = Window(datetime(2015, 6, 1), datetime(2015, 12, 31))
    result = backtest.backtest(
        feature_frame, span, CONFIG, {"challenger": backtest.TradedPolicy(policy, normaliser)}
    )
    assert set(result.strategies) == {"challenger", "buy_and_hold", "flat", "momentum"}
    assert result.metric("flat", "total_return") == 0.0
    hold = result.ledger.filter(pl.col("strategy") == "buy_and_hold")
    for (symbol,), part in hold.group_by("symbol"):
        # Long throughout: the only cost is the entry trade on the first bar.
        log_growth = part["gross"].sum() - CONFIG.cost_per_unit
        assert result.metric("buy_and_hold", "total_return", symbol) == pytest.approx(
            math.expm1(log_growth), rel=1e-9
        )
    curves = result.portfolio_curves()
    assert curves["drawdown"].min() >= 0.0


def test_walk_forward_folds_tile_the_tail_on_bars_without_training_on_their_test():
    days = np.arange(np.datetime64("2010-01-04"), np.datetime64("2020-01-01"))
    stamps = days[np.is_busday(days)].astype("datetime64[us]")
    as_bars = set(stamps.astype(datetime).tolist())
    folds = folds_of(stamps, 4, 0.6, expanding=True)
    assert len(folds) == 4
    for fold in folds:
        for moment in (fold.train.first, fold.train.last, fold.test.first, fold.test.last):
            assert moment.replace(tzinfo=None) in as_bars  # every boundary is an actual bar
        assert (
            fold.train.first
            == folds[0].train.first
            == Window(stamps[0].item(), stamps[0].item()).first
        )
        following = int(
            np.searchsorted(stamps, np.datetime64(fold.train.last.replace(tzinfo=None)))
        )
        assert stamps[following + 1] == np.datetime64(fold.test.first.replace(tzinfo=None))
    assert folds[-1].test.last.replace(tzinfo=None) == stamps[-1].item()
    for a, b in itertools.pairwise(folds):  # consecutive test windows, no bar shared or skipped
        after = int(np.searchsorted(stamps, np.datetime64(a.test.last.replace(tzinfo=None))))
        assert stamps[after + 1] == np.datetime64(b.test.first.replace(tzinfo=None))
    sixty = stamps[0] + (stamps[-1] - stamps[0]) * 0.6
    assert folds[0].test.first.replace(tzinfo=None) == stamps[stamps >= sixty][0].item()
    rolling = folds_of(stamps, 4, 0.6, expanding=False)
    spans = [(f.train.last - f.train.first).days for f in rolling]
    assert max(spans) - min(spans) <= 4  # as long as the first fold's, to the nearest bar
    with pytest.raises(ConfigError, match="folds >= 1"):
        folds_of(stamps, 0, 0.6, expanding=True)


def test_portfolio_curves_are_the_equal_weight_book_of_the_ledger(feature_frame, policy):
    """Each ledger row is labelled with its own symbol and bar (UTC); the portfolio is the
    equal-weight mean of the symbols' returns, compounded, with drawdown from the peak."""
    from tradeops_assets.core.features import FEATURE_COLUMNS

    normaliser = Normaliser.fit(feature_frame.select(FEATURE_COLUMNS).to_numpy())
    span = Window(datetime(2015, 6, 1), datetime(2015, 12, 31))
    config = replace(CONFIG, borrow_bps_per_year=250.0)  # every cost nonzero and distinct
    traded = {"challenger": backtest.TradedPolicy(policy, normaliser)}
    result = backtest.backtest(feature_frame, span, config, traded, momentum_lookback=5)
    ledger = result.ledger
    assert ledger["timestamp"].min() >= datetime(2015, 6, 1, tzinfo=UTC)
    assert ledger["timestamp"].max() <= datetime(2015, 12, 31, tzinfo=UTC)
    unscaled = backtest.MarketArrays.from_features(feature_frame, Normaliser.identity())
    book = backtest.book(unscaled, config.window, span)
    momentum = ledger.filter(pl.col("strategy") == "momentum")["position"].to_numpy()
    expected = backtest.momentum_positions(feature_frame, book, config, lookback=5)
    np.testing.assert_array_equal(momentum, expected)
    per_year = config.bars_per_year
    for strategy in result.strategies:
        rows = ledger.filter(pl.col("strategy") == strategy)
        cost = rows["fees"] + rows["slippage"] + rows["borrow"]
        for (symbol,), part in rows.with_columns(cost=cost).group_by("symbol"):
            drag = part["cost"].sum() * per_year / part.height
            assert result.metric(strategy, "cost_drag", symbol) == pytest.approx(drag, rel=1e-9)
        mean_cost = rows.with_columns(cost=cost).group_by("timestamp").agg(pl.col("cost").mean())
        drag = mean_cost["cost"].sum() * per_year / mean_cost.height
        assert result.metric(strategy, "cost_drag") == pytest.approx(drag, rel=1e-9)
    assert ledger.schema["timestamp"] == pl.Datetime("us", "UTC")
    assert ledger.schema["symbol"] == pl.String
    hold = ledger.filter(pl.col("strategy") == "buy_and_hold")
    for (symbol,), part in hold.group_by("symbol"):
        bars = feature_frame.filter(pl.col("symbol") == symbol)["timestamp"]
        assert set(part["timestamp"]) <= set(bars)
    curves = result.portfolio_curves()
    for strategy in ("challenger", "momentum"):
        rows = ledger.filter(pl.col("strategy") == strategy)
        by_bar = rows.group_by("timestamp").agg(pl.col("return").mean()).sort("timestamp")
        mine = curves.filter(pl.col("strategy") == strategy).sort("timestamp")
        assert mine["timestamp"].to_list() == by_bar["timestamp"].to_list()
        np.testing.assert_allclose(mine["return"], by_bar["return"], rtol=1e-12)
        equity = np.cumprod(1 + by_bar["return"].to_numpy())
        np.testing.assert_allclose(mine["equity"], equity, rtol=1e-12)
        peak = np.maximum(np.maximum.accumulate(equity), 1.0)
        np.testing.assert_allclose(mine["drawdown"], 1 - equity / peak, rtol=1e-9, atol=1e-15)
        net = rows.group_by("timestamp").agg(pl.col("position").mean()).sort("timestamp")
        np.testing.assert_allclose(mine["position"], net["position"], rtol=1e-12)
        total = result.metric(strategy, "total_return")
        assert total == pytest.approx(equity[-1] - 1, rel=1e-9, abs=1e-12)


def test_ragged_symbols_in_small_chunks_trade_as_the_bar_by_bar_loop(arrays, policy):
    """Symbols with different numbers of decision bars (one with none), a half-size
    position limit and blocks smaller than the book: the same P&L as the textbook loop."""
    full = backtest.book(
        arrays, CONFIG.window, Window(datetime(2015, 6, 1), datetime(2015, 12, 31))
    )
    cut = np.array([0, 37, 90, full.lengths.max()])[: len(full.first)]
    ragged = backtest.Book(arrays, full.first, full.first + np.minimum(cut, full.lengths))
    assert len(set(ragged.lengths.tolist())) == len(ragged.lengths)
    half = replace(CONFIG, max_position=0.5)
    oracle = backtest.per_bar_loop(policy, arrays, ragged, half)
    for chunk in (7, 65_536):
        positions = backtest.run_on_book(policy, ragged, half, chunk=chunk)
        assert np.abs(positions).max() <= 0.5
        ledger = backtest.account(
            positions, arrays.next_return[ragged.rows()], ragged.symbol_starts(), half
        )
        np.testing.assert_allclose(ledger.pnl, oracle, atol=1e-9)


def remembering_policy(arrays: MarketArrays, window: int) -> NumpyPolicy:
    """Small random market weights and a strong weight on the position held: each decision
    leans on the one before, so a symbol stepped with another symbol's position (or past
    its own last bar) decides differently. Two layers of different widths, unsaturated."""
    rng = np.random.default_rng(8)
    first = rng.normal(0.0, 0.05, (window * arrays.n_features + 1, 3)).astype(np.float32)
    first[-1] = [1.5, -1.0, 0.7]
    second = np.array([[0.9], [-0.6], [0.4]], np.float32)
    return NumpyPolicy(
        (first, second),
        (np.zeros(3, np.float32), np.full(1, 0.1, np.float32)),
        ("Tanh", "Identity"),
        "tanh",
    )


@pytest.mark.parametrize("cut", [(37, 0, 90), (90, 12, 55), (55, 90, 12), (12, 55, 90)])
def test_symbols_of_any_lengths_in_any_order_keep_their_own_positions(arrays, cut):
    """However many bars each symbol decides on, and in whichever order they sit in the
    book, every symbol carries its own position from bar to bar and stops at its last."""
    full = backtest.book(
        arrays, CONFIG.window, Window(datetime(2015, 6, 1), datetime(2015, 12, 31))
    )
    ragged = backtest.Book(arrays, full.first, full.first + np.minimum(cut, full.lengths))
    remembering = remembering_policy(arrays, CONFIG.window)
    oracle = backtest.per_bar_loop(remembering, arrays, ragged, CONFIG)
    for chunk in (7, 65_536):
        positions = backtest.run_on_book(remembering, ragged, CONFIG, chunk=chunk)
        assert 0.05 < np.abs(positions).mean() < 0.95  # neither flat nor pinned at a limit
        ledger = backtest.account(
            positions, arrays.next_return[ragged.rows()], ragged.symbol_starts(), CONFIG
        )
        # float32 decisions: one bar's P&L may differ by float32 rounding of its position
        scale = np.abs(arrays.next_return[ragged.rows()]).max()
        np.testing.assert_allclose(ledger.pnl, oracle, rtol=0, atol=1e-5 * scale)


def test_the_backtest_refuses_observations_that_see_a_later_bar(arrays, policy, monkeypatch):
    """The runtime guard: windows built one bar into the future stop the backtest."""
    from tradeops_assets.core.errors import LeakageError

    honest = np.lib.stride_tricks.sliding_window_view

    def one_bar_ahead(features, shape):
        return honest(np.roll(features, -1, axis=0), shape)

    monkeypatch.setattr(np.lib.stride_tricks, "sliding_window_view", one_bar_ahead)
    book = backtest.book(arrays, CONFIG.window, Window(datetime(2015, 6, 1), datetime(2015, 7, 31)))
    with pytest.raises(LeakageError, match=r"^backtest: the observation for decision row \d+"):
        backtest.run_on_book(policy, book, CONFIG)


def test_metrics_at_the_edges_of_the_data():
    """No bars: every metric zero, named. One bar: no dispersion, so no ratio. A total
    loss: -100% a year. A losing year compounds like a winning one."""
    empty = backtest.metrics(*(np.array([]),) * 5, bars_per_year=252)
    assert empty == dict.fromkeys(backtest.METRICS, 0.0)
    one = backtest.metrics(
        np.array([0.02]), np.ones(1), np.ones(1), np.array([0.02]), np.zeros(1), bars_per_year=252
    )
    assert one["volatility"] == one["sharpe"] == 0.0
    two = backtest.metrics(
        np.array([0.02, -0.01]), np.ones(2), np.ones(2), np.zeros(2), np.zeros(2), 252
    )
    # Two bars already disperse: sample std |0.02 - (-0.01)| / sqrt(2).
    assert two["volatility"] == pytest.approx(0.03 / math.sqrt(2) * math.sqrt(252), rel=1e-12)
    assert two["sharpe"] == pytest.approx(0.005 / (0.03 / math.sqrt(2)) * math.sqrt(252))
    assert one["total_return"] == pytest.approx(0.02)
    assert one["bars"] == 1.0
    wiped = backtest.metrics(
        np.array([0.1, -1.0, 0.0]),
        np.ones(3),
        np.zeros(3),
        np.array([0.1, -1.0, 0.0]),
        np.zeros(3),
        bars_per_year=252,
    )
    assert wiped["annualised_return"] == -1.0
    assert wiped["max_drawdown"] == pytest.approx(1.0)
    losing = np.full(252, -0.001)
    year = backtest.metrics(losing, np.ones(252), np.zeros(252), losing, np.zeros(252), 252)
    assert year["annualised_return"] == pytest.approx(0.999**252 - 1, rel=1e-12)
    assert year["bars"] == 252.0


def test_hit_rate_counts_only_bars_that_held_a_position_and_made_money():
    position = np.array([1.0, 1.0, 0.0, -1.0])
    gross = np.array([0.01, 0.0, 0.05, -0.02])  # a flat-return bar held is not a hit
    m = backtest.metrics(np.expm1(gross), position, np.zeros(4), gross * position, np.zeros(4), 252)
    assert m["hit_rate"] == pytest.approx(2 / 3)
    flat = backtest.metrics(np.zeros(4), np.zeros(4), np.zeros(4), np.zeros(4), np.zeros(4), 252)
    assert flat["hit_rate"] == 0.0  # nothing held: no hits, not NaN


def test_momentum_is_the_sign_of_each_symbols_own_past_move(feature_frame, arrays):
    """Shuffled rows give the same signal; half the position limit halves it."""
    span = Window(datetime(2015, 6, 1), datetime(2015, 12, 31))
    book = backtest.book(arrays, CONFIG.window, span)
    half = replace(CONFIG, max_position=0.5)
    straight = backtest.momentum_positions(feature_frame, book, half, lookback=5)
    shuffled = feature_frame.sample(fraction=1.0, shuffle=True, seed=1)
    assert np.array_equal(backtest.momentum_positions(shuffled, book, half, lookback=5), straight)
    rows = feature_frame.sort("symbol", "timestamp").with_columns(
        past=pl.col("close").shift(5).over("symbol")
    )
    expected = np.sign(np.log(rows["close"] / rows["past"]).fill_null(0.0).to_numpy())
    np.testing.assert_array_equal(straight, expected[book.rows()] * 0.5)
    assert set(np.unique(straight)) <= {-0.5, 0.0, 0.5}
    early = backtest.Book(arrays, np.array([0]), np.array([5]))  # no bar 5 bars back yet
    assert not backtest.momentum_positions(feature_frame, early, half, lookback=5).any()


def test_an_unknown_strategy_or_symbol_is_named(feature_frame, policy):
    from tradeops_assets.core.features import FEATURE_COLUMNS

    normaliser = Normaliser.fit(feature_frame.select(FEATURE_COLUMNS).to_numpy())
    span = Window(datetime(2015, 6, 1), datetime(2015, 8, 31))
    result = backtest.backtest(
        feature_frame, span, CONFIG, {"challenger": backtest.TradedPolicy(policy, normaliser)}
    )
    with pytest.raises(ConfigError, match="no backtest of strategy 'nope' on 'SYN0000'"):
        result.metric("nope", "sharpe", "SYN0000")
