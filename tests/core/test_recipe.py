"""The recipe is one typed record, written once and read back once; algorithms are one table."""

from dataclasses import replace

import pytest

from tradeops_assets.core.algorithms import ALGORITHMS, Algorithm
from tradeops_assets.core.errors import ConfigError
from tradeops_assets.core.market import EnvConfig
from tradeops_assets.core.recipe import PolicyRecipe, TrainConfig


def test_a_recipe_survives_json_exactly(feature_frame):
    config = TrainConfig(
        algorithm="SAC", net_arch=(32, 16), env=EnvConfig(window=8, bars_per_year=6227.04)
    )
    recipe = replace(PolicyRecipe.by_fraction(config, feature_frame, "md5:abc"), seeds=(0, 4))
    again = PolicyRecipe.from_json(recipe.to_json())
    assert again == recipe
    assert again.train.algorithm is Algorithm.SAC
    assert again.for_seed(4, timesteps=1000) == replace(config, seed=4, timesteps=1000)
    assert again.train_window.last < again.validation_window.first < again.held_out.first


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d.pop("held_out"), "incomplete or malformed"),
        (lambda d: d.update(format=99), "format 99"),
        (lambda d: d["train"].update(algorithm="TD3"), "not in"),
        (lambda d: d["train"]["env"].update(windw=8), "unknown fields"),
    ],
)
def test_a_damaged_recipe_is_refused_by_name(feature_frame, change, message):
    data = PolicyRecipe.by_fraction(TrainConfig(), feature_frame).to_dict()
    change(data)
    with pytest.raises(ConfigError, match=message):
        PolicyRecipe.from_dict(data)


def test_every_algorithm_has_one_table_entry_that_builds_and_exports():
    assert set(ALGORITHMS) == set(Algorithm)
    for name, spec in ALGORITHMS.items():
        assert spec.sb3_class().__name__ == name.value
        discrete = spec.action_space == "discrete"
        config = TrainConfig(algorithm=name, env=EnvConfig(discrete=discrete))
        assert set(spec.kwargs(config)) <= {"n_steps", "batch_size", "n_epochs", "learning_starts"}
        with pytest.raises(ConfigError, match=spec.action_space):
            TrainConfig(algorithm=name, env=EnvConfig(discrete=not discrete))
