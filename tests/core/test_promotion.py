import copy
from datetime import datetime

import pytest

from tradeops_assets.core import promotion
from tradeops_assets.core.promotion import GateCriteria
from tradeops_assets.core.summary import BacktestSummary, FoldResult
from tradeops_assets.core.windows import Window

YEAR = Window(datetime(2020, 1, 2), datetime(2020, 12, 31))


def judge(report: dict, criteria: GateCriteria) -> promotion.Verdict:
    """The gate on a summary written as the report's JSON would carry it."""
    folds = tuple(
        FoldResult(i, 0, YEAR, YEAR, f["sharpe"], f["max_drawdown"])
        for i, f in enumerate(report["folds"])
    )
    summary = BacktestSummary(
        challenger_version=report["challenger_version"],
        champion_version=report["champion_version"],
        challenger_run_id="run",
        data_version="md5",
        held_out=YEAR,
        metrics=report["held_out"],
        folds=folds,
    )
    assert BacktestSummary.from_json(summary.to_json()) == summary
    return promotion.judge(summary, criteria)


def metrics(sharpe, drawdown=0.05, turnover=50.0):
    return {"sharpe": sharpe, "max_drawdown": drawdown, "turnover": turnover}


def fold(challenger, best_baseline=0.5, drawdown=0.05):
    sharpe = {"challenger": challenger, "buy_and_hold": best_baseline, "flat": 0.0, "momentum": -1}
    return {"sharpe": sharpe, "max_drawdown": drawdown}


GOOD = {
    "challenger_version": "2",
    "champion_version": "1",
    "held_out": {
        "challenger": metrics(2.0),
        "champion": metrics(1.5),
        "buy_and_hold": metrics(0.9),
        "flat": metrics(0.0),
        "momentum": metrics(0.3),
    },
    "folds": [fold(2.0), fold(1.8), fold(0.2)],
}


def test_a_challenger_better_on_every_count_is_promoted():
    verdict = judge(GOOD, GateCriteria())
    assert verdict.passed
    assert verdict.reason == "promoted: every criterion passed"
    names = {c.name for c in verdict.criteria}
    assert {"held_out_sharpe_vs_champion", "walk_forward_win_rate", "turnover"} <= names


def test_a_challenger_worse_than_the_champion_is_refused_with_the_figures():
    worse = copy.deepcopy(GOOD)
    worse["held_out"]["challenger"]["sharpe"] = 1.4
    verdict = judge(worse, GateCriteria())
    assert not verdict.passed
    assert "held-out Sharpe 1.400 does not beat champion v1 1.500 + margin 0.000" in verdict.reason
    failed = [c for c in verdict.criteria if not c.passed]
    assert [c.name for c in failed] == ["held_out_sharpe_vs_champion"]


def test_an_equal_policy_does_not_beat_the_champion():
    same = copy.deepcopy(GOOD)
    same["held_out"]["champion"]["sharpe"] = 2.0
    assert not judge(same, GateCriteria()).passed


def test_margins_are_configurable():
    assert not judge(GOOD, GateCriteria(champion_margin=0.6)).passed
    assert not judge(GOOD, GateCriteria(baseline_margin=1.2)).passed


def test_one_lucky_window_cannot_promote():
    lucky = copy.deepcopy(GOOD)
    lucky["folds"] = [fold(3.0), fold(0.1), fold(-0.5)]
    verdict = judge(lucky, GateCriteria())
    assert not verdict.passed
    assert "beat the best baseline in 1 of 3 (fold, seed) pairs" in verdict.reason


@pytest.mark.parametrize(
    ("where", "limit_breach", "criterion"),
    [
        ("held_out", {"max_drawdown": 0.4}, "max_drawdown"),
        ("held_out", {"turnover": 900.0}, "turnover"),
    ],
)
def test_risk_limits_refuse_even_a_profitable_policy(where, limit_breach, criterion):
    risky = copy.deepcopy(GOOD)
    risky[where]["challenger"].update(limit_breach)
    verdict = judge(risky, GateCriteria())
    assert [c.name for c in verdict.criteria if not c.passed] == [criterion]


def test_a_fold_drawdown_counts_too():
    risky = copy.deepcopy(GOOD)
    risky["folds"][1]["max_drawdown"] = 0.5
    assert not judge(risky, GateCriteria()).passed


def test_the_first_policy_is_judged_against_the_baselines_only():
    first = copy.deepcopy(GOOD)
    del first["held_out"]["champion"]
    first["champion_version"] = None
    verdict = judge(first, GateCriteria())
    assert verdict.passed
    champion = next(c for c in verdict.criteria if c.name == "held_out_sharpe_vs_champion")
    assert champion.value is None
    assert "no champion yet" in champion.why
    first["held_out"]["challenger"]["sharpe"] = 0.8  # below buy-and-hold's 0.9
    assert not judge(first, GateCriteria()).passed


def with_held_out(**sharpes) -> dict:
    report = copy.deepcopy(GOOD)
    for strategy, value in sharpes.items():
        report["held_out"][strategy]["sharpe"] = value
    return report


def criterion(verdict, name: str):
    return next(c for c in verdict.criteria if c.name == name)


@pytest.mark.parametrize("baseline", ["buy_and_hold", "flat", "momentum", "champion"])
def test_equal_to_a_baseline_plus_its_margin_is_not_beating_it(baseline):
    margin = "champion_margin" if baseline == "champion" else "baseline_margin"
    criteria = GateCriteria(**{margin: 0.25})
    at = judge(with_held_out(challenger=0.75, **{baseline: 0.5}), criteria)
    assert not criterion(at, f"held_out_sharpe_vs_{baseline}").passed
    above = judge(with_held_out(challenger=0.75 + 1e-9, **{baseline: 0.5}), criteria)
    assert criterion(above, f"held_out_sharpe_vs_{baseline}").passed


def test_a_fold_win_rate_exactly_at_the_minimum_passes_and_one_less_fails():
    exactly = copy.deepcopy(GOOD)
    exactly["folds"] = [fold(2.0), fold(2.0), fold(0.1), fold(0.1)]  # 2 of 4
    assert criterion(
        judge(exactly, GateCriteria(min_fold_win_rate=0.5)), "walk_forward_win_rate"
    ).passed
    short = copy.deepcopy(GOOD)
    short["folds"] = [fold(2.0), fold(0.1), fold(0.1), fold(0.1)]
    assert not criterion(
        judge(short, GateCriteria(min_fold_win_rate=0.5)), "walk_forward_win_rate"
    ).passed


def test_a_fold_only_counts_as_won_by_more_than_the_baseline_margin():
    narrow = copy.deepcopy(GOOD)
    narrow["folds"] = [fold(1.0, best_baseline=0.9)] * 3  # ahead by 0.1, margin 0.25
    verdict = judge(narrow, GateCriteria(baseline_margin=0.25, min_fold_win_rate=0.5))
    assert criterion(verdict, "walk_forward_win_rate").value == 0.0
    wide = copy.deepcopy(GOOD)
    wide["folds"] = [fold(1.2, best_baseline=0.9)] * 3
    verdict = judge(wide, GateCriteria(baseline_margin=0.25, min_fold_win_rate=0.5))
    assert criterion(verdict, "walk_forward_win_rate").value == 1.0


@pytest.mark.parametrize(
    ("name", "field", "limit"),
    [("turnover", "turnover", 260.0), ("max_drawdown", "max_drawdown", 0.25)],
)
def test_risk_limits_hold_exactly_at_the_limit_and_refuse_just_past_it(name, field, limit):
    at = copy.deepcopy(GOOD)
    at["held_out"]["challenger"][field] = limit
    assert criterion(judge(at, GateCriteria()), name).passed
    past = copy.deepcopy(GOOD)
    past["held_out"]["challenger"][field] = limit * 1.01
    assert not criterion(judge(past, GateCriteria()), name).passed
    assert GateCriteria().max_turnover == 260.0  # the documented default, not a multiple of it


def test_a_gate_decision_survives_its_json_and_reads_as_a_table():
    verdict = judge(with_held_out(challenger=0.4), GateCriteria())
    decision = promotion.GateDecision(verdict, "ab" * 32, "2", "1", GateCriteria(max_turnover=100))
    data = decision.to_dict()
    assert data["passed"] is False
    assert data["report_sha256"] == "ab" * 32
    assert data["gate"]["max_turnover"] == 100
    assert data["reason"] == verdict.reason
    assert promotion.GateDecision.from_dict(data) == decision
    table = verdict.markdown().splitlines()
    assert table[:2] == [
        "| criterion | value | threshold | verdict | why |",
        "|---|---|---|---|---|",
    ]
    promoted = promotion.GateDecision(
        judge(GOOD, GateCriteria()), "cd" * 32, "2", "1", GateCriteria()
    )
    assert promotion.GateDecision.from_dict(promoted.to_dict()).verdict.passed is True
    row = next(r for r in table if r.startswith("| held_out_sharpe_vs_buy_and_hold "))
    assert row.startswith("| held_out_sharpe_vs_buy_and_hold | 0.40 | 0.90 | FAIL | ")
    assert next(c.name for c in decision.verdict.failed) == "held_out_sharpe_vs_buy_and_hold"
    alone = copy.deepcopy(GOOD) | {"champion_version": None}
    del alone["held_out"]["champion"]
    first = judge(alone, GateCriteria())
    assert "| held_out_sharpe_vs_champion | n/a | n/a | not applicable |" in first.markdown()
    shown = {r.split(" | ")[0][2:]: r.split(" | ")[1:4] for r in first.markdown().splitlines()[2:]}
    assert shown["walk_forward_win_rate"][:2] == ["67%", "50%"]  # 2 of 3 folds
    assert shown["max_drawdown"][1] == "25.00%"
    assert shown["turnover"][1] == "260.0x/yr (1.03x/day)"


def test_every_criterion_states_its_figure_its_threshold_and_why_in_words():
    """What the auditor reads: each criterion's value, threshold and sentence, exactly."""
    report = copy.deepcopy(GOOD)
    report["folds"] = [fold(2.0), fold(0.5), fold(0.2, drawdown=0.07)]  # a tie is not a win
    verdict = judge(report, GateCriteria(baseline_margin=0.0, champion_margin=0.1))
    got = {c.name: (c.value, c.threshold, c.passed, c.why) for c in verdict.criteria}
    assert got["held_out_sharpe_vs_buy_and_hold"] == (
        2.0,
        0.9,
        True,
        "held-out Sharpe 2.000 > buy_and_hold 0.900 + margin 0.000",
    )
    assert got["held_out_sharpe_vs_champion"] == (
        2.0,
        pytest.approx(1.6),
        True,
        "held-out Sharpe 2.000 > champion v1 1.500 + margin 0.100",
    )
    assert got["walk_forward_win_rate"] == (
        pytest.approx(1 / 3),
        0.5,
        False,
        "beat the best baseline in 1 of 3 (fold, seed) pairs (needs 50%)",
    )
    assert got["max_drawdown"] == (
        0.07,
        0.25,
        True,
        "worst drawdown 7.00% (held-out and folds) vs limit 25.00%",
    )
    assert got["turnover"][:3] == (50.0, 260.0, True)
    assert got["turnover"][3] == "held-out turnover 50.0x a year vs limit 260.0x"
    weak = judge(with_held_out(challenger=0.5), GateCriteria())
    lost = next(c for c in weak.criteria if c.name == "held_out_sharpe_vs_champion")
    assert lost.why == "held-out Sharpe 0.500 does not beat champion v1 1.500 + margin 0.000"
    behind = next(c for c in weak.criteria if c.name == "held_out_sharpe_vs_buy_and_hold")
    assert behind.why == "held-out Sharpe 0.500 does not beat buy_and_hold 0.900 + margin 0.000"
    no_folds = judge(copy.deepcopy(GOOD) | {"folds": []}, GateCriteria())
    rate = next(c for c in no_folds.criteria if c.name == "walk_forward_win_rate")
    assert (rate.value, rate.passed) == (0.0, False)  # no evidence is not a pass
    first = copy.deepcopy(GOOD) | {"champion_version": None}
    del first["held_out"]["champion"]
    (alone,) = [c for c in judge(first, GateCriteria()).criteria if "champion" in c.name]
    assert alone.why == (
        "vs champion: not applicable (no champion yet); the first policy is judged against "
        "the baselines only"
    )
    assert alone.verdict == "not applicable"
