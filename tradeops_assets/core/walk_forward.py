"""Walk-forward evaluation: the recipe retrained on each fold's past and traded on its future.

One held-out window can flatter any policy. Walk-forward asks whether the
*recipe* (same config, every seed) keeps beating the baselines when it is
retrained on what precedes each later window and traded on that window.
"""

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl

from tradeops_assets.core import training
from tradeops_assets.core.backtest import CHALLENGER, MOMENTUM_LOOKBACK, TradedPolicy, backtest
from tradeops_assets.core.errors import ConfigError
from tradeops_assets.core.recipe import TrainConfig
from tradeops_assets.core.summary import FoldResult
from tradeops_assets.core.windows import Window, at_fraction, bar_at, split_at, to_datetime64


@dataclass(frozen=True)
class Fold:
    train: Window
    test: Window


def folds_of(
    stamps: np.ndarray, folds: int, first_test_fraction: float, expanding: bool
) -> list[Fold]:
    """``folds`` consecutive test windows tiling the bars from ``first_test_fraction`` on.

    Each fold trains on the bars before its test window: all of them (expanding) or
    as long a span as the first fold had (rolling). Test windows share no bar, so
    every bar is judged once, and no fold trains on its own test bars. Boundaries
    are snapped to bars (``core.windows``).
    """
    if folds < 1 or not 0 < first_test_fraction < 1:
        raise ConfigError(
            f"walk-forward needs folds >= 1 and 0 < first_test_fraction < 1, got "
            f"{folds} folds from {first_test_fraction}"
        )
    start = at_fraction(stamps, first_test_fraction)
    step = (bar_at(stamps, -1) - start) / folds
    cuts = [start + step * i for i in range(folds)]
    names = ["first training", *(f"fold {i} test" for i in range(folds))]
    windows = split_at(stamps, cuts, names)
    train_span = windows[1].first - windows[0].first
    out = []
    for test in windows[1:]:
        end = int(np.searchsorted(stamps, to_datetime64(test.first))) - 1
        begin = (
            0 if expanding else int(np.searchsorted(stamps, to_datetime64(test.first - train_span)))
        )
        out.append(Fold(Window(bar_at(stamps, begin), bar_at(stamps, end)), test))
    return out


def walk_forward(
    frame: pl.DataFrame,
    folds: list[Fold],
    configs: list[TrainConfig],
    workdir: Path,
    momentum_lookback: int = MOMENTUM_LOOKBACK,
    report: Callable[[FoldResult], None] | None = None,
) -> list[FoldResult]:
    """Retrains the recipe (a ``TrainConfig`` per seed) on each fold; tests it out of sample."""
    rows = []
    for index, fold in enumerate(folds):
        for config in configs:
            result = training.train(
                frame, config, fold.train, Path(workdir) / f"fold-{index}" / f"seed-{config.seed}"
            )
            traded = TradedPolicy(config.spec.export(result.model), result.normaliser)
            test = backtest(frame, fold.test, config.env, {CHALLENGER: traded}, momentum_lookback)
            row = FoldResult(
                fold=index,
                seed=config.seed,
                train=fold.train,
                test=fold.test,
                sharpe={s: test.metric(s, "sharpe") for s in test.strategies},
                max_drawdown=test.metric(CHALLENGER, "max_drawdown"),
            )
            if report is not None:
                report(row)
            rows.append(row)
    return rows
