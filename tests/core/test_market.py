"""The env's settings and the feature scaling every policy sees, at their edges."""

import numpy as np
import pytest

from tradeops_assets.core.errors import ConfigError
from tradeops_assets.core.market import OBS_CLIP, EnvConfig, Normaliser


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
