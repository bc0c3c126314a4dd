"""What a backtest concluded, as the one typed record every later stage reads.

``backtest_report`` stores a ``BacktestSummary``; the promotion gate,
``champion_policy`` and ``policy_bento`` read it back, so a figure cannot mean one
thing to the report and another to the gate. Light on purpose: reading a summary
needs neither torch nor a backtest.
"""

import json
from dataclasses import dataclass, field
from typing import Any

from tradeops_assets.core.backtest import CHALLENGER, CHAMPION
from tradeops_assets.core.errors import ConfigError, require_format
from tradeops_assets.core.windows import Window

SUMMARY_FORMAT = 1


@dataclass(frozen=True)
class FoldResult:
    """One (fold, seed): the retrained policy's and every baseline's Sharpe on the fold's test."""

    fold: int
    seed: int
    train: Window
    test: Window
    sharpe: dict[str, float]
    max_drawdown: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "fold": self.fold,
            "seed": self.seed,
            "train": self.train.to_dict(),
            "test": self.test.to_dict(),
            "sharpe": dict(self.sharpe),
            "max_drawdown": self.max_drawdown,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "FoldResult":
        return cls(
            fold=int(data["fold"]),
            seed=int(data["seed"]),
            train=Window.from_dict(data["train"]),
            test=Window.from_dict(data["test"]),
            sharpe={k: float(v) for k, v in data["sharpe"].items()},
            max_drawdown=float(data["max_drawdown"]),
        )


@dataclass(frozen=True)
class BacktestSummary:
    challenger_version: str
    champion_version: str | None
    challenger_run_id: str
    data_version: str
    held_out: Window
    metrics: dict[str, dict[str, float]]
    """Per strategy, the equal-weight portfolio's metrics on the held-out window."""
    folds: tuple[FoldResult, ...]
    code_version: str = ""
    run_id: str = ""
    options: dict[str, Any] = field(default_factory=dict)

    @property
    def challenger(self) -> dict[str, float]:
        return self.metrics[CHALLENGER]

    @property
    def has_champion(self) -> bool:
        return CHAMPION in self.metrics

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": SUMMARY_FORMAT,
            "challenger_version": self.challenger_version,
            "champion_version": self.champion_version,
            "challenger_run_id": self.challenger_run_id,
            "data_version": self.data_version,
            "held_out": self.held_out.to_dict(),
            "metrics": self.metrics,
            "folds": [f.to_dict() for f in self.folds],
            "code_version": self.code_version,
            "dagster_run_id": self.run_id,
            "options": self.options,
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "BacktestSummary":
        require_format(data, SUMMARY_FORMAT, "backtest summary")
        try:
            return cls(
                challenger_version=str(data["challenger_version"]),
                champion_version=data["champion_version"],
                challenger_run_id=str(data["challenger_run_id"]),
                data_version=str(data["data_version"]),
                held_out=Window.from_dict(data["held_out"]),
                metrics={
                    s: {m: float(v) for m, v in values.items()}
                    for s, values in data["metrics"].items()
                },
                folds=tuple(FoldResult.from_dict(f) for f in data["folds"]),
                code_version=str(data.get("code_version", "")),
                run_id=str(data.get("dagster_run_id", "")),
                options=dict(data.get("options", {})),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ConfigError(f"backtest summary is incomplete or malformed: {exc!r}") from exc

    @classmethod
    def from_json(cls, text: str) -> "BacktestSummary":
        return cls.from_dict(json.loads(text))
