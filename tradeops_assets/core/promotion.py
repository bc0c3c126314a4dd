"""The promotion gate: may this challenger replace the champion?

One out-of-sample window can flatter any policy, so the gate asks three
questions and states each answer with its figure: does the registered challenger
beat the champion and every baseline on the held-out window; does the training
recipe (same config, every seed, retrained per walk-forward fold) beat the
best baseline in enough folds; and does it stay inside the risk limits. A
criterion that cannot be judged (no champion yet) says so instead of passing
silently.
"""

from dataclasses import asdict, dataclass

from tradeops_assets.core.backtest import BASELINES, CHALLENGER, CHAMPION
from tradeops_assets.core.display import figure
from tradeops_assets.core.summary import BacktestSummary


@dataclass(frozen=True)
class GateCriteria:
    baseline_margin: float = 0.0  # Sharpe points above each baseline
    champion_margin: float = 0.0  # Sharpe points above the champion
    min_fold_win_rate: float = 0.5  # share of (fold, seed) pairs beating the best baseline
    max_drawdown: float = 0.25
    max_turnover: float = 260.0  # one-way, in units of capital per year: ~a full flip a day


@dataclass(frozen=True)
class Criterion:
    name: str
    value: float | None
    threshold: float | None
    passed: bool
    why: str

    @property
    def verdict(self) -> str:
        """'not applicable' when there was nothing to judge: never dressed up as a pass."""
        if self.value is None:
            return "not applicable"
        return "pass" if self.passed else "FAIL"


@dataclass(frozen=True)
class Verdict:
    passed: bool
    criteria: tuple[Criterion, ...]

    @property
    def reason(self) -> str:
        failed = [c.why for c in self.criteria if not c.passed]
        if failed:
            return "refused: " + "; ".join(failed)
        return "promoted: every criterion passed"

    def as_dict(self) -> dict:
        return {
            "passed": self.passed,
            "reason": self.reason,
            "criteria": [asdict(c) for c in self.criteria],
        }

    @property
    def failed(self) -> tuple[Criterion, ...]:
        return tuple(c for c in self.criteria if not c.passed)

    def markdown(self) -> str:
        lines = ["| criterion | value | threshold | verdict | why |", "|---|---|---|---|---|"]
        for c in self.criteria:
            value, threshold = figure(c.name, c.value), figure(c.name, c.threshold)
            lines.append(f"| {c.name} | {value} | {threshold} | {c.verdict} | {c.why} |")
        return "\n".join(lines)


def judge(summary: BacktestSummary, criteria: GateCriteria) -> Verdict:
    """Judges ``backtest_report``'s summary against ``criteria``."""
    held = summary.metrics
    mine = held[CHALLENGER]
    out: list[Criterion] = []
    for baseline in BASELINES:
        need = held[baseline]["sharpe"] + criteria.baseline_margin
        ok = mine["sharpe"] > need
        out.append(
            Criterion(
                f"held_out_sharpe_vs_{baseline}",
                mine["sharpe"],
                need,
                ok,
                f"held-out Sharpe {mine['sharpe']:.3f} {'>' if ok else 'does not beat'} {baseline} "
                f"{held[baseline]['sharpe']:.3f} + margin {criteria.baseline_margin:.3f}",
            )
        )
    if CHAMPION in held:
        need = held[CHAMPION]["sharpe"] + criteria.champion_margin
        ok = mine["sharpe"] > need
        out.append(
            Criterion(
                "held_out_sharpe_vs_champion",
                mine["sharpe"],
                need,
                ok,
                f"held-out Sharpe {mine['sharpe']:.3f} {'>' if ok else 'does not beat'} champion "
                f"v{summary.champion_version} {held[CHAMPION]['sharpe']:.3f} "
                f"+ margin {criteria.champion_margin:.3f}",
            )
        )
    else:
        out.append(
            Criterion(
                "held_out_sharpe_vs_champion",
                None,
                None,
                True,
                "vs champion: not applicable (no champion yet); the first policy is judged "
                "against the baselines only",
            )
        )
    folds = summary.folds
    wins = [
        f.sharpe[CHALLENGER] > max(f.sharpe[b] for b in BASELINES) + criteria.baseline_margin
        for f in folds
    ]
    rate = sum(wins) / len(wins) if wins else 0.0
    out.append(
        Criterion(
            "walk_forward_win_rate",
            rate,
            criteria.min_fold_win_rate,
            bool(wins) and rate >= criteria.min_fold_win_rate,
            f"beat the best baseline in {sum(wins)} of {len(wins)} (fold, seed) pairs "
            f"(needs {criteria.min_fold_win_rate:.0%})",
        )
    )
    worst = max([mine["max_drawdown"], *(f.max_drawdown for f in folds)])
    out.append(
        Criterion(
            "max_drawdown",
            worst,
            criteria.max_drawdown,
            worst <= criteria.max_drawdown,
            f"worst drawdown {worst:.2%} (held-out and folds) vs limit {criteria.max_drawdown:.2%}",
        )
    )
    out.append(
        Criterion(
            "turnover",
            mine["turnover"],
            criteria.max_turnover,
            mine["turnover"] <= criteria.max_turnover,
            f"held-out turnover {mine['turnover']:.1f}x a year vs limit "
            f"{criteria.max_turnover:.1f}x",
        )
    )
    return Verdict(all(c.passed for c in out), tuple(out))


@dataclass(frozen=True)
class GateDecision:
    """A verdict bound to the exact report it judged (by SHA-256) and the limits it applied."""

    verdict: Verdict
    report_sha256: str
    challenger_version: str
    champion_version: str | None
    criteria: GateCriteria

    @property
    def passed(self) -> bool:
        return self.verdict.passed

    @property
    def reason(self) -> str:
        return self.verdict.reason

    def to_dict(self) -> dict:
        return {
            **self.verdict.as_dict(),
            "report_sha256": self.report_sha256,
            "challenger_version": self.challenger_version,
            "champion_version": self.champion_version,
            "gate": asdict(self.criteria),
        }

    @classmethod
    def from_dict(cls, data: dict) -> "GateDecision":
        criteria = tuple(Criterion(**c) for c in data["criteria"])
        return cls(
            verdict=Verdict(bool(data["passed"]), criteria),
            report_sha256=str(data["report_sha256"]),
            challenger_version=str(data["challenger_version"]),
            champion_version=data["champion_version"],
            criteria=GateCriteria(**data["gate"]),
        )
