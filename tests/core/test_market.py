"""The env's settings and the feature scaling every policy sees, at their edges."""

from datetime import UTC, datetime, timedelta

import numpy as np
import polars as pl
import pytest

from tradeops_assets.core import features
from tradeops_assets.core.errors import ConfigError, LeakageError
from tradeops_assets.core.market import (
    OBS_CLIP,
    EnvConfig,
    MarketArrays,
    Normaliser,
    assert_causal,
    decision_rows,
    fit_normaliser,
    observation_rows,
)
from tradeops_assets.core.windows import Window


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"window": 0}, "env needs window >= 1 and episode_bars >= 1"),
        ({"episode_bars": 0}, "env needs window >= 1 and episode_bars >= 1"),
        ({"max_position": 0.0}, "max_position must be in (0, 1], got 0.0"),
        ({"max_position": 1.5}, "max_position must be in (0, 1], got 1.5"),
        ({"reward": "pnl"}, "unknown reward 'pnl', expected one of ['"),
        ({"bars_per_year": 0}, "bars_per_year must be > 0, got 0"),
    ],
)
def test_a_bad_env_setting_is_refused_naming_it(change, message):
    with pytest.raises(ConfigError) as err:
        EnvConfig(**change)
    assert str(err.value).startswith(message)


def test_the_smallest_valid_settings_are_accepted():
    config = EnvConfig(window=1, episode_bars=1, max_position=1.0, bars_per_year=1)
    assert config.to_dict()["window"] == 1
    assert EnvConfig(max_position=1e-6).max_position == 1e-6


def test_scaling_centres_divides_and_clips_and_a_constant_feature_stays_finite():
    rng = np.random.default_rng(1)
    raw = np.column_stack([rng.normal(50.0, 4.0, 1000), np.full(1000, 3.0)])
    scaler = Normaliser.fit(raw)
    np.testing.assert_allclose(scaler.mean, [raw[:, 0].mean(), 3.0])
    np.testing.assert_allclose(scaler.std, [raw[:, 0].std(), 1.0])  # a constant divides by 1
    probe = np.array([[58.0, 3.0], [50.0 + 4.0 * 100, 3.0], [50.0 - 4.0 * 100, 7.0]])
    scaled = scaler.apply(probe)
    assert scaled.dtype == np.float32
    expected = np.clip((probe - scaler.mean) / scaler.std, -OBS_CLIP, OBS_CLIP)
    np.testing.assert_allclose(scaled, expected, rtol=1e-6)
    assert scaled[1, 0] == OBS_CLIP
    assert scaled[2, 0] == -OBS_CLIP


def test_arrays_hold_each_symbol_in_time_order_with_the_next_bars_log_return(feature_frame):
    """Rows arrive in any order (a vendor's file, a concatenation of months); every
    symbol's rows come out oldest first, paid by the return from its own next close, and
    its last row, which has no next bar, earns nothing."""
    shuffled = feature_frame.sample(fraction=1.0, shuffle=True, seed=5)
    arrays = MarketArrays.from_features(shuffled, Normaliser.identity())
    assert arrays.symbols == tuple(sorted(set(feature_frame["symbol"])))
    for symbol, s, e in zip(arrays.symbols, arrays.starts, arrays.ends, strict=True):
        own = feature_frame.filter(pl.col("symbol") == symbol).sort("timestamp")
        assert e - s == own.height
        expected_stamps = own["timestamp"].dt.replace_time_zone(None).to_numpy()
        np.testing.assert_array_equal(arrays.timestamps[s:e], expected_stamps)
        close = own["close"].to_numpy()
        np.testing.assert_allclose(
            arrays.next_return[s : e - 1], np.log(close[1:] / close[:-1]), rtol=1e-12
        )
        assert arrays.next_return[e - 1] == 0.0
        raw = own.select(features.FEATURE_COLUMNS).to_numpy()
        np.testing.assert_allclose(
            arrays.features[s:e], np.clip(raw, -OBS_CLIP, OBS_CLIP), rtol=1e-6
        )


def _decision_rows_by_hand(arrays: MarketArrays, window: int, span: Window | None):
    """Every row t with ``window`` rows up to it and a next bar, both t and t + 1 in span."""
    first, last = [], []
    for s, e in zip(arrays.starts, arrays.ends, strict=True):
        stamps = [t.replace(tzinfo=UTC) for t in arrays.timestamps[s:e].astype(datetime)]
        rows = [
            t
            for t in range(s + window - 1, e - 1)
            if span is None or (stamps[t - s] >= span.first and stamps[t + 1 - s] <= span.last)
        ]
        first.append(rows[0])
        last.append(rows[-1] + 1)
    return first, last


@pytest.mark.parametrize("hi_offset", [timedelta(0), timedelta(hours=1)])
def test_decision_rows_are_the_bars_whose_window_and_next_bar_are_available(arrays, hi_offset):
    """Bars that end a span exactly, or fall just short of it, decide as the rule says:
    a decision needs the next bar inside the span, and the very last bar never decides."""
    window = 8
    assert tuple(map(list, decision_rows(arrays, window, None))) == _decision_rows_by_hand(
        arrays, window, None
    )
    stamps = arrays.timestamps[arrays.starts[0] : arrays.ends[0]].astype(datetime)
    for lo, hi in ((stamps[3], stamps[200]), (stamps[40], stamps[-1]), (stamps[100], stamps[101])):
        span = Window(lo, hi + hi_offset)
        got = tuple(map(list, decision_rows(arrays, window, span)))
        assert got == _decision_rows_by_hand(arrays, window, span), span


def test_the_leak_guard_names_the_first_peeking_row_and_the_rows_it_should_have_seen(arrays):
    window = 8
    rows = np.arange(arrays.starts[1] + 20, arrays.starts[1] + 26)
    honest = observation_rows(arrays, rows, window)
    assert_causal(honest, arrays, rows, window, "probe")
    peeking = honest.copy()
    peeking[3] = observation_rows(arrays, rows[3:4] + 1, window)[0]
    peeking[5] = observation_rows(arrays, rows[5:6] + 1, window)[0]
    row = int(rows[3])
    with pytest.raises(LeakageError) as err:
        assert_causal(peeking, arrays, rows, window, "probe")
    assert str(err.value) == (
        f"probe: the observation for decision row {row} is not the feature rows "
        f"{row - 7}..{row}; a policy must see nothing after its decision bar"
    )


def test_a_training_window_with_no_feature_rows_is_refused_naming_it(feature_frame):
    empty = Window(datetime(1990, 1, 1), datetime(1990, 12, 31))
    with pytest.raises(ConfigError) as err:
        fit_normaliser(feature_frame, empty)
    assert str(err.value) == f"no feature rows inside the training window {empty}"
