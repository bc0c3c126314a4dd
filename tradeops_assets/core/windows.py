"""Time windows that start and end on bars the data actually holds.

A boundary given as a fraction of history or as a calendar date almost never
falls on a bar: on daily bars 70% of the way through lands at some minute of a
weekend. Every train, validation, held-out and fold boundary is snapped to the
first bar at or after it, so what a report or a registered recipe names is
exactly the bars that were used, and consecutive windows share no bar.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np
import polars as pl

from tradeops_assets.core.errors import ConfigError
from tradeops_assets.core.schemas import TIMESTAMP


def as_utc(moment: datetime) -> datetime:
    """A naive datetime is read as UTC."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def to_datetime64(moment: datetime) -> np.datetime64:
    return np.datetime64(as_utc(moment).replace(tzinfo=None), "us")


@dataclass(frozen=True)
class Window:
    """The bars from ``first`` to ``last``, both inclusive and both actual bar timestamps (UTC)."""

    first: datetime
    last: datetime

    def __post_init__(self) -> None:
        object.__setattr__(self, "first", as_utc(self.first))
        object.__setattr__(self, "last", as_utc(self.last))
        if self.last < self.first:
            raise ConfigError(f"window ends ({self.last}) before it starts ({self.first})")

    def __str__(self) -> str:
        return f"{_stamp(self.first)} .. {_stamp(self.last)}"

    def contains(self, column: str = TIMESTAMP) -> pl.Expr:
        return pl.col(column).is_between(self.first, self.last, closed="both")

    def to_dict(self) -> dict[str, str]:
        return {"first": self.first.isoformat(), "last": self.last.isoformat()}

    @classmethod
    def from_dict(cls, data: dict[str, str]) -> "Window":
        return cls(datetime.fromisoformat(data["first"]), datetime.fromisoformat(data["last"]))


def _stamp(moment: datetime) -> str:
    """Dates alone for daily bars (stamped at midnight), minutes otherwise."""
    if (moment.hour, moment.minute, moment.second, moment.microsecond) == (0, 0, 0, 0):
        return f"{moment:%Y-%m-%d}"
    return f"{moment:%Y-%m-%d %H:%M}"


def bar_times(frame: pl.DataFrame) -> np.ndarray:
    """Every distinct bar timestamp in ``frame`` (all symbols), sorted, as datetime64[us]."""
    stamps = frame.get_column(TIMESTAMP).unique().sort().dt.replace_time_zone(None)
    return stamps.to_numpy().astype("datetime64[us]")


def bar_at(stamps: np.ndarray, index: int) -> datetime:
    return as_utc(stamps[index].astype("datetime64[us]").item())


def split_at(
    stamps: np.ndarray, boundaries: Sequence[datetime], names: Sequence[str]
) -> list[Window]:
    """Consecutive windows covering ``stamps``, cut at the first bar at or after each boundary.

    ``names`` (one more than ``boundaries``) label the windows in the error raised when
    one would hold fewer than two bars: a window needs a decision bar and the bar that
    pays it.
    """
    if len(names) != len(boundaries) + 1:
        raise ValueError("one name per window")
    cuts = [0, *(int(np.searchsorted(stamps, to_datetime64(b))) for b in boundaries), len(stamps)]
    windows = []
    for name, lo, hi in zip(names, cuts[:-1], cuts[1:], strict=True):
        if hi - lo < 2:
            raise ConfigError(
                f"the {name} window holds {max(hi - lo, 0)} bar(s) of the {len(stamps)} in "
                f"the data (boundaries {[str(b) for b in boundaries]}); it needs at least 2: "
                "move the boundaries or add history"
            )
        windows.append(Window(bar_at(stamps, lo), bar_at(stamps, hi - 1)))
    return windows


def train_validation_held_out(
    stamps: np.ndarray, train_end: datetime, validation_end: datetime
) -> tuple[Window, Window, Window]:
    """The three windows a policy is made and judged on, cut at actual bars."""
    training, validation, held_out = split_at(
        stamps, [train_end, validation_end], ["training", "validation", "held-out"]
    )
    return training, validation, held_out


def by_fraction(
    stamps: np.ndarray, train: float = 0.70, validation: float = 0.15
) -> tuple[Window, Window, Window]:
    return train_validation_held_out(
        stamps, at_fraction(stamps, train), at_fraction(stamps, train + validation)
    )


def at_fraction(stamps: np.ndarray, fraction: float) -> datetime:
    """The moment ``fraction`` of the way through the data's time span (not a bar yet)."""
    if not 0 < fraction < 1:
        raise ConfigError(f"a window fraction must be in (0, 1), got {fraction}")
    first, last = bar_at(stamps, 0), bar_at(stamps, -1)
    return first + (last - first) * fraction


def whole(stamps: np.ndarray) -> Window:
    return Window(bar_at(stamps, 0), bar_at(stamps, -1))


def after(stamps: np.ndarray, window: Window) -> Window:
    """The bars after ``window`` through the last one: what follows a validation window."""
    start = int(np.searchsorted(stamps, to_datetime64(window.last), side="right"))
    if len(stamps) - start < 2:
        raise ConfigError(
            f"no held-out bars after {window}: the data ends at {_stamp(bar_at(stamps, -1))}"
        )
    return Window(bar_at(stamps, start), bar_at(stamps, -1))
