from dataclasses import replace

import numpy as np
import pytest

from tradeops_assets.core.env import VecTradingEnv
from tradeops_assets.core.errors import ConfigError
from tradeops_assets.core.market import DISCRETE_POSITIONS, EnvConfig
from tradeops_assets.core.policy import NumpyPolicy
from tradeops_assets.core.recipe import TrainConfig
from tradeops_assets.core.training import make_model

CONTINUOUS = EnvConfig(window=8, episode_bars=32)


@pytest.mark.parametrize(
    ("algorithm", "env"),
    [
        ("PPO", CONTINUOUS),
        ("A2C", CONTINUOUS),
        ("SAC", CONTINUOUS),
        ("DQN", replace(CONTINUOUS, discrete=True)),
    ],
)
def test_numpy_export_decides_what_sb3_decides(arrays, algorithm, env, tmp_path):
    vec = VecTradingEnv(arrays, num_envs=8, config=env)
    config = TrainConfig(algorithm=algorithm, env=env, n_envs=8, seed=2)
    model = make_model(config, vec)
    model.learn(1_200 if algorithm in ("SAC", "DQN") else 256)
    vec.seed(5)
    obs = np.concatenate([vec.reset(), vec.step(np.zeros((8, 1), np.float32))[0]])
    obs[:, -1] = np.random.default_rng(0).uniform(-1, 1, len(obs))
    exported = config.spec.export(model)
    expected, _ = model.predict(obs, deterministic=True)
    if env.discrete:
        expected = DISCRETE_POSITIONS[expected]
    assert np.allclose(exported.act(obs), np.asarray(expected).reshape(-1), atol=1e-5)
    exported.save(tmp_path / "policy.npz")
    reloaded = NumpyPolicy.load(tmp_path / "policy.npz")
    assert np.array_equal(reloaded.act(obs), exported.act(obs))


def test_wrong_observation_width_names_the_expected_shape(arrays):
    vec = VecTradingEnv(arrays, num_envs=2, config=CONTINUOUS)
    config = TrainConfig(env=CONTINUOUS, n_envs=2, batch_size=512)
    policy = config.spec.export(make_model(config, vec))
    with pytest.raises(ConfigError, match=rf"\[batch, {policy.obs_width}\]"):
        policy.act(np.zeros((3, 5), np.float32))
