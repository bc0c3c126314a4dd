import dagster as dg
from pydantic import Field

from tradeops_assets.core.backtest import MOMENTUM_LOOKBACK
from tradeops_assets.core.evaluation import EvaluationOptions
from tradeops_assets.core.promotion import GateCriteria

_GATE = GateCriteria()
_EVAL = EvaluationOptions()


class BacktestConfig(dg.Config):
    """How the challenger is judged out of sample."""

    folds: int = Field(
        _EVAL.folds, description="walk-forward test windows after first_test_fraction"
    )
    first_test_fraction: float = Field(
        _EVAL.first_test_fraction, description="where the first fold's test starts"
    )
    expanding: bool = Field(
        _EVAL.expanding, description="train on all prior bars (else a rolling window)"
    )
    momentum_lookback: int = Field(
        MOMENTUM_LOOKBACK, description="bars of the momentum baseline's signal"
    )
    fold_timesteps: int | None = Field(
        _EVAL.fold_timesteps, description="training steps per fold; default: the challenger's own"
    )

    def options(self) -> EvaluationOptions:
        return EvaluationOptions(**self.model_dump())


class GateConfig(dg.Config):
    """The promotion gate's margins and limits; every one is stated in the check's metadata."""

    baseline_margin: float = _GATE.baseline_margin
    champion_margin: float = _GATE.champion_margin
    min_fold_win_rate: float = _GATE.min_fold_win_rate
    max_drawdown: float = _GATE.max_drawdown
    max_turnover: float = _GATE.max_turnover

    def criteria(self) -> GateCriteria:
        return GateCriteria(**self.model_dump())
