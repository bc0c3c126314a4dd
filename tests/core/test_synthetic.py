import io

import numpy as np
import polars as pl
import pytest

from tradeops_assets.core.errors import ConfigError
from tradeops_assets.core.synthetic import SyntheticSpec, generate


def parquet_bytes(frame: pl.DataFrame) -> bytes:
    buffer = io.BytesIO()
    frame.write_parquet(buffer)
    return buffer.getvalue()


def test_same_seed_same_bytes_other_seed_other_bytes():
    spec = SyntheticSpec(symbols=5, bars=300, seed=3)
    assert parquet_bytes(generate(spec)) == parquet_bytes(generate(spec))
    assert parquet_bytes(generate(SyntheticSpec(symbols=5, bars=300, seed=4))) != parquet_bytes(
        generate(spec)
    )


def test_shape_symbols_and_minute_spacing():
    bars = generate(SyntheticSpec(symbols=7, bars=1000, freq="1m"))
    assert bars.height == 7000
    assert bars["symbol"].n_unique() == 7
    steps = bars.filter(pl.col("symbol") == "SYN0003")["timestamp"].diff().drop_nulls()
    assert set(steps.dt.total_seconds().unique().to_list()) == {60}


def test_daily_bars_fall_on_weekdays_only():
    bars = generate(SyntheticSpec(symbols=1, bars=500))
    assert bars["timestamp"].dt.weekday().max() <= 5


def test_returns_have_fat_tails_and_volatility_regimes():
    bars = generate(SyntheticSpec(symbols=20, bars=3000, seed=1))
    r = bars.select(pl.col("close").log().diff().over("symbol")).drop_nulls().to_series().to_numpy()
    r = r - r.mean()
    kurtosis = np.mean(r**4) / np.mean(r**2) ** 2
    assert kurtosis > 4.0  # a Gaussian walk gives 3
    vol = (
        bars.with_columns(ret=pl.col("close").log().diff().over("symbol"))
        .group_by("symbol", pl.col("timestamp").dt.year())
        .agg(pl.col("ret").std())
    )["ret"]
    assert vol.max() / vol.min() > 2.0  # calm and wild years both occur


@pytest.mark.parametrize("text", ["symbols=0", "freq=5s", "bars", "seed=x", "colour=red"])
def test_bad_specs_say_what_is_wrong(text):
    with pytest.raises(ConfigError, match="synthetic"):
        SyntheticSpec.parse(text)


def test_spec_parses_every_field():
    spec = SyntheticSpec.parse("symbols=3,bars=50,freq=1h,seed=9,start=2020-06-01")
    assert spec == SyntheticSpec(symbols=3, bars=50, freq="1h", seed=9, start="2020-06-01")
