"""How a policy was made, as one typed object written once with it and read back once.

A ``PolicyRecipe`` is what the registry stores beside the weights and what every
later stage reads: the backtest retrains it per walk-forward fold, the bento
serves with its env settings, ``tradeops reproduce`` retrains it bit for bit.
Windows are the actual first and last bars used, never the fractions or dates a
config asked for.
"""

import json
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import polars as pl

from tradeops_assets.core.algorithms import Algorithm, AlgorithmSpec, spec_for
from tradeops_assets.core.drift import PolicyReference
from tradeops_assets.core.errors import ConfigError, require_format
from tradeops_assets.core.features import FEATURE_COLUMNS
from tradeops_assets.core.market import EnvConfig, Normaliser
from tradeops_assets.core.policy import NumpyPolicy
from tradeops_assets.core.schemas import SYMBOL
from tradeops_assets.core.windows import Window, bar_times, by_fraction

RECIPE_FILE = "recipe.json"
RECIPE_FORMAT = 1


@dataclass(frozen=True)
class TrainConfig:
    """One training run: the algorithm, its hyperparameters, the env and the seed."""

    algorithm: Algorithm = Algorithm.PPO
    timesteps: int = 65_536  # 8 PPO rollouts of 32 envs x 256 steps: a few minutes on 2 cores
    n_envs: int = 32
    learning_rate: float = 3e-4
    net_arch: tuple[int, ...] = (64, 64)
    seed: int = 0
    n_steps: int = 256
    # Five passes of 2048-sample minibatches: 2.4x PPO's default throughput on 2 cores with
    # no loss in validation return on the sample (BENCHMARKS.md, ppo_steps_per_s).
    batch_size: int = 2048
    n_epochs: int = 5
    checkpoint_every: int = 16_384
    env: EnvConfig = field(default_factory=EnvConfig)

    def __post_init__(self) -> None:
        object.__setattr__(self, "algorithm", self.spec.name)
        object.__setattr__(self, "net_arch", tuple(self.net_arch))
        self.spec.check_env(self.env.discrete)
        if self.timesteps < 1 or self.n_envs < 1:
            raise ConfigError(
                f"timesteps and n_envs must be >= 1, got {self.timesteps}, {self.n_envs}"
            )

    @property
    def spec(self) -> AlgorithmSpec:
        return spec_for(self.algorithm)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["algorithm"] = self.algorithm.value
        data["net_arch"] = list(self.net_arch)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "TrainConfig":
        fields = dict(data)
        unknown = set(fields) - set(cls.__dataclass_fields__)
        if unknown:
            raise ConfigError(f"training config has unknown fields {sorted(unknown)}")
        fields["env"] = EnvConfig.from_dict(fields.get("env", {}))
        return cls(**fields)


def symbols_in(frame: pl.DataFrame, window: Window) -> tuple[str, ...]:
    """The symbols with rows inside ``window``: what a policy trained there has seen."""
    return tuple(sorted(frame.filter(window.contains()).get_column(SYMBOL).unique().to_list()))


@dataclass(frozen=True)
class PolicyRecipe:
    """Everything needed to remake a registered policy, and the windows it was judged on."""

    train: TrainConfig
    seeds: tuple[int, ...]
    train_window: Window
    validation_window: Window
    held_out: Window
    data_version: str
    feature_columns: tuple[str, ...] = FEATURE_COLUMNS
    symbols: tuple[str, ...] = ()
    """The symbols it was trained on: the only ones its bento serves."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "seeds", tuple(self.seeds))
        object.__setattr__(self, "feature_columns", tuple(self.feature_columns))
        object.__setattr__(self, "symbols", tuple(sorted(self.symbols)))
        if not self.seeds:
            raise ConfigError("a recipe needs at least one seed")
        if self.train.seed not in self.seeds:
            raise ConfigError(f"registered seed {self.train.seed} is not one of {self.seeds}")

    @classmethod
    def by_fraction(
        cls, train: TrainConfig, frame: pl.DataFrame, data_version: str = "unversioned"
    ) -> "PolicyRecipe":
        """A recipe for ``frame`` with the default 70/15/15 windows (benchmarks, tests)."""
        training, validation, held_out = by_fraction(bar_times(frame))
        return cls(
            train,
            (train.seed,),
            training,
            validation,
            held_out,
            data_version,
            symbols=symbols_in(frame, training),
        )

    @property
    def env(self) -> EnvConfig:
        return self.train.env

    def for_seed(self, seed: int, timesteps: int | None = None) -> TrainConfig:
        return replace(self.train, seed=seed, timesteps=timesteps or self.train.timesteps)

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": RECIPE_FORMAT,
            "train": self.train.to_dict(),
            "seeds": list(self.seeds),
            "train_window": self.train_window.to_dict(),
            "validation_window": self.validation_window.to_dict(),
            "held_out": self.held_out.to_dict(),
            "data_version": self.data_version,
            "feature_columns": list(self.feature_columns),
            "symbols": list(self.symbols),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "PolicyRecipe":
        require_format(data, RECIPE_FORMAT, "policy recipe")
        try:
            return cls(
                train=TrainConfig.from_dict(data["train"]),
                seeds=tuple(data["seeds"]),
                train_window=Window.from_dict(data["train_window"]),
                validation_window=Window.from_dict(data["validation_window"]),
                held_out=Window.from_dict(data["held_out"]),
                data_version=str(data["data_version"]),
                feature_columns=tuple(data["feature_columns"]),
                symbols=tuple(data.get("symbols", ())),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ConfigError(f"policy recipe is incomplete or malformed: {exc!r}") from exc

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "PolicyRecipe":
        try:
            return cls.from_dict(json.loads(text))
        except json.JSONDecodeError as exc:
            raise ConfigError(f"policy recipe is not JSON: {exc}") from exc


@dataclass(frozen=True)
class RegisteredPolicy:
    """One registered model version as evaluation and serving need it: no torch, no SB3."""

    version: str
    run_id: str
    recipe: PolicyRecipe
    normaliser: Normaliser
    policy: NumpyPolicy
    reference: PolicyReference | None = None
    """What monitoring compares it against (absent for versions registered before references)."""
