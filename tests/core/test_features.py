import math

import numpy as np
import polars as pl
import pytest

from tests.realdata import msft_bars
from tradeops_assets.core import features
from tradeops_assets.core.errors import FeatureError
from tradeops_assets.core.synthetic import SyntheticSpec, generate


def test_no_look_ahead_on_real_and_synthetic_data(sample_bars, synthetic_bars):
    assert features.look_ahead_mismatches(sample_bars, cut=30) == 0
    assert features.look_ahead_mismatches(synthetic_bars, cut=1) == 0


@pytest.fixture(scope="module")
def decades(tmp_path_factory, sample_bars) -> pl.DataFrame:
    """Real MSFT daily bars since 1986 (0.07 .. 85, long flat runs), the same scaled x1000
    (67 .. 84,560), and the real GOOGL and EUR/USD sample, sorted as features need them."""
    msft = msft_bars(tmp_path_factory.mktemp("msft"))
    prices = ("open", "high", "low", "close")
    scaled = msft.with_columns(
        pl.lit("MSFTX1000").alias("symbol"), *(pl.col(c) * 1000 for c in prices)
    )
    return pl.concat([sample_bars, msft, scaled]).sort("symbol", "timestamp")


def test_no_false_look_ahead_on_decades_of_real_bars_beside_other_symbols(decades):
    closes = decades["close"]
    assert closes.min() < 0.1
    assert closes.max() > 8e4
    assert decades.filter(pl.col("symbol") == "MSFT").height > 7_900
    assert features.look_ahead_mismatches(decades, cut=25) == 0
    # Rounding is there (a neighbour's truncation moves the carried EWM state by ulps), and
    # an absolute tolerance alone calls it look-ahead: the defect this scale-aware rule fixed.
    assert features.look_ahead_mismatches(decades, cut=25, rtol=0.0) > 0


def test_features_are_the_same_at_any_price_level(decades):
    """Features are ratios and log returns: a symbol priced 1000x higher has the same ones."""
    out = features.compute_features(decades)
    a = out.filter(pl.col("symbol") == "MSFT").select(features.FEATURE_COLUMNS).to_numpy()
    b = out.filter(pl.col("symbol") == "MSFTX1000").select(features.FEATURE_COLUMNS).to_numpy()
    np.testing.assert_allclose(b, a, rtol=1e-7, atol=1e-9)


def test_warmup_rows_dropped_and_everything_after_is_finite(synthetic_bars):
    out = features.compute_features(synthetic_bars)
    symbols = synthetic_bars["symbol"].n_unique()
    assert out.height == synthetic_bars.height - symbols * features.WARMUP_BARS
    values = out.select(features.FEATURE_COLUMNS).to_numpy()
    assert np.isfinite(values).all()
    features.feature_schema().validate(out)


def test_features_match_hand_computed_values(synthetic_bars):
    out = features.compute_features(synthetic_bars)
    sym = synthetic_bars.filter(pl.col("symbol") == "SYN0001")["close"].to_numpy()
    row = out.filter(pl.col("symbol") == "SYN0001").row(0, named=True)  # bar WARMUP_BARS
    t = features.WARMUP_BARS
    assert row["ret_1"] == pytest.approx(math.log(sym[t] / sym[t - 1]), rel=1e-12)
    assert row["ret_20"] == pytest.approx(math.log(sym[t] / sym[t - 20]), rel=1e-12)
    rets = np.diff(np.log(sym[: t + 1]))
    assert row["vol_20"] == pytest.approx(np.std(rets[-20:], ddof=1), rel=1e-9)
    window = sym[t - 19 : t + 1]
    mid, sd = window.mean(), window.std(ddof=1)
    expected_pctb = (sym[t] - (mid - 2 * sd)) / (4 * sd)
    assert row["bb_pctb"] == pytest.approx(expected_pctb, rel=1e-9)


def test_ewm_per_symbol_equals_a_grouped_reference():
    bars = generate(SyntheticSpec(symbols=4, bars=300, seed=5))
    ours = features.compute_features(bars)
    close = pl.col("close")
    ref = bars.with_columns(
        m=(
            close.ewm_mean(span=12, adjust=False).over("symbol")
            - close.ewm_mean(span=26, adjust=False).over("symbol")
        )
        / close
    ).filter(pl.int_range(pl.len()).over("symbol") >= features.WARMUP_BARS)
    assert np.allclose(ours["macd"].to_numpy(), ref["m"].to_numpy(), rtol=1e-9, atol=1e-14)


def test_rsi_of_a_rising_series_is_100_and_symbols_do_not_leak():
    n = features.WARMUP_BARS + 5
    stamps = pl.datetime_range(
        pl.datetime(2020, 1, 1, time_zone="UTC"),
        pl.datetime(2021, 1, 1, time_zone="UTC"),
        "1d",
        eager=True,
    ).head(n)
    up = np.linspace(10, 20, n)
    bars = pl.DataFrame(
        {
            "timestamp": pl.concat([stamps, stamps]),
            "symbol": ["A"] * n + ["B"] * n,
            "open": np.r_[up[::-1] * 50, up],
            "high": np.r_[up[::-1] * 50, up] * 1.01,
            "low": np.r_[up[::-1] * 50, up] * 0.99,
            "close": np.r_[up[::-1] * 50, up],
            "volume": np.ones(2 * n),
        }
    )
    out = features.compute_features(bars)
    # B only rises; a falling, 50x pricier A before it must not bleed into B's RSI.
    assert out.filter(pl.col("symbol") == "B")["rsi_14"].to_list() == pytest.approx(
        [100.0] * 5, abs=1e-9
    )
    assert out.filter(pl.col("symbol") == "A")["rsi_14"].max() == 0.0


def test_unsorted_or_duplicate_input_is_refused_with_rows(synthetic_bars):
    with pytest.raises(FeatureError, match="first rows out of order"):
        features.compute_features(synthetic_bars.reverse())
