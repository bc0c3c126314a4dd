import dagster as dg
from pydantic import Field

from tradeops_assets.core import drift


class DriftConfig(dg.Config):
    """How far the market may move from the champion's training window before retraining.

    PSI 0.1 / 0.25 is the industry's convention for moderate / significant shift.
    """

    psi_warn: float = drift.PSI_WARN
    psi_error: float = drift.PSI_ERROR
    window_bars: int = Field(
        378,
        description="latest bars per symbol compared (18 months of days): regimes last "
        "months, so a shorter window of one calm or volatile spell reads as drift against "
        "years of training history; a month unlike any before still moves it",
    )
    min_served_rows: int = Field(
        100, description="fewer served requests than this are not judged: not yet a sample"
    )


class PerformanceConfig(dg.Config):
    """How far live Sharpe may fall below the validation window's before retraining."""

    shortfall_warn: float = drift.SHARPE_SHORTFALL_WARN
    shortfall_error: float = drift.SHARPE_SHORTFALL_ERROR
    min_decisions: int = drift.MIN_DECISIONS


class HealthConfig(dg.Config):
    """The traders' service level: the firm's latency limit and an error budget."""

    p99_limit_ms: float = 300.0
    error_rate_limit: float = 0.01
