import dagster as dg
from pydantic import Field

from tradeops_assets.core.promotion import GateCriteria

_GATE = GateCriteria()


class BacktestConfig(dg.Config):
    """How the challenger is judged out of sample."""

    folds: int = Field(3, description="walk-forward test windows after first_test_fraction")
    first_test_fraction: float = Field(0.55, description="where the first fold's test starts")
    expanding: bool = Field(True, description="train on all prior bars (else a rolling window)")
    momentum_lookback: int = Field(20, description="bars of the momentum baseline's signal")
    fold_timesteps: int | None = Field(
        None, description="training steps per fold; default: the challenger's own"
    )


class GateConfig(dg.Config):
    """The promotion gate's margins and limits; every one is stated in the check's metadata."""

    baseline_margin: float = _GATE.baseline_margin
    champion_margin: float = _GATE.champion_margin
    min_fold_win_rate: float = _GATE.min_fold_win_rate
    max_drawdown: float = _GATE.max_drawdown
    max_turnover: float = _GATE.max_turnover

    def criteria(self) -> GateCriteria:
        return GateCriteria(**self.model_dump())
