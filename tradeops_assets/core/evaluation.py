"""The challenger judged out of sample: a held-out backtest beside its baselines and the
champion, then the recipe walked forward, summed up as one ``BacktestSummary``."""

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from tradeops_assets.core.backtest import (
    CHALLENGER,
    CHAMPION,
    METRICS,
    MOMENTUM_LOOKBACK,
    Backtest,
    backtest,
)
from tradeops_assets.core.recipe import RegisteredPolicy
from tradeops_assets.core.summary import BacktestSummary, FoldResult
from tradeops_assets.core.walk_forward import folds_of, walk_forward
from tradeops_assets.core.windows import after, bar_times


@dataclass(frozen=True)
class EvaluationOptions:
    folds: int = 3
    first_test_fraction: float = 0.55
    expanding: bool = True
    momentum_lookback: int = MOMENTUM_LOOKBACK
    fold_timesteps: int | None = None
    """Training steps per fold; None trains each fold as long as the challenger was."""


def evaluate(
    frame: pl.DataFrame,
    challenger: RegisteredPolicy,
    champion: RegisteredPolicy | None,
    options: EvaluationOptions,
    workdir: Path,
    report: Callable[[FoldResult], None] | None = None,
    *,
    data_version: str,
    code_version: str = "",
    run_id: str = "",
) -> tuple[BacktestSummary, Backtest]:
    """Trades the challenger (and champion) on the held-out bars, then walks the recipe forward.

    The held-out window starts on the first bar after the challenger's validation
    window and runs to the latest bar in ``frame``, which grows as months arrive.
    ``data_version`` names ``frame``; ``code_version`` and ``run_id`` say what ran it.
    """
    recipe = challenger.recipe
    stamps = bar_times(frame)
    held_out = after(stamps, recipe.validation_window)
    policies = {CHALLENGER: challenger}
    if champion is not None:
        policies[CHAMPION] = champion
    result = backtest(frame, held_out, recipe.env, policies, options.momentum_lookback)
    folds = folds_of(stamps, options.folds, options.first_test_fraction, options.expanding)
    configs = [recipe.for_seed(seed, options.fold_timesteps) for seed in recipe.seeds]
    rows = walk_forward(frame, folds, configs, workdir, options.momentum_lookback, report)
    metrics = {s: {m: result.metric(s, m) for m in METRICS} for s in result.strategies}
    summary = BacktestSummary(
        challenger_version=challenger.version,
        champion_version=champion.version if champion else None,
        challenger_run_id=challenger.run_id,
        data_version=data_version,
        held_out=held_out,
        metrics=metrics,
        folds=tuple(rows),
        code_version=code_version,
        run_id=run_id,
        options=dict(options.__dict__),
    )
    return summary, result
