"""Window boundaries are actual bars, whatever fraction or date asked for them."""

from datetime import UTC, datetime

import numpy as np
import pytest

from tests.realdata import msft_bars
from tradeops_assets.core.errors import ConfigError
from tradeops_assets.core.windows import (
    Window,
    after,
    bar_times,
    by_fraction,
    split_at,
    train_validation_held_out,
)


@pytest.fixture(scope="module")
def stamps(tmp_path_factory) -> np.ndarray:
    return bar_times(msft_bars(tmp_path_factory.mktemp("msft")))


def is_bar(stamps: np.ndarray, moment: datetime) -> bool:
    return np.datetime64(moment.replace(tzinfo=None), "us") in set(stamps)


def test_fractions_land_on_bars_and_windows_share_none(stamps):
    training, validation, held_out = by_fraction(stamps)
    windows = (training, validation, held_out)
    assert all(is_bar(stamps, w.first) and is_bar(stamps, w.last) for w in windows)
    assert training.first == Window.from_dict({"first": "1986-03-13", "last": "1986-03-13"}).first
    assert held_out.last == datetime(2017, 11, 10, tzinfo=UTC)
    for a, b in ((training, validation), (validation, held_out)):
        next_bar = stamps[np.searchsorted(stamps, np.datetime64(a.last.replace(tzinfo=None))) + 1]
        assert next_bar == np.datetime64(b.first.replace(tzinfo=None))  # no bar skipped
    assert str(training) == "1986-03-13 .. " + f"{training.last:%Y-%m-%d}"  # dates, no 01:12:00


def test_a_date_on_a_weekend_snaps_to_the_next_session(stamps):
    saturday, christmas = datetime(2005, 1, 1), datetime(2010, 12, 25)
    training, validation, held_out = train_validation_held_out(stamps, saturday, christmas)
    assert training.last == datetime(2004, 12, 31, tzinfo=UTC)  # Friday
    assert validation.first == datetime(2005, 1, 3, tzinfo=UTC)  # Monday
    assert validation.last == datetime(2010, 12, 23, tzinfo=UTC)
    assert held_out.first == datetime(2010, 12, 27, tzinfo=UTC)
    assert after(stamps, validation) == held_out


def test_a_window_without_room_is_named(stamps):
    with pytest.raises(ConfigError, match="the validation window holds 1 bar"):
        split_at(
            stamps, [datetime(2005, 1, 3), datetime(2005, 1, 4)], ["training", "validation", "rest"]
        )
    with pytest.raises(ConfigError, match="no held-out bars after"):
        after(stamps, Window(datetime(2000, 1, 3), datetime(2017, 11, 10)))


def test_windows_round_trip_and_refuse_to_run_backwards():
    window = Window(datetime(2020, 1, 2, 14, 30), datetime(2020, 3, 1))
    assert Window.from_dict(window.to_dict()) == window
    assert str(window) == "2020-01-02 14:30 .. 2020-03-01"
    with pytest.raises(ConfigError, match="ends"):
        Window(datetime(2020, 2, 1), datetime(2020, 1, 1))
