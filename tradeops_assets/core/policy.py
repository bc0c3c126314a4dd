"""A trained policy's deterministic decision as plain numpy: weights in, target positions out.

The backtest steps every symbol at once and the endpoint answers thousands of
requests a second; torch's per-call overhead (tens of microseconds) dominates a
64x64 network at those batch sizes, so both run this export of the SB3 actor.
It is exact up to float32 rounding (a test compares it with ``model.predict``),
and it saves to one ``.npz`` that needs neither torch nor SB3 to load.
"""

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from tradeops_assets.core.errors import ConfigError
from tradeops_assets.core.market import DISCRETE_POSITIONS

Head = Literal["clip", "tanh", "argmax"]
ACTIVATIONS = {
    "Tanh": np.tanh,
    "ReLU": lambda x: np.maximum(x, 0.0, out=x),
    "Identity": lambda x: x,
}


@dataclass(frozen=True)
class NumpyPolicy:
    """Layers of (weight [in, out], bias, activation) and how the last output becomes a position.

    ``clip``: a Gaussian policy's mean clipped to [-1, 1] (PPO, A2C); ``tanh``: a squashed
    policy (SAC); ``argmax``: Q-values over {short, flat, long} (DQN).
    """

    weights: tuple[np.ndarray, ...]
    biases: tuple[np.ndarray, ...]
    activations: tuple[str, ...]
    head: Head

    @property
    def obs_width(self) -> int:
        return self.weights[0].shape[0]

    def act(self, obs: np.ndarray) -> np.ndarray:
        """Target positions in [-1, 1], one per row of ``obs`` [batch, obs_width]."""
        x = np.asarray(obs, dtype=np.float32)
        if x.ndim != 2 or x.shape[1] != self.obs_width:
            raise ConfigError(
                f"policy expects observations [batch, {self.obs_width}], got {x.shape}"
            )
        return self.act_on_market(self.market_term(x[:, :-1]), x[:, -1])

    def market_term(self, market: np.ndarray) -> np.ndarray:
        """The first layer's input from the market rows alone, before the position's share.

        The position is the only input that depends on earlier decisions, so a backtest
        projects every window of every symbol here in a few large matmuls and keeps only
        ``act_on_market`` inside its sequential loop.
        """
        return market @ self.weights[0][:-1] + self.biases[0]

    def act_on_market(self, market_term: np.ndarray, position: np.ndarray) -> np.ndarray:
        w = self.weights[0]
        x = ACTIVATIONS[self.activations[0]](
            market_term + np.asarray(position, np.float32)[:, None] * w[-1]
        )
        layers = zip(self.weights[1:], self.biases[1:], self.activations[1:], strict=True)
        for w, b, activation in layers:
            x = ACTIVATIONS[activation](x @ w + b)
        if self.head == "argmax":
            return DISCRETE_POSITIONS[np.argmax(x, axis=1)]
        if self.head == "tanh":
            return np.tanh(x[:, 0]).astype(np.float64)
        return np.clip(x[:, 0], -1.0, 1.0).astype(np.float64)

    @classmethod
    def from_modules(cls, modules: list, head: Head) -> "NumpyPolicy":
        """Exports a torch actor (Linear layers and activations, input to output) to numpy.

        ``core.algorithms`` knows which modules of each algorithm's policy form its actor.
        """
        import torch

        weights, biases, activations = [], [], []
        for module in modules:
            if isinstance(module, torch.nn.Linear):
                weights.append(module.weight.detach().cpu().numpy().T.astype(np.float32).copy())
                biases.append(module.bias.detach().cpu().numpy().astype(np.float32).copy())
                activations.append("Identity")
            elif type(module).__name__ in ACTIVATIONS and activations:
                activations[-1] = type(module).__name__
            else:
                raise ConfigError(f"cannot export layer {module!r} to numpy")
        return cls(tuple(weights), tuple(biases), tuple(activations), head)

    def save(self, path: Path) -> None:
        arrays = {f"w{i}": w for i, w in enumerate(self.weights)}
        arrays |= {f"b{i}": b for i, b in enumerate(self.biases)}
        spec = json.dumps({"activations": self.activations, "head": self.head})
        np.savez(path, spec=np.array(spec), **arrays)

    @classmethod
    def load(cls, path: Path) -> "NumpyPolicy":
        with np.load(path, allow_pickle=False) as data:
            spec = json.loads(str(data["spec"]))
            n = len(spec["activations"])
            return cls(
                tuple(data[f"w{i}"] for i in range(n)),
                tuple(data[f"b{i}"] for i in range(n)),
                tuple(spec["activations"]),
                spec["head"],
            )
