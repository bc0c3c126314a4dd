from datetime import datetime

import dagster as dg
from pydantic import Field

from tradeops_assets.core.env import EnvConfig
from tradeops_assets.core.training import TrainConfig

_DEFAULT = TrainConfig()
_ENV = EnvConfig()


class TrainingConfig(dg.Config):
    """What an ML engineer tunes per run; the defaults train PPO in a few minutes on 2 cores."""

    algorithm: str = _DEFAULT.algorithm
    timesteps: int = 65_536  # 8 PPO rollouts of 32 envs x 256 steps
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
    checkpoint_every: int = 10_000

    def train_config(self, seed: int) -> TrainConfig:
        env = EnvConfig(
            window=self.window,
            episode_bars=self.episode_bars,
            fee_bps=self.fee_bps,
            slippage_bps=self.slippage_bps,
            discrete=self.algorithm == "DQN",
        )
        return TrainConfig(
            algorithm=self.algorithm,  # type: ignore[arg-type]
            timesteps=self.timesteps,
            n_envs=self.n_envs,
            learning_rate=self.learning_rate,
            batch_size=self.batch_size,
            n_epochs=self.n_epochs,
            net_arch=tuple(self.net_arch),
            seed=seed,
            checkpoint_every=self.checkpoint_every,
            env=env,
        )

    def windows(self, first: datetime, last: datetime) -> tuple[tuple, tuple]:
        """(train, validation) spans; what follows validation is left for the backtest."""
        length = last - first
        train_end = (
            datetime.fromisoformat(self.train_end)
            if self.train_end
            else first + length * self.train_fraction
        )
        validation_end = (
            datetime.fromisoformat(self.validation_end)
            if self.validation_end
            else first + length * (self.train_fraction + self.validation_fraction)
        )
        return (first, train_end), (train_end, validation_end)
