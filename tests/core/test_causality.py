"""Nothing after a decision bar, or after a training window, reaches what uses it.

Each test here fails on a break a reviewer tried by hand (docs/quality.md): an
observation shifted one bar into the future, a scaler fitted past the training
window, a look-ahead detector that compares fewer columns than there are.
"""

from dataclasses import replace
from datetime import datetime

import numpy as np
import polars as pl
import pytest

from tradeops_assets.core import features
from tradeops_assets.core.env import TradingEnv, VecTradingEnv
from tradeops_assets.core.errors import LeakageError
from tradeops_assets.core.market import (
    EnvConfig,
    MarketArrays,
    Normaliser,
    fit_normaliser,
    observation_rows,
)
from tradeops_assets.core.windows import Window

CONFIG = EnvConfig(window=8, episode_bars=32)
POISON = 9.0  # inside the observation clip, so a leak shows in the observation


def poisoned_after(arrays: MarketArrays, row: int) -> MarketArrays:
    future = arrays.features.copy()
    future[row + 1 :] = POISON
    return replace(arrays, features=future)


@pytest.mark.parametrize("seed", range(6))
def test_the_vectorised_env_sees_only_rows_up_to_each_decision(arrays, seed):
    vec = VecTradingEnv(arrays, num_envs=16, config=CONFIG)
    vec.seed(seed)
    obs = vec.reset()
    actions = np.random.default_rng(seed).uniform(-1, 1, (40, 16, 1)).astype(np.float32)
    for action in actions:
        rows = vec._row.copy()
        np.testing.assert_array_equal(obs[:, :-1], observation_rows(arrays, rows, CONFIG.window))
        obs, _, dones, _infos = vec.step(action)
        for i in np.flatnonzero(~dones):
            assert vec._row[i] == rows[i] + 1  # one bar a step, never more


@pytest.mark.parametrize("seed", range(6))
def test_a_poisoned_future_changes_no_observation(arrays, seed):
    """One episode at a time, with every row after its current bar poisoned, step by step."""
    clean = VecTradingEnv(arrays, num_envs=1, config=CONFIG)
    clean.seed(seed)
    obs = clean.reset()
    single = TradingEnv(arrays, CONFIG)
    single_obs, _info = single.reset(seed=seed)
    for _ in range(CONFIG.episode_bars - 1):
        row = int(clean._row[0])
        poisoned = VecTradingEnv(poisoned_after(arrays, row), num_envs=1, config=CONFIG)
        poisoned._row, poisoned._position = clean._row.copy(), clean._position.copy()
        np.testing.assert_array_equal(poisoned._obs(), obs)
        target = TradingEnv(poisoned_after(arrays, single._row), CONFIG)
        target._row, target._position = single._row, single._position
        np.testing.assert_array_equal(target._obs(), single_obs)
        obs, *_ = clean.step(np.full((1, 1), 0.3, np.float32))
        single_obs, *_ = single.step(np.array([0.3], np.float32))


def test_the_envs_refuse_to_run_when_an_observation_peeks(arrays):
    """The break a reviewer tried: the observation window moved one bar into the future."""
    vec = VecTradingEnv(arrays, num_envs=4, config=CONFIG)
    vec._windows = vec._windows[1:]  # window k now starts at row k + 1
    with pytest.raises(LeakageError, match="nothing after its decision bar"):
        vec.reset()
    single = TradingEnv(arrays, CONFIG)
    single._flat = single._flat[arrays.n_features :]
    with pytest.raises(LeakageError, match="TradingEnv"):
        single.reset(seed=1)


def test_the_scaler_is_fitted_on_the_training_window_and_nothing_after(feature_frame):
    window = Window(datetime(2015, 4, 1), datetime(2015, 9, 30))
    scaler = fit_normaliser(feature_frame, window)
    inside = feature_frame.filter(pl.col("timestamp").is_between(window.first, window.last))
    rows = inside.select(features.FEATURE_COLUMNS).to_numpy()
    np.testing.assert_allclose(scaler.mean, rows.mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(scaler.std, rows.std(axis=0), rtol=1e-12)
    assert scaler.fitted_on == Window(inside["timestamp"].min(), inside["timestamp"].max())
    after = pl.col("timestamp") > window.last
    poisoned = feature_frame.with_columns(
        [pl.when(after).then(1e6).otherwise(pl.col(c)).alias(c) for c in features.FEATURE_COLUMNS]
    )
    again = fit_normaliser(poisoned, window)
    np.testing.assert_array_equal(again.mean, scaler.mean)
    np.testing.assert_array_equal(again.std, scaler.std)
    scaler.check_fitted_within(window)


def test_registration_refuses_a_scaler_that_saw_later_bars():
    window = Window(datetime(2015, 4, 1), datetime(2015, 9, 30))
    leaky = Normaliser(np.zeros(2), np.ones(2), Window(datetime(2015, 4, 1), datetime(2015, 10, 2)))
    with pytest.raises(LeakageError, match="outside the training window"):
        leaky.check_fitted_within(window)
    with pytest.raises(LeakageError, match="fitted on rows of unknown dates, outside"):
        Normaliser(np.zeros(2), np.ones(2)).check_fitted_within(window)
    assert Normaliser.from_dict(leaky.to_dict()).fitted_on == leaky.fitted_on
    early = Normaliser(np.zeros(2), np.ones(2), Window(datetime(2015, 3, 31), window.last))
    with pytest.raises(LeakageError):
        early.check_fitted_within(window)
    Normaliser(np.zeros(2), np.ones(2), window).check_fitted_within(window)  # exactly: fine


@pytest.mark.parametrize("column", features.FEATURE_COLUMNS)
def test_a_peek_in_any_single_feature_column_is_caught(synthetic_bars, column, monkeypatch):
    original = features._stages

    def peeking():
        stages = original()
        peek = pl.col(column) + pl.col("close").shift(-1).fill_null(0.0) * 1e-6
        return [*stages, [peek.alias(column)]]

    monkeypatch.setattr(features, "_stages", peeking)
    assert features.look_ahead_mismatches(synthetic_bars, cut=5) > 0
