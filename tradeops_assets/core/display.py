"""Figures as people read them: each with its unit and the precision it deserves.

One place for the UI's metadata, the HTML report and the gate's table, so that
"2.40%" in one is never "0.024034188815561075" in another.
"""

TRADING_DAYS_PER_YEAR = 252

_PERCENT = {"total_return", "max_drawdown", "hit_rate", "exposure"}
_PERCENT_A_YEAR = {"annualised_return", "volatility", "cost_drag"}
_RATIO = {"sharpe", "sortino", "calmar"}
_RATIO_PREFIXES = ("held_out_sharpe", "walk_forward_sharpe")


def figure(name: str, value: float | None) -> str:
    if value is None:
        return "n/a"
    if name in _PERCENT:
        return f"{value:.2%}"
    if name in _PERCENT_A_YEAR:
        return f"{value:.2%}/yr"
    if name in _RATIO or name.startswith(_RATIO_PREFIXES):
        return f"{value:.2f}"
    if name == "turnover":
        return f"{value:.1f}x/yr ({value / TRADING_DAYS_PER_YEAR:.2f}x/day)"
    if name == "bars":
        return f"{value:,.0f}"
    if name == "walk_forward_win_rate":
        return f"{value:.0%}"
    return f"{value:.4g}"
