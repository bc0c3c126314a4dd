"""Training a policy so that anyone can reproduce it bit for bit on CPU.

Same feature data version + config + seed gives the same weights hash: the
environment draws episodes only from its own seeded generator, SB3 seeds torch
and numpy from ``seed``, and torch runs deterministic kernels. Training
checkpoints between updates; a run killed midway resumes from its last checkpoint
and ends at the same step count with the same weights as a run never killed: the
checkpoint holds the env's and every random generator's state beside the model.
(Off-policy algorithms resume with an empty replay buffer, so they end at the same
step count but not bit for bit.)

A checkpoint on a local disk dies with the machine (a reclaimed Spot instance), so
``train`` hands each checkpoint, once complete, to an optional ``on_checkpoint``
hook that can copy it somewhere that outlives the task; core knows no store.
"""

import contextlib
import contextvars
import hashlib
import os
import random
import statistics
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import polars as pl
import torch
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.callbacks import BaseCallback, CallbackList

from tradeops_assets.core.env import VecTradingEnv
from tradeops_assets.core.errors import ConfigError
from tradeops_assets.core.market import MarketArrays, Normaliser, fit_normaliser
from tradeops_assets.core.recipe import TrainConfig
from tradeops_assets.core.schemas import SYMBOL
from tradeops_assets.core.windows import Window

CHECKPOINT = "checkpoint.zip"

CheckpointHook = Callable[[Path], None]
_AMBIENT_HOOK: contextvars.ContextVar[CheckpointHook | None] = contextvars.ContextVar(
    "tradeops_checkpoint_hook", default=None
)


@contextlib.contextmanager
def on_checkpoints(hook: CheckpointHook | None) -> Iterator[None]:
    """``hook`` for every ``train`` in the block that was given none.

    Callers that train through code taking no hook (the walk-forward folds of
    ``core.walk_forward``) still get their checkpoints copied off the machine.
    """
    token = _AMBIENT_HOOK.set(hook)
    try:
        yield
    finally:
        _AMBIENT_HOOK.reset(token)


def _call_hook(hook: CheckpointHook | None, path: Path) -> None:
    """Calls ``hook`` with every random generator put back as it was afterwards.

    A hook that draws random numbers (an S3 client's retry jitter draws from Python's
    ``random``) would otherwise shift the rest of the run, and a run with the hook
    would stop matching one without it.
    """
    if hook is None:
        return
    python, numpy, torch_state = random.getstate(), np.random.get_state(), torch.get_rng_state()
    try:
        hook(path)
    finally:
        random.setstate(python)
        np.random.set_state(numpy)
        torch.set_rng_state(torch_state)


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


RESUME_STATE = "_tradeops_resume"


class CheckpointCallback(BaseCallback):
    """Saves the model, the env and the random generators between two updates, atomically.

    At the start of a rollout the previous update is complete, so a checkpoint is an
    exact point to continue from; a killed run loses at most ``every`` steps (rounded
    up to a whole rollout). ``on_checkpoint`` gets the path once the file is whole.
    """

    def __init__(self, path: Path, every: int, on_checkpoint: CheckpointHook | None = None):
        super().__init__()
        self.path, self.every, self.on_checkpoint = path, every, on_checkpoint
        self._last = 0

    def _on_training_start(self) -> None:
        self._last = self.num_timesteps

    def _on_rollout_start(self) -> None:
        if self.num_timesteps - self._last >= self.every:
            self._last = self.num_timesteps
            save_atomically(self.model, self.path)
            _call_hook(self.on_checkpoint, self.path)

    def _on_step(self) -> bool:
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
    """The model and the state to continue it exactly, in one file replaced atomically."""
    setattr(
        model,
        RESUME_STATE,
        {
            "env": model.get_env().get_state(),
            "last_obs": model._last_obs,
            "last_episode_starts": model._last_episode_starts,
            "torch": torch.get_rng_state(),
            "numpy": np.random.get_state(),
            "python": random.getstate(),
        },
    )
    tmp = path.with_suffix(".tmp.zip")
    model.save(tmp, include=[RESUME_STATE])
    os.replace(tmp, path)


def resume(config: TrainConfig, checkpoint: Path, env: VecTradingEnv) -> BaseAlgorithm:
    """The checkpointed model, with the env and the random generators where they were."""
    model = config.spec.sb3_class().load(checkpoint, env=env, device="cpu")
    state = getattr(model, RESUME_STATE, None)
    if state is not None:
        env.set_state(state["env"])
        model._last_obs = state["last_obs"]  # SB3 saves neither, and would reset the env
        model._last_episode_starts = state["last_episode_starts"]
        torch.set_rng_state(state["torch"])
        np.random.set_state(state["numpy"])
        random.setstate(state["python"])
    return model


def make_model(config: TrainConfig, env: VecTradingEnv) -> BaseAlgorithm:
    kwargs: dict = {
        "learning_rate": config.learning_rate,
        "seed": config.seed,
        "device": "cpu",
        "verbose": 0,
        "policy_kwargs": {"net_arch": list(config.net_arch)},
        **config.spec.kwargs(config),
    }
    return config.spec.sb3_class()("MlpPolicy", env, **kwargs)


def train(
    frame: pl.DataFrame,
    config: TrainConfig,
    window: Window,
    workdir: Path,
    report: Callable[[int, float, float], None] | None = None,
    on_checkpoint: CheckpointHook | None = None,
) -> TrainResult:
    """Trains on ``frame`` (market_features) inside ``window``; resumes from workdir's checkpoint.

    Feature scaling is fitted on the window's rows only, so nothing later leaks into it.
    ``on_checkpoint`` (or, if None, the one ``on_checkpoints`` set) is called after every
    checkpoint, the last one included.
    """
    if on_checkpoint is None:
        on_checkpoint = _AMBIENT_HOOK.get()
    torch.use_deterministic_algorithms(True)
    normaliser = fit_normaliser(frame, window)
    arrays = MarketArrays.from_features(frame, normaliser)
    env = VecTradingEnv(arrays, config.n_envs, config.env, span=window)
    env.seed(config.seed)
    workdir.mkdir(parents=True, exist_ok=True)
    checkpoint = workdir / CHECKPOINT
    if checkpoint.exists():
        model = resume(config, checkpoint, env)
        resumed_from = model.num_timesteps
    else:
        model, resumed_from = make_model(config, env), 0
    curve = EpisodeReturns()
    callbacks = [curve, CheckpointCallback(checkpoint, config.checkpoint_every, on_checkpoint)]
    if report is not None:
        callbacks.append(ProgressCallback(config.timesteps, report, max(config.timesteps // 20, 1)))
    remaining = config.timesteps - resumed_from
    if remaining > 0:
        model.learn(remaining, callback=CallbackList(callbacks), reset_num_timesteps=False)
    save_atomically(model, checkpoint)
    _call_hook(on_checkpoint, checkpoint)
    return TrainResult(
        model, normaliser, weights_hash(model), model.num_timesteps, resumed_from, curve.curve
    )


def evaluate(
    model: BaseAlgorithm,
    frame: pl.DataFrame,
    normaliser: Normaliser,
    config: TrainConfig,
    window: Window,
    episodes: int = 64,
) -> float:
    """Mean log return per episode of the deterministic policy on out-of-sample episodes.

    Episodes shrink to fit the window (a short validation window still gets judged).
    """
    arrays = MarketArrays.from_features(frame, normaliser)
    in_window = frame.filter(window.contains())
    longest = int(in_window.group_by(SYMBOL).len()["len"].max() or 0) - 1
    if longest < 1:
        raise ConfigError(f"no symbol has two bars in the evaluation window {window}")
    env_config = replace(config.env, episode_bars=min(config.env.episode_bars, longest))
    env = VecTradingEnv(arrays, episodes, env_config, span=window)
    env.seed(config.seed + 10_000)
    obs, total = env.reset(), np.zeros(episodes)
    for _ in range(env_config.episode_bars):
        action, _ = model.predict(obs, deterministic=True)
        obs, rewards, _, _ = env.step(action)
        total += rewards
    return float(total.mean())


@dataclass(frozen=True)
class SeedRun:
    seed: int
    result: TrainResult
    validation_return: float
    workdir: Path

    @property
    def checkpoint(self) -> Path:
        return self.workdir / CHECKPOINT


@dataclass(frozen=True)
class SeedSweep:
    """One policy per seed, each judged on the validation window; the best one is registered."""

    runs: tuple[SeedRun, ...]

    @property
    def best(self) -> SeedRun:
        return max(self.runs, key=lambda run: run.validation_return)

    def spread(self) -> dict[str, float]:
        scores = [run.validation_return for run in self.runs]
        return {
            "mean": statistics.fmean(scores),
            "min": min(scores),
            "max": max(scores),
            "stdev": statistics.pstdev(scores),
        }


def sweep_seeds(
    frame: pl.DataFrame,
    config: TrainConfig,
    seeds: tuple[int, ...],
    training: Window,
    validation: Window,
    workdir_for: Callable[[int], Path],
    report: Callable[[str], None] = lambda _: None,
    on_checkpoint: CheckpointHook | None = None,
) -> SeedSweep:
    """Trains ``config`` once per seed on ``training`` and scores each on ``validation``.

    ``workdir_for(seed)`` is where a seed checkpoints; a re-executed run passes the same
    folders, so each seed resumes where it was killed. ``on_checkpoint`` goes to ``train``.
    """
    if not seeds:
        raise ConfigError("train at least one seed")
    runs = []
    for seed in seeds:
        seeded = replace(config, seed=seed)

        def progress(steps: int, rate: float, eta: float) -> None:
            report(f"training: {steps} steps, {rate:,.0f} steps/s, ETA {eta:,.0f} s")

        result = train(frame, seeded, training, workdir_for(seed), progress, on_checkpoint)
        score = evaluate(result.model, frame, result.normaliser, seeded, validation)
        report(f"seed {seed}: weights {result.weights_hash[:12]}, validation {score:+.4f}")
        runs.append(SeedRun(seed, result, score, workdir_for(seed)))
    return SeedSweep(tuple(runs))
