"""Figures as people read them in the UI, the HTML report and the gate's table."""

import pytest

from tradeops_assets.core.display import figure


@pytest.mark.parametrize(
    ("name", "value", "shown"),
    [
        ("max_drawdown", 0.024034188815561075, "2.40%"),
        ("total_return", -0.5, "-50.00%"),
        ("hit_rate", 0.5312, "53.12%"),
        ("exposure", 1.0, "100.00%"),
        ("annualised_return", 0.1234, "12.34%/yr"),
        ("volatility", 0.2, "20.00%/yr"),
        ("cost_drag", 0.00123, "0.12%/yr"),
        ("sharpe", 1.23456, "1.23"),
        ("sortino", -0.004, "-0.00"),
        ("calmar", 12.0, "12.00"),
        ("held_out_sharpe_vs_momentum", 0.9, "0.90"),
        ("walk_forward_sharpe_mean", 0.456, "0.46"),
        ("turnover", 54.321, "54.3x/yr (0.22x/day)"),
        ("bars", 367.0, "367"),
        ("bars", 12345.0, "12,345"),
        ("walk_forward_win_rate", 2 / 3, "67%"),
        ("held_out_sharpe_vs_champion", None, "n/a"),
        ("something_else", 0.000123456, "0.0001235"),
    ],
)
def test_each_figure_has_its_unit_and_precision(name, value, shown):
    assert figure(name, value) == shown
