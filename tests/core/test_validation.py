import polars as pl
import pytest

from tests.corruptions import CORRUPTIONS, ROW
from tradeops_assets.core.calendars import ALWAYS_OPEN, CalendarChoice
from tradeops_assets.core.validation import RULES, ValidationPolicy, validate_bars


def failed(bars, policy=None) -> set[str]:
    return {r.rule for r in validate_bars(bars, policy) if not r.passed}


def test_real_sample_data_passes_every_rule(sample_bars):
    assert failed(sample_bars) == set()


def test_synthetic_data_passes_every_rule(synthetic_bars):
    assert failed(synthetic_bars) == set()


def test_every_rule_has_a_corruption_test():
    assert set(CORRUPTIONS) | {"bars_schema"} == {r.name for r in RULES}


@pytest.mark.parametrize("rule", sorted(CORRUPTIONS))
def test_each_corruption_fails_exactly_its_rule_and_names_the_rows(rule, synthetic_bars):
    bad = CORRUPTIONS[rule](synthetic_bars)
    results = {r.rule: r for r in validate_bars(bad)}
    assert {name for name, r in results.items() if not r.passed} == {rule}
    result = results[rule]
    assert result.failing_rows >= 1
    assert rule in result.message
    assert str(result.failing_rows) in result.message
    assert result.sample.height >= 1
    # Rows are reported by their position in the data as delivered.
    assert min(result.sample["__row"].to_list()) in range(ROW - 1, ROW + 2)


def test_schema_rule_catches_missing_columns_and_wrong_dtypes(synthetic_bars):
    assert failed(synthetic_bars.drop("volume")) >= {"bars_schema"}
    wrong = synthetic_bars.with_columns(pl.col("close").cast(pl.Float32))
    results = {r.rule: r for r in validate_bars(wrong)}
    assert not results["bars_schema"].passed
    # Value rules refuse to judge data whose layout is wrong, rather than pass it.
    assert not results["bars_finite"].passed
    assert "not evaluated" in results["bars_finite"].sample["reason"][0]


def test_thresholds_are_policy_not_code(synthetic_bars):
    spiky = CORRUPTIONS["bars_no_jumps"](synthetic_bars)
    assert "bars_no_jumps" not in failed(spiky, ValidationPolicy(max_abs_log_return=1.0))
    # On the wall clock a weekend is 3x the daily spacing; on the bars' own 24x5 calendar it
    # is no gap at all, and a threshold of 2 still lets every weekend through.
    wall_clock = ValidationPolicy(max_gap_ratio=2.0, calendars=CalendarChoice(ALWAYS_OPEN))
    assert "bars_no_gaps" in failed(synthetic_bars, wall_clock)
    assert "bars_no_gaps" not in failed(synthetic_bars, ValidationPolicy(max_gap_ratio=2.0))


def test_validation_never_changes_the_data(synthetic_bars):
    bad = CORRUPTIONS["bars_sorted"](synthetic_bars)
    before = bad.clone()
    validate_bars(bad)
    assert bad.equals(before)
