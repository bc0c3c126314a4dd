from datetime import datetime

import dagster as dg
import numpy as np
from pydantic import Field

from tradeops_assets.core.algorithms import ALGORITHMS, Algorithm
from tradeops_assets.core.market import EnvConfig
from tradeops_assets.core.recipe import TrainConfig
from tradeops_assets.core.windows import Window, at_fraction, train_validation_held_out

_DEFAULT = TrainConfig()
_ENV = EnvConfig()


class TrainingConfig(dg.Config):
    """What an ML engineer tunes per run; the defaults train PPO in a few minutes on 2 cores."""

    algorithm: Algorithm = Field(_DEFAULT.algorithm, description="stable-baselines3 algorithm")
    timesteps: int = _DEFAULT.timesteps
    n_envs: int = _DEFAULT.n_envs
    learning_rate: float = _DEFAULT.learning_rate
    batch_size: int = _DEFAULT.batch_size
    n_epochs: int = _DEFAULT.n_epochs
    net_arch: list[int] = Field(default_factory=lambda: list(_DEFAULT.net_arch))
    seeds: list[int] = Field(default_factory=lambda: [0], description="one policy per seed")
    train_fraction: float = 0.70
    validation_fraction: float = 0.15
    train_end: str | None = Field(None, description="ISO date; overrides train_fraction")
    validation_end: str | None = Field(None, description="ISO date; overrides the fraction")
    window: int = _ENV.window
    episode_bars: int = 128
    fee_bps: float = _ENV.fee_bps
    slippage_bps: float = _ENV.slippage_bps
    bars_per_year: float | None = Field(
        None, description="annualisation; default: from the bars' spacing on their calendar"
    )
    checkpoint_every: int = _DEFAULT.checkpoint_every

    def train_config(self, bars_per_year: float) -> TrainConfig:
        """The seed-free training config; ``bars_per_year`` applies unless one is set here."""
        env = EnvConfig(
            window=self.window,
            episode_bars=self.episode_bars,
            fee_bps=self.fee_bps,
            slippage_bps=self.slippage_bps,
            bars_per_year=self.bars_per_year or bars_per_year,
            discrete=ALGORITHMS[self.algorithm].action_space == "discrete",
        )
        return TrainConfig(
            algorithm=self.algorithm,
            timesteps=self.timesteps,
            n_envs=self.n_envs,
            learning_rate=self.learning_rate,
            batch_size=self.batch_size,
            n_epochs=self.n_epochs,
            net_arch=tuple(self.net_arch),
            seed=self.seeds[0] if self.seeds else 0,
            checkpoint_every=self.checkpoint_every,
            env=env,
        )

    def windows(self, stamps: np.ndarray) -> tuple[Window, Window, Window]:
        """(training, validation, held-out) windows, cut at actual bars.

        Dates win over fractions; a fraction is of the data's time span.
        """
        train_end = (
            datetime.fromisoformat(self.train_end)
            if self.train_end
            else at_fraction(stamps, self.train_fraction)
        )
        validation_end = (
            datetime.fromisoformat(self.validation_end)
            if self.validation_end
            else at_fraction(stamps, self.train_fraction + self.validation_fraction)
        )
        return train_validation_held_out(stamps, train_end, validation_end)
