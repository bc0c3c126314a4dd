import dagster as dg
from pydantic import Field

from tradeops_assets.core.calendars import CalendarChoice
from tradeops_assets.core.validation import ValidationPolicy

_DEFAULTS = ValidationPolicy()


class BarValidationConfig(dg.Config):
    """Thresholds of the health rules, per run. Gaps are measured on each symbol's trading
    calendar (the market_data resource's), so the defaults suit daily and intraday bars."""

    max_gap_ratio: float = Field(
        _DEFAULTS.max_gap_ratio, description="longest gap allowed, in median bar spacings"
    )
    max_abs_log_return: float = Field(
        _DEFAULTS.max_abs_log_return, description="largest |log return| one bar may show"
    )

    def policy(self, calendars: CalendarChoice) -> ValidationPolicy:
        return ValidationPolicy(self.max_gap_ratio, self.max_abs_log_return, calendars)
