import warnings
from datetime import datetime

import numpy as np
import pytest
from stable_baselines3.common.env_checker import check_env

from tradeops_assets.core.env import TradingEnv, VecTradingEnv
from tradeops_assets.core.errors import ConfigError
from tradeops_assets.core.market import EnvConfig, MarketArrays, step_accounting
from tradeops_assets.core.windows import Window

SMALL = EnvConfig(window=8, episode_bars=32)


@pytest.mark.parametrize(
    "config",
    [
        SMALL,
        EnvConfig(window=8, episode_bars=32, discrete=True),
        EnvConfig(window=4, episode_bars=16, reward="differential_sharpe", borrow_bps_per_year=50),
    ],
)
def test_env_passes_check_env_without_a_single_warning(arrays, config):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check_env(TradingEnv(arrays, config), warn=True, skip_render_check=True)


def rollout(env: TradingEnv, seed: int, steps: int = 40):
    obs, info = env.reset(seed=seed)
    trace = [(obs.copy(), info["row"])]
    actions = np.random.default_rng(0).uniform(-1, 1, (steps, 1)).astype(np.float32)
    for action in actions:
        obs, reward, terminated, _, _ = env.step(action)
        trace.append((obs.copy(), reward))
        if terminated:
            obs, info = env.reset()
    return trace


def test_same_seed_same_trajectory_other_seed_other_start(arrays):
    a, b = rollout(TradingEnv(arrays, SMALL), 5), rollout(TradingEnv(arrays, SMALL), 5)
    assert all(np.array_equal(x[0], y[0]) and x[1] == y[1] for x, y in zip(a, b, strict=True))
    c = rollout(TradingEnv(arrays, SMALL), 6)
    assert a[0][1] != c[0][1] or not np.array_equal(a[0][0], c[0][0])


def test_costs_and_rewards_are_exact_in_basis_points():
    config = EnvConfig(fee_bps=1.0, slippage_bps=2.0, borrow_bps_per_year=252.0, bars_per_year=252)
    pnl, cost = step_accounting(0.0, 1.0, 0.01, config)
    assert cost == pytest.approx(3e-4)  # 1 unit traded at 3 bp
    assert pnl == pytest.approx(0.01 - 3e-4)
    pnl, cost = step_accounting(1.0, -0.5, 0.02, config)
    assert cost == pytest.approx(1.5 * 3e-4 + 0.5 * 1e-4)  # 1.5 traded, 0.5 short borrowed 1bp/bar
    assert pnl == pytest.approx(-0.5 * 0.02 - cost)
    assert step_accounting(0.3, 0.3, 0.0, config) == (pytest.approx(0.0), pytest.approx(0.0))


def test_env_rewards_follow_the_next_bar_return(arrays):
    env = TradingEnv(arrays, SMALL)
    _, info = env.reset(seed=1)
    row = info["row"]
    _, reward, _, _, step_info = env.step(np.array([1.0], np.float32))
    expected = arrays.next_return[row] - SMALL.cost_per_unit
    assert reward == pytest.approx(expected, abs=1e-12)
    assert step_info["cost"] == pytest.approx(SMALL.cost_per_unit)
    _, reward, _, _, _ = env.step(np.array([1.0], np.float32))  # holding costs nothing
    assert reward == pytest.approx(arrays.next_return[row + 1], abs=1e-12)


def test_the_policy_never_sees_the_bar_after_its_decision(arrays):
    env = TradingEnv(arrays, SMALL)
    obs, info = env.reset(seed=3)
    row = info["row"]
    width = arrays.n_features
    assert np.array_equal(obs[-1 - width : -1], arrays.features[row])
    future = arrays.features.copy()
    future[row + 1 :] = 99.0  # poison everything after the decision bar
    poisoned = MarketArrays(
        future, arrays.next_return, arrays.starts, arrays.ends, arrays.symbols, arrays.timestamps
    )
    obs2, _ = TradingEnv(poisoned, SMALL).reset(seed=3)
    assert np.array_equal(obs, obs2)


def test_training_span_bounds_every_rewarded_bar(arrays, feature_frame):
    span = Window(datetime(2015, 6, 1), datetime(2015, 8, 31))
    config = EnvConfig(window=8, episode_bars=10)
    env = TradingEnv(arrays, config, span=span)
    for seed in range(30):
        _, info = env.reset(seed=seed)
        first = arrays.timestamps[info["row"]]
        last_paid = arrays.timestamps[info["row"] + config.episode_bars]
        assert first >= np.datetime64("2015-06-01")
        assert last_paid <= np.datetime64("2015-08-31")
    with pytest.raises(ConfigError, match="no symbol has room"):
        TradingEnv(arrays, EnvConfig(episode_bars=500), span=span)


def test_vectorised_env_pays_each_episode_what_the_single_env_would(arrays):
    vec = VecTradingEnv(arrays, num_envs=64, config=SMALL)
    vec.seed(7)
    vec.reset()
    rows = vec._row.copy()
    actions = np.random.default_rng(1).uniform(-1, 1, (64, 1)).astype(np.float32)
    _, rewards, _, _ = vec.step(actions)
    expected, _ = step_accounting(0.0, actions[:, 0], arrays.next_return[rows], SMALL)
    assert np.allclose(rewards, expected, atol=1e-7)


def test_vectorised_env_resets_finished_episodes_with_terminal_observation(arrays):
    vec = VecTradingEnv(arrays, num_envs=8, config=EnvConfig(window=4, episode_bars=3))
    vec.seed(1)
    vec.reset()
    for _ in range(2):
        _, _, dones, _ = vec.step(np.zeros((8, 1), np.float32))
        assert not dones.any()
    obs, _, dones, infos = vec.step(np.ones((8, 1), np.float32))
    assert dones.all()
    assert all("terminal_observation" in info for info in infos)
    assert np.all(obs[:, -1] == 0.0)  # fresh episodes start flat
    assert np.all(infos[0]["terminal_observation"][-1] == 1.0)


def test_vectorised_env_is_reproducible_from_its_seed(arrays):
    def rows(seed):
        vec = VecTradingEnv(arrays, num_envs=16, config=SMALL)
        vec.seed(seed)
        vec.reset()
        return vec._row.copy()

    assert np.array_equal(rows(3), rows(3))
    assert not np.array_equal(rows(3), rows(4))


def test_sb3_learns_on_the_vectorised_env(arrays):
    from stable_baselines3 import PPO

    vec = VecTradingEnv(arrays, num_envs=4, config=SMALL)
    model = PPO("MlpPolicy", vec, n_steps=16, batch_size=32, n_epochs=1, seed=0, device="cpu")
    model.learn(total_timesteps=128)
    action, _ = model.predict(vec.reset(), deterministic=True)
    assert action.shape == (4, 1)
