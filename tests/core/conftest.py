import polars as pl
import pytest

from tradeops_assets.core import features
from tradeops_assets.core.bundle import PolicyBundle, write_bundle
from tradeops_assets.core.env import VecTradingEnv
from tradeops_assets.core.market import EnvConfig, MarketArrays, Normaliser
from tradeops_assets.core.recipe import PolicyRecipe, TrainConfig
from tradeops_assets.core.training import make_model

SERVING_WINDOW = 16


@pytest.fixture(scope="session")
def feature_frame(synthetic_bars) -> pl.DataFrame:
    return features.compute_features(synthetic_bars)


@pytest.fixture(scope="session")
def arrays(feature_frame) -> MarketArrays:
    raw = feature_frame.select(features.FEATURE_COLUMNS).to_numpy()
    return MarketArrays.from_features(feature_frame, Normaliser.fit(raw))


@pytest.fixture(scope="session")
def bundle(tmp_path_factory, synthetic_bars, arrays, feature_frame) -> PolicyBundle:
    """An untrained policy over the synthetic symbols: serving tests need its decisions to
    be the same on every path, not good."""
    config = TrainConfig(
        n_envs=2, batch_size=64, env=EnvConfig(window=SERVING_WINDOW, episode_bars=32)
    )
    model = make_model(config, VecTradingEnv(arrays, 2, config.env))
    raw = feature_frame.select(features.FEATURE_COLUMNS).to_numpy()
    directory = write_bundle(
        tmp_path_factory.mktemp("bundle"),
        config.spec.export(model),
        Normaliser.fit(raw),
        PolicyRecipe.by_fraction(config, feature_frame),
        {"model_version": "1"},
        symbols=synthetic_bars["symbol"].unique().to_list(),
    )
    return PolicyBundle.load(directory)
