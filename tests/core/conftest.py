import polars as pl
import pytest

from tradeops_assets.core import features
from tradeops_assets.core.market import MarketArrays, Normaliser


@pytest.fixture(scope="session")
def feature_frame(synthetic_bars) -> pl.DataFrame:
    return features.compute_features(synthetic_bars)


@pytest.fixture(scope="session")
def arrays(feature_frame) -> MarketArrays:
    raw = feature_frame.select(features.FEATURE_COLUMNS).to_numpy()
    return MarketArrays.from_features(feature_frame, Normaliser.fit(raw))
