"""Applies, one at a time, each break a sceptical reviewer tried by hand, and runs the tests
that must turn red on it (docs/quality.md). Not part of the suite: ``python -m tests.breaks``.

Each break edits a copy of the project in a temporary folder, never the checkout, and
the report says for each whether its tests failed as they must.
"""

import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
COPIED = ("tradeops_assets", "resources", "bentos", "sensors", "tests", "pyproject.toml")


@dataclass(frozen=True)
class Break:
    what: str
    path: str
    old: str
    new: str
    tests: tuple[str, ...]


BREAKS = (
    Break(
        "VecTradingEnv's observation shifted one bar into the future",
        "tradeops_assets/core/env.py",
        "windows = self._windows[self._row - (self.config.window - 1)]",
        "windows = self._windows[self._row - (self.config.window - 1) + 1]",
        (
            "tests/core/test_causality.py::test_the_vectorised_env_sees_only_rows_up_to_each_decision",
        ),
    ),
    Break(
        "the feature scaler fitted on rows past the training window's end",
        "tradeops_assets/core/market.py",
        "rows = frame.filter(window.contains())",
        "rows = frame.filter(pl.col(TIMESTAMP) >= window.first)",
        (
            "tests/core/test_causality.py::"
            "test_the_scaler_is_fitted_on_the_training_window_and_nothing_after",
        ),
    ),
    Break(
        "the look-ahead detector comparing only one feature column",
        "tradeops_assets/core/features.py",
        "        for c in FEATURE_COLUMNS\n    ]\n    return int(joined",
        "        for c in FEATURE_COLUMNS[:1]\n    ]\n    return int(joined",
        ("tests/core/test_causality.py::test_a_peek_in_any_single_feature_column_is_caught",),
    ),
    Break(
        "a baseline comparison '>' turned into '>='",
        "tradeops_assets/core/promotion.py",
        'baseline_margin\n        ok = mine["sharpe"] > need',
        'baseline_margin\n        ok = mine["sharpe"] >= need',
        (
            "tests/core/test_promotion.py::"
            "test_equal_to_a_baseline_plus_its_margin_is_not_beating_it",
            "tests/core/test_properties.py::test_each_threshold_is_exact",
        ),
    ),
    Break(
        "the fold win-rate '>=' turned into '>'",
        "tradeops_assets/core/promotion.py",
        "rate >= criteria.min_fold_win_rate",
        "rate > criteria.min_fold_win_rate",
        (
            "tests/core/test_promotion.py::"
            "test_a_fold_win_rate_exactly_at_the_minimum_passes_and_one_less_fails",
        ),
    ),
    Break(
        "fold wins ignoring the baseline margin",
        "tradeops_assets/core/promotion.py",
        "max(f.sharpe[b] for b in BASELINES) + criteria.baseline_margin",
        "max(f.sharpe[b] for b in BASELINES)",
        (
            "tests/core/test_promotion.py::"
            "test_a_fold_only_counts_as_won_by_more_than_the_baseline_margin",
        ),
    ),
    Break(
        "the turnover limit doubled",
        "tradeops_assets/core/promotion.py",
        'mine["turnover"] <= criteria.max_turnover,',
        'mine["turnover"] <= criteria.max_turnover * 2,',
        (
            "tests/core/test_promotion.py::"
            "test_risk_limits_hold_exactly_at_the_limit_and_refuse_just_past_it",
        ),
    ),
    Break(
        "turnover not annualised",
        "tradeops_assets/core/backtest.py",
        '"turnover": float(traded.sum()) / years,',
        '"turnover": float(traded.sum()),',
        ("tests/core/test_backtest.py::test_turnover_and_cost_drag_are_per_year_of_bars_traded",),
    ),
    Break(
        "cost drag set to zero",
        "tradeops_assets/core/backtest.py",
        '"cost_drag": float(costs.sum()) / years,',
        '"cost_drag": 0.0,',
        ("tests/core/test_backtest.py::test_turnover_and_cost_drag_are_per_year_of_bars_traded",),
    ),
    Break(
        "the audit chain leaving 'actor' out of the hash",
        "tradeops_assets/core/audit.py",
        'body = {k: v for k, v in record.items() if k != "hash"}',
        'body = {k: v for k, v in record.items() if k not in ("hash", "actor")}',
        ("tests/core/test_audit.py::test_every_field_of_a_record_is_under_its_hash",),
    ),
    Break(
        "request validation accepting duplicate timestamps",
        "tradeops_assets/core/request.py",
        "if not (steps > 0).all():",
        "if not (steps >= 0).all():",
        (
            "tests/core/test_serving.py::"
            "test_a_bar_out_of_order_twice_or_inconsistent_is_refused_by_name",
            "tests/core/test_properties.py::test_a_timestamp_that_repeats_or_goes_back_is_refused",
        ),
    ),
    Break(
        "checkpoints taken mid-rollout (a resumed run overshoots the step count)",
        "tradeops_assets/core/training.py",
        "    def _on_rollout_start(self) -> None:\n        if self.num_timesteps",
        "    def _on_step(self) -> bool:\n        if self.num_timesteps",
        (
            "tests/core/test_training.py::"
            "test_a_run_stopped_mid_rollout_resumes_to_the_same_weights",
        ),
    ),
    Break(
        "a resumed run not restoring the random generators",
        "tradeops_assets/core/training.py",
        '        torch.set_rng_state(state["torch"])\n',
        "",
        (
            "tests/core/test_training.py::"
            "test_a_run_stopped_mid_rollout_resumes_to_the_same_weights",
        ),
    ),
)


def apply(root: Path, broken: Break) -> None:
    path = root / broken.path
    source = path.read_text()
    if source.count(broken.old) != 1:
        raise SystemExit(f"break '{broken.what}': the code it edits has moved ({broken.path})")
    path.write_text(source.replace(broken.old, broken.new))


def caught(root: Path, broken: Break) -> bool:
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", *broken.tests],
        cwd=root,
        env={"PYTHONPATH": str(root), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        check=False,
    )
    return done.returncode == 1  # tests ran and failed (not a collection or usage error)


def main() -> int:
    missed = []
    for broken in BREAKS:
        with tempfile.TemporaryDirectory() as tmp:
            root = Path(tmp)
            for name in COPIED:
                source = REPO / name
                if source.is_dir():
                    shutil.copytree(
                        source, root / name, ignore=shutil.ignore_patterns("__pycache__")
                    )
                else:
                    shutil.copy(source, root / name)
            apply(root, broken)
            ok = caught(root, broken)
        print(f"{'caught' if ok else 'MISSED'}: {broken.what}", flush=True)
        if not ok:
            missed.append(broken.what)
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
