"""The rules market bars must pass before anything is computed from them.

Each rule is one blocking Dagster check, so an auditor sees which rule failed,
on how many rows, and the first offending rows, rather than one opaque verdict.
Rules never mutate or drop data: the raw bars stay stored for inspection.
"""

from collections.abc import Callable
from dataclasses import dataclass, field

import pandera.errors as pa_errors
import pandera.polars as pa
import polars as pl

from tradeops_assets.core import schemas
from tradeops_assets.core.calendars import CalendarChoice, trading_gaps
from tradeops_assets.core.schemas import PRICE_COLUMNS, SYMBOL, TIMESTAMP

_ROW = "__row"
SAMPLE_ROWS = 5


@dataclass(frozen=True)
class ValidationPolicy:
    """Thresholds a data engineer tunes per market, and the calendars gaps are measured on.

    ``max_gap_ratio``: a gap between consecutive bars of one symbol longer than this
    multiple of its median bar spacing is a hole in the data. Both are measured in
    open-market time on the symbol's trading calendar (``core.calendars``), so a
    weekend or an exchange holiday is no gap and hourly FX bars pass as daily ones
    do; 7 lets a week of missing daily sessions through and nothing longer.
    ``max_abs_log_return``: a single-bar move larger than this (0.4 = +49% / -33%) is
    far likelier a bad print than a market move.
    """

    max_gap_ratio: float = 7.0
    max_abs_log_return: float = 0.4
    calendars: CalendarChoice = field(default_factory=CalendarChoice)


@dataclass(frozen=True)
class RuleResult:
    rule: str
    description: str
    passed: bool
    failing_rows: int
    sample: pl.DataFrame = field(repr=False)
    rows: pl.Series = field(repr=False, default_factory=lambda: pl.Series([], dtype=pl.UInt32))
    """Positions of the offending rows in the data as delivered; all rows if not evaluated."""
    details: dict = field(default_factory=dict)
    """What the verdict was measured against (the gap rule: each symbol's calendar)."""

    @property
    def message(self) -> str:
        if self.passed:
            return f"{self.rule}: passed"
        return f"{self.rule}: {self.failing_rows} row(s) break '{self.description}'"


@dataclass(frozen=True)
class Rule:
    name: str
    description: str
    find: Callable[[pl.DataFrame, ValidationPolicy], pl.Series]
    """Returns the positions (row numbers in the data as delivered) that break the rule."""
    explain: Callable[[pl.DataFrame, ValidationPolicy], dict] | None = None

    def evaluate(self, bars: pl.DataFrame, policy: ValidationPolicy) -> RuleResult:
        if self.name != SCHEMA_RULE and not _schema_ok(bars):
            return RuleResult(
                self.name,
                self.description,
                passed=False,
                failing_rows=bars.height,
                sample=pl.DataFrame({"reason": [f"not evaluated: {SCHEMA_RULE} failed"]}),
                rows=pl.Series(range(bars.height), dtype=pl.UInt32),
            )
        rows = self.find(bars, policy).unique().sort()
        sample = bars.with_row_index(_ROW)[rows.head(SAMPLE_ROWS).to_list()] if len(rows) else None
        return RuleResult(
            self.name,
            self.description,
            passed=len(rows) == 0,
            failing_rows=len(rows),
            sample=sample if sample is not None else bars.head(0).with_row_index(_ROW),
            rows=rows,
            details=self.explain(bars, policy) if self.explain else {},
        )


def _schema_ok(bars: pl.DataFrame) -> bool:
    try:
        schemas.BAR_SCHEMA.validate(bars, lazy=True)
    except (pa_errors.SchemaError, pa_errors.SchemaErrors):
        return False
    return True


def _pandera_rows(model: type[pa.DataFrameModel]) -> Callable:
    def find(bars: pl.DataFrame, _: ValidationPolicy) -> pl.Series:
        try:
            model.validate(bars, lazy=True)
        except pa_errors.SchemaErrors as exc:
            index = exc.failure_cases.get_column("index").drop_nulls()
            if index.len() == 0:  # a frame-level failure (e.g. missing column) has no row
                return pl.Series(range(bars.height), dtype=pl.UInt32)
            return index.cast(pl.UInt32)
        return pl.Series([], dtype=pl.UInt32)

    return find


def _schema_rows(bars: pl.DataFrame, policy: ValidationPolicy) -> pl.Series:
    if _schema_ok(bars):
        return pl.Series([], dtype=pl.UInt32)
    return pl.Series(range(max(bars.height, 1)), dtype=pl.UInt32)


def _where(bars: pl.DataFrame, predicate: pl.Expr) -> pl.Series:
    return bars.with_row_index(_ROW).filter(predicate).get_column(_ROW)


def _non_finite(bars: pl.DataFrame, _: ValidationPolicy) -> pl.Series:
    numeric = [*PRICE_COLUMNS, "volume"]
    bad = pl.any_horizontal([pl.col(c).is_null() | ~pl.col(c).is_finite() for c in numeric])
    return _where(bars, bad | pl.col(TIMESTAMP).is_null() | pl.col(SYMBOL).is_null())


def _ohlc_inconsistent(bars: pl.DataFrame, _: ValidationPolicy) -> pl.Series:
    o, h, lo, c = (pl.col(x) for x in PRICE_COLUMNS)
    bad = (h < lo) | (o > h) | (o < lo) | (c > h) | (c < lo)
    judged = pl.all_horizontal([pl.col(x).is_finite() for x in PRICE_COLUMNS])  # NaN: bars_finite
    return _where(bars, (bad & judged).fill_null(False))


def _duplicates(bars: pl.DataFrame, _: ValidationPolicy) -> pl.Series:
    return _where(bars, pl.struct(SYMBOL, TIMESTAMP).is_duplicated())


def _unsorted(bars: pl.DataFrame, _: ValidationPolicy) -> pl.Series:
    went_back = pl.col(TIMESTAMP).diff().over(SYMBOL) < pl.duration(microseconds=0)
    return _where(bars, went_back.fill_null(False))


def _sorted_view(bars: pl.DataFrame) -> pl.DataFrame:
    return bars.with_row_index(_ROW).sort(SYMBOL, TIMESTAMP, maintain_order=True)


def _gaps(bars: pl.DataFrame, policy: ValidationPolicy) -> pl.Series:
    view = _sorted_view(bars)
    gaps, _ = trading_gaps(view, policy.calendars)
    view = view.with_columns(gaps.alias("gap")).with_columns(
        median_gap=pl.col("gap").filter(pl.col("gap") > 0).median().over(SYMBOL)
    )
    return view.filter(pl.col("gap") > pl.col("median_gap") * policy.max_gap_ratio).get_column(_ROW)


def calendars_used(bars: pl.DataFrame, choice: CalendarChoice) -> dict[str, dict[str, str]]:
    """Each symbol's trading calendar, and whether it was named or inferred from the bars."""
    _, used = trading_gaps(_sorted_view(bars), choice)
    return {
        "calendars": {
            symbol: {
                "calendar": calendar.name,
                "chosen": "inferred (auto)"
                if choice.name_for(symbol).lower() == "auto"
                else "configured",
            }
            for symbol, calendar in used.items()
        }
    }


def _jumps(bars: pl.DataFrame, policy: ValidationPolicy) -> pl.Series:
    view = _sorted_view(bars).with_columns(move=pl.col("close").log().diff().over(SYMBOL).abs())
    return view.filter(
        (pl.col("move") > policy.max_abs_log_return) & pl.col("move").is_finite()
    ).get_column(_ROW)


SCHEMA_RULE = "bars_schema"
RULES: tuple[Rule, ...] = (
    Rule(
        SCHEMA_RULE,
        "columns timestamp, symbol, open, high, low, close, volume with canonical dtypes",
        _schema_rows,
    ),
    Rule("bars_finite", "no null, NaN or infinite timestamp, symbol, price or volume", _non_finite),
    Rule(
        "bars_positive_prices",
        "open, high, low and close are > 0",
        _pandera_rows(schemas.PositivePrices),
    ),
    Rule("bars_ohlc_consistent", "low <= open, close <= high", _ohlc_inconsistent),
    Rule("bars_non_negative_volume", "volume >= 0", _pandera_rows(schemas.NonNegativeVolume)),
    Rule("bars_unique", "one bar per (symbol, timestamp)", _duplicates),
    Rule("bars_sorted", "timestamps increase within each symbol in the order delivered", _unsorted),
    Rule(
        "bars_no_gaps",
        "no gap between bars beyond max_gap_ratio x the symbol's median spacing, "
        "both in open-market time on the symbol's trading calendar",
        _gaps,
        lambda bars, policy: calendars_used(bars, policy.calendars),
    ),
    Rule("bars_no_jumps", "no single-bar |log return| beyond max_abs_log_return", _jumps),
)
RULES_BY_NAME = {rule.name: rule for rule in RULES}


def validate_bars(bars: pl.DataFrame, policy: ValidationPolicy | None = None) -> list[RuleResult]:
    policy = policy or ValidationPolicy()
    return [rule.evaluate(bars, policy) for rule in RULES]
