"""Training a policy so that anyone can reproduce it bit for bit on CPU.

Same feature data version + config + seed gives the same weights hash: the
environment draws episodes only from its own seeded generator, SB3 seeds torch
and numpy from ``seed``, and torch runs deterministic kernels. Training
checkpoints as it goes; a run killed midway resumes from its last checkpoint
and finishes at the same total step count.
"""

import hashlib
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Literal

import numpy as np
import polars as pl
import torch
from stable_baselines3 import A2C, DQN, PPO, SAC
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.callbacks import BaseCallback, CallbackList

from tradeops_assets.core.env import EnvConfig, MarketArrays, Normaliser, VecTradingEnv, as_utc
from tradeops_assets.core.errors import ConfigError
from tradeops_assets.core.features import FEATURE_COLUMNS
from tradeops_assets.core.schemas import TIMESTAMP

Algorithm = Literal["PPO", "A2C", "SAC", "DQN"]
ALGORITHMS: dict[str, type[BaseAlgorithm]] = {"PPO": PPO, "A2C": A2C, "SAC": SAC, "DQN": DQN}
CHECKPOINT = "checkpoint.zip"


@dataclass(frozen=True)
class TrainConfig:
    algorithm: Algorithm = "PPO"
    timesteps: int = 100_000
    n_envs: int = 32
    learning_rate: float = 3e-4
    net_arch: tuple[int, ...] = (64, 64)
    seed: int = 0
    n_steps: int = 256
    # Five passes of 2048-sample minibatches: 2.4x PPO's default throughput on 2 cores with
    # no loss in validation return on the sample (BENCHMARKS.md, ppo_steps_per_s).
    batch_size: int = 2048
    n_epochs: int = 5
    checkpoint_every: int = 20_000
    env: EnvConfig = field(default_factory=EnvConfig)

    def __post_init__(self) -> None:
        if self.algorithm not in ALGORITHMS:
            raise ConfigError(f"algorithm '{self.algorithm}' not in {sorted(ALGORITHMS)}")
        if self.algorithm == "DQN" and not self.env.discrete:
            raise ConfigError("DQN needs the discrete env: set env.discrete=True")
        if self.algorithm in ("SAC",) and self.env.discrete:
            raise ConfigError("SAC needs the continuous env: set env.discrete=False")
        if self.timesteps < 1 or self.n_envs < 1:
            raise ConfigError(f"timesteps and n_envs must be >= 1, got {self}")

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class TrainResult:
    model: BaseAlgorithm
    normaliser: Normaliser
    weights_hash: str
    timesteps: int
    resumed_from: int
    episode_returns: list[float]


def weights_hash(model: BaseAlgorithm) -> str:
    digest = hashlib.sha256()
    for name, tensor in sorted(model.policy.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


class ProgressCallback(BaseCallback):
    """Reports steps, steps/s and ETA to ``report`` (Dagster's log, a CLI progress bar)."""

    def __init__(self, total: int, report: Callable[[int, float, float], None], every: int):
        super().__init__()
        self.total, self.report, self.every = total, report, every
        self._start = time.perf_counter()
        self._first = 0
        self._last = 0

    def _on_training_start(self) -> None:
        self._start = time.perf_counter()
        self._first = self._last = self.num_timesteps

    def _emit(self) -> None:
        self._last = self.num_timesteps
        rate = (self.num_timesteps - self._first) / max(time.perf_counter() - self._start, 1e-9)
        eta = max(self.total - self.num_timesteps, 0) / max(rate, 1e-9)
        self.report(self.num_timesteps, rate, eta)

    def _on_step(self) -> bool:
        if self.num_timesteps - self._last >= self.every:
            self._emit()
        return True

    def _on_training_end(self) -> None:
        self._emit()


class CheckpointCallback(BaseCallback):
    """Saves the model atomically every ``every`` steps, so a killed run loses at most that."""

    def __init__(self, path: Path, every: int):
        super().__init__()
        self.path, self.every = path, every
        self._last = 0

    def _on_training_start(self) -> None:
        self._last = self.num_timesteps

    def _on_step(self) -> bool:
        if self.num_timesteps - self._last >= self.every:
            self._last = self.num_timesteps
            save_atomically(self.model, self.path)
        return True


class EpisodeReturns(BaseCallback):
    """The learning curve: the mean reward per step of each rollout, in order."""

    def __init__(self) -> None:
        super().__init__()
        self.curve: list[float] = []

    def _on_step(self) -> bool:
        rewards = self.locals.get("rewards")
        if rewards is not None:
            self.curve.append(float(np.mean(rewards)))
        return True


def save_atomically(model: BaseAlgorithm, path: Path) -> None:
    tmp = path.with_suffix(".tmp.zip")
    model.save(tmp)
    os.replace(tmp, path)


def fit_normaliser(frame: pl.DataFrame, train_end) -> Normaliser:
    """Feature scaling from the training window only: validation data never leaks into it."""
    train_end = as_utc(train_end)
    train = frame.filter(pl.col(TIMESTAMP) < train_end).select(FEATURE_COLUMNS).to_numpy()
    if len(train) == 0:
        raise ConfigError(f"no feature rows before the training window's end {train_end}")
    return Normaliser.fit(train)


def make_model(config: TrainConfig, env: VecTradingEnv) -> BaseAlgorithm:
    algo = ALGORITHMS[config.algorithm]
    kwargs: dict = {
        "learning_rate": config.learning_rate,
        "seed": config.seed,
        "device": "cpu",
        "verbose": 0,
        "policy_kwargs": {"net_arch": list(config.net_arch)},
    }
    if config.algorithm == "PPO":
        kwargs |= {
            "n_steps": config.n_steps,
            "batch_size": config.batch_size,
            "n_epochs": config.n_epochs,
        }
    elif config.algorithm == "A2C":
        kwargs |= {"n_steps": max(config.n_steps // 32, 5)}
    else:
        kwargs |= {"batch_size": min(config.batch_size, 256), "learning_starts": 1_000}
    return algo("MlpPolicy", env, **kwargs)


def train(
    frame: pl.DataFrame,
    config: TrainConfig,
    span: tuple,
    workdir: Path,
    report: Callable[[int, float, float], None] | None = None,
) -> TrainResult:
    """Trains on ``frame`` (market_features) inside ``span``; resumes from workdir's checkpoint."""
    torch.use_deterministic_algorithms(True)
    normaliser = fit_normaliser(frame, span[1])
    arrays = MarketArrays.from_features(frame, normaliser)
    env = VecTradingEnv(arrays, config.n_envs, config.env, span=span)
    env.seed(config.seed)
    workdir.mkdir(parents=True, exist_ok=True)
    checkpoint = workdir / CHECKPOINT
    if checkpoint.exists():
        model = ALGORITHMS[config.algorithm].load(checkpoint, env=env, device="cpu")
        resumed_from = model.num_timesteps
    else:
        model, resumed_from = make_model(config, env), 0
    curve = EpisodeReturns()
    callbacks = [curve, CheckpointCallback(checkpoint, config.checkpoint_every)]
    if report is not None:
        callbacks.append(ProgressCallback(config.timesteps, report, max(config.timesteps // 20, 1)))
    remaining = config.timesteps - resumed_from
    if remaining > 0:
        model.learn(remaining, callback=CallbackList(callbacks), reset_num_timesteps=False)
    save_atomically(model, checkpoint)
    return TrainResult(
        model, normaliser, weights_hash(model), model.num_timesteps, resumed_from, curve.curve
    )


def evaluate(
    model: BaseAlgorithm,
    frame: pl.DataFrame,
    normaliser: Normaliser,
    config: TrainConfig,
    span: tuple,
    episodes: int = 64,
) -> float:
    """Mean log return per episode of the deterministic policy on out-of-sample episodes.

    Episodes shrink to fit the window (a short validation window still gets judged).
    """
    arrays = MarketArrays.from_features(frame, normaliser)
    lo, hi = as_utc(span[0]), as_utc(span[1])
    in_window = frame.filter((pl.col(TIMESTAMP) >= lo) & (pl.col(TIMESTAMP) < hi))
    longest = int(in_window.group_by("symbol").len()["len"].max() or 0) - 1
    if longest < 1:
        raise ConfigError(f"no symbol has two bars in the evaluation window {span}")
    env_config = replace(config.env, episode_bars=min(config.env.episode_bars, longest))
    env = VecTradingEnv(arrays, episodes, env_config, span=span)
    env.seed(config.seed + 10_000)
    obs, total = env.reset(), np.zeros(episodes)
    for _ in range(env_config.episode_bars):
        action, _ = model.predict(obs, deterministic=True)
        obs, rewards, _, _ = env.step(action)
        total += rewards
    return float(total.mean())
