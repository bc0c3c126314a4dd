import polars as pl
import pytest

from tradeops_assets.core import sample, synthetic


@pytest.fixture(scope="session")
def sample_bars() -> pl.DataFrame:
    return sample.load_sample()


@pytest.fixture(scope="session")
def synthetic_bars() -> pl.DataFrame:
    return synthetic.generate(synthetic.SyntheticSpec(symbols=3, bars=400, seed=11))
