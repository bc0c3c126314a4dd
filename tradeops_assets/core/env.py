"""The trading simulation a policy learns in, single and vectorised (Gymnasium and SB3).

The execution rule, the observation and the accounting live in ``core/market.py``
(numpy only, shared with the backtest and the endpoint); this module wraps them
as environments. ``TradingEnv`` runs one episode at a time and passes Gymnasium's
``check_env``; ``VecTradingEnv`` steps many (symbol, offset) episodes in one numpy
call. Both call ``step_accounting``, so they cannot disagree on a fill, a fee or
a reward, and both see nothing after the decision bar: each checks, as it runs, that
its observations are the feature rows up to the decision bar and nothing later
(``market.assert_causal``, on every episode start and a sample of vectorised steps).
"""

from typing import Any

import gymnasium as gym
import numpy as np
from stable_baselines3.common.vec_env import VecEnv

from tradeops_assets.core.errors import ConfigError
from tradeops_assets.core.market import (
    DISCRETE_POSITIONS,
    OBS_CLIP,
    EnvConfig,
    MarketArrays,
    assert_causal,
    decision_rows,
    step_accounting,
)
from tradeops_assets.core.windows import Window


def _episode_bounds(
    arrays: MarketArrays, config: EnvConfig, span: Window | None
) -> tuple[np.ndarray, np.ndarray]:
    """Per symbol, the rows [lo, hi) an episode may start on: its every bar a decision row."""
    lo, last = decision_rows(arrays, config.window, span)
    hi = last - config.episode_bars + 1
    if np.all(hi <= lo):
        raise ConfigError(
            f"no symbol has room for window={config.window} + episode_bars="
            f"{config.episode_bars} bars inside {span or 'the data'}; "
            "shorten them or widen the span"
        )
    return lo, hi


CAUSALITY_EVERY, CAUSALITY_SAMPLE = 64, 4
"""The vectorised env checks 4 of its episodes' observations every 64 calls (~1% of a step)."""


class TradingEnv(gym.Env):
    """One episode at a time; seeded only through ``reset(seed=...)``."""

    metadata: dict[str, Any] = {"render_modes": []}  # noqa: RUF012 (gymnasium's convention)

    def __init__(
        self,
        arrays: MarketArrays,
        config: EnvConfig | None = None,
        span: Window | None = None,
    ) -> None:
        self.arrays = arrays
        self.config = config or EnvConfig()
        self._lo, self._hi = _episode_bounds(arrays, self.config, span)
        self._valid = np.flatnonzero(self._hi > self._lo)
        width = self.config.window * arrays.n_features + 1
        self._width, self._n = width, arrays.n_features
        self._flat = arrays.features.reshape(-1)
        self._returns = arrays.next_return.tolist()
        self.observation_space = gym.spaces.Box(-OBS_CLIP, OBS_CLIP, (width,), np.float32)
        self.action_space = (
            gym.spaces.Discrete(3)
            if self.config.discrete
            else gym.spaces.Box(-1.0, 1.0, (1,), np.float32)
        )
        self._row = 0
        self._steps = 0
        self._position = 0.0
        self._equity = 0.0
        self._peak = 0.0
        self._sharpe_a = 0.0
        self._sharpe_b = 0.0

    def _target(self, action) -> float:
        if self.config.discrete:
            return float(DISCRETE_POSITIONS[int(action)]) * self.config.max_position
        value = float(action[0]) if hasattr(action, "__len__") else float(action)
        return min(1.0, max(-1.0, value)) * self.config.max_position

    def _obs(self) -> np.ndarray:
        obs = np.empty(self._width, np.float32)
        first = (self._row - self.config.window + 1) * self._n
        obs[:-1] = self._flat[first : first + self._width - 1]
        obs[-1] = self._position
        return obs

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        symbol = int(self.np_random.choice(self._valid))
        self._row = int(self.np_random.integers(self._lo[symbol], self._hi[symbol]))
        self._symbol = symbol
        self._steps = 0
        self._position = self._equity = self._peak = 0.0
        self._sharpe_a = self._sharpe_b = 0.0
        obs = self._obs()
        assert_causal(obs[None, :-1], self.arrays, [self._row], self.config.window, "TradingEnv")
        return obs, {"symbol": self.arrays.symbols[symbol], "row": self._row}

    def step(self, action):
        target = self._target(action)
        r = self._returns[self._row]
        pnl, cost = step_accounting(self._position, target, r, self.config)
        reward = pnl if self.config.reward == "log_return" else self._shape(pnl)
        self._position = target
        self._row += 1
        self._steps += 1
        terminated = self._steps >= self.config.episode_bars
        info = {"pnl": pnl, "cost": cost, "position": target}
        return self._obs(), reward, terminated, False, info

    def _shape(self, pnl: float) -> float:
        if self.config.reward == "log_return":
            return pnl
        if self.config.reward == "drawdown_penalty":
            self._equity += pnl
            drawdown_before = self._peak - (self._equity - pnl)
            self._peak = max(self._peak, self._equity)
            deepened = max(0.0, (self._peak - self._equity) - drawdown_before)
            return pnl - self.config.drawdown_penalty * deepened
        # Moody & Saffell's differential Sharpe ratio: the step's contribution to a moving Sharpe.
        eta, a, b = self.config.sharpe_eta, self._sharpe_a, self._sharpe_b
        variance = b - a * a
        dsr = (
            0.0
            if variance <= 1e-12
            else (b * (pnl - a) - 0.5 * a * (pnl * pnl - b)) / variance**1.5
        )
        self._sharpe_a = a + eta * (pnl - a)
        self._sharpe_b = b + eta * (pnl * pnl - b)
        return float(np.clip(dsr * eta, -1.0, 1.0))


class VecTradingEnv(VecEnv):
    """``num_envs`` episodes over (symbol, offset) pairs, stepped in one numpy call.

    Only the plain log-return reward is vectorised; the shaped rewards keep per-episode
    state and run in ``TradingEnv``.
    """

    def __init__(
        self,
        arrays: MarketArrays,
        num_envs: int,
        config: EnvConfig | None = None,
        span: Window | None = None,
    ) -> None:
        self.arrays = arrays
        self.config = config or EnvConfig()
        if self.config.reward != "log_return":
            raise ConfigError("VecTradingEnv vectorises the log_return reward only")
        probe = TradingEnv(arrays, self.config, span)
        self.render_mode = None
        super().__init__(num_envs, probe.observation_space, probe.action_space)
        self._lo, self._hi, self._valid = probe._lo, probe._hi, probe._valid
        window, width = self.config.window, arrays.n_features
        # [rows - window + 1, window, features]: a view, so gathering copies whole blocks.
        self._windows = np.lib.stride_tricks.sliding_window_view(arrays.features, (window, width))[
            :, 0
        ]
        self._rng = np.random.default_rng()
        self._calls = 0
        self._row = np.zeros(num_envs, np.int64)
        self._steps = np.zeros(num_envs, np.int64)
        self._position = np.zeros(num_envs)
        self._actions = np.zeros(num_envs)

    def _start(self, which: np.ndarray) -> None:
        symbols = self._valid[self._rng.integers(0, len(self._valid), which.size)]
        self._row[which] = self._rng.integers(self._lo[symbols], self._hi[symbols])
        self._steps[which] = 0
        self._position[which] = 0.0

    def _obs(self) -> np.ndarray:
        out = np.empty((self.num_envs, self.observation_space.shape[0]), np.float32)
        windows = self._windows[self._row - (self.config.window - 1)]
        out[:, :-1] = windows.reshape(self.num_envs, -1)
        out[:, -1] = self._position
        if self._calls % CAUSALITY_EVERY == 0:
            sample = slice(0, min(self.num_envs, CAUSALITY_SAMPLE))
            rows = self._row[sample]
            assert_causal(out[sample, :-1], self.arrays, rows, self.config.window, "VecTradingEnv")
        self._calls += 1
        return out

    def reset(self) -> np.ndarray:
        seed = self._seeds[0]
        if seed is not None:
            self._rng = np.random.default_rng(seed)
        self._reset_seeds()
        self._start(np.arange(self.num_envs))
        return self._obs()

    def step_async(self, actions: np.ndarray) -> None:
        actions = np.asarray(actions)
        if self.config.discrete:
            self._actions = DISCRETE_POSITIONS[actions.reshape(-1).astype(np.int64)]
        else:
            self._actions = np.clip(actions.reshape(self.num_envs), -1.0, 1.0)
        self._actions = self._actions * self.config.max_position

    def step_wait(self):
        target = self._actions
        r = self.arrays.next_return[self._row]
        pnl, _ = step_accounting(self._position, target, r, self.config)
        self._position = target
        self._row += 1
        self._steps += 1
        done = self._steps >= self.config.episode_bars
        obs = self._obs()
        infos: list[dict[str, Any]] = [{} for _ in range(self.num_envs)]
        if done.any():
            finished = np.flatnonzero(done)
            for i in finished:
                infos[i] = {"terminal_observation": obs[i].copy(), "TimeLimit.truncated": False}
            self._start(finished)
            obs[finished] = self._obs()[finished]
        return obs, pnl.astype(np.float32), done, infos

    def get_state(self) -> dict[str, Any]:
        """Everything the next step depends on, so a resumed run continues this one exactly."""
        return {
            "rng": self._rng.bit_generator.state,
            "row": self._row.copy(),
            "steps": self._steps.copy(),
            "position": self._position.copy(),
        }

    def set_state(self, state: dict[str, Any]) -> None:
        self._rng = np.random.default_rng()
        self._rng.bit_generator.state = state["rng"]
        self._row, self._steps = state["row"].copy(), state["steps"].copy()
        self._position = state["position"].copy()
        self._reset_seeds()  # loading a model seeds the env; the restored generator wins

    def close(self) -> None:
        return None

    def get_attr(self, attr_name: str, indices=None) -> list[Any]:
        return [getattr(self, attr_name)] * len(self._get_indices(indices))

    def set_attr(self, attr_name: str, value: Any, indices=None) -> None:
        setattr(self, attr_name, value)

    def env_method(self, method_name: str, *method_args, indices=None, **method_kwargs):
        return [getattr(self, method_name)(*method_args, **method_kwargs)] * len(
            self._get_indices(indices)
        )

    def env_is_wrapped(self, wrapper_class, indices=None) -> list[bool]:
        return [False] * len(self._get_indices(indices))
