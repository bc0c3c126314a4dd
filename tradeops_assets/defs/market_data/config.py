import dagster as dg

from tradeops_assets.core.validation import ValidationPolicy

_DEFAULTS = ValidationPolicy()


class BarValidationConfig(dg.Config):
    """Thresholds of the health rules; the defaults suit daily equity and FX bars."""

    max_gap_ratio: float = _DEFAULTS.max_gap_ratio
    max_abs_log_return: float = _DEFAULTS.max_abs_log_return

    def policy(self) -> ValidationPolicy:
        return ValidationPolicy(self.max_gap_ratio, self.max_abs_log_return)
