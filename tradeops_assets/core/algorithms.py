"""The deep-RL algorithms a recipe may name, one table entry each.

An entry says which action space the algorithm trains on, the stable-baselines3
keyword arguments it takes from a ``TrainConfig``, and which modules of its
trained policy form the actor that ``NumpyPolicy`` exports. Adding an algorithm
is adding an entry. Nothing here imports torch or stable-baselines3 until a model
is actually built, so the serving path can read a recipe without them.
"""

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Literal

from tradeops_assets.core.errors import ConfigError
from tradeops_assets.core.policy import Head, NumpyPolicy

if TYPE_CHECKING:  # pragma: no cover
    from tradeops_assets.core.recipe import TrainConfig


class Algorithm(StrEnum):
    PPO = "PPO"
    A2C = "A2C"
    SAC = "SAC"
    DQN = "DQN"


ActionSpace = Literal["continuous", "discrete"]


@dataclass(frozen=True)
class AlgorithmSpec:
    name: Algorithm
    action_space: ActionSpace
    head: Head
    kwargs: Callable[["TrainConfig"], dict[str, Any]]
    actor: Callable[[Any], list[Any]]
    """The trained SB3 policy's modules, input to output, that decide the action."""

    def sb3_class(self) -> type:
        return getattr(importlib.import_module("stable_baselines3"), self.name.value)

    def check_env(self, discrete: bool) -> None:
        wanted = "discrete" if discrete else "continuous"
        if self.action_space != wanted:
            raise ConfigError(
                f"{self.name} trains on the {self.action_space} env, not the {wanted} one: "
                f"set env.discrete={self.action_space == 'discrete'}"
            )

    def export(self, model: Any) -> NumpyPolicy:
        """The trained actor as numpy, exact up to float32 rounding."""
        return NumpyPolicy.from_modules(self.actor(model.policy), self.head)


def _on_policy(config: "TrainConfig") -> dict[str, Any]:
    return {"n_steps": config.n_steps, "batch_size": config.batch_size, "n_epochs": config.n_epochs}


def _off_policy(config: "TrainConfig") -> dict[str, Any]:
    return {"batch_size": min(config.batch_size, 256), "learning_starts": 1_000}


def _gaussian_actor(policy: Any) -> list[Any]:
    return [*policy.mlp_extractor.policy_net, policy.action_net]


ALGORITHMS: dict[Algorithm, AlgorithmSpec] = {
    spec.name: spec
    for spec in (
        AlgorithmSpec(Algorithm.PPO, "continuous", "clip", _on_policy, _gaussian_actor),
        AlgorithmSpec(
            Algorithm.A2C,
            "continuous",
            "clip",
            lambda c: {"n_steps": max(c.n_steps // 32, 5)},
            _gaussian_actor,
        ),
        AlgorithmSpec(
            Algorithm.SAC,
            "continuous",
            "tanh",
            _off_policy,
            lambda p: [*p.actor.latent_pi, p.actor.mu],
        ),
        AlgorithmSpec(
            Algorithm.DQN, "discrete", "argmax", _off_policy, lambda p: list(p.q_net.q_net)
        ),
    )
}


def spec_for(name: str) -> AlgorithmSpec:
    try:
        return ALGORITHMS[Algorithm(name)]
    except ValueError:
        raise ConfigError(
            f"algorithm '{name}' not in {sorted(a.value for a in Algorithm)}"
        ) from None
