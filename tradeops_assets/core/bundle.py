"""A policy bundle: one directory holding everything a served decision depends on.

The weights (numpy, no torch), the feature scaling fitted on the training window,
the recipe it was trained with and its lineage. The bento signs and serves exactly
this directory; loading it checks that this code computes the features the policy
was trained on.
"""

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tradeops_assets.core import features as F  # noqa: N812
from tradeops_assets.core.errors import BundleError, ConfigError
from tradeops_assets.core.market import EnvConfig, Normaliser
from tradeops_assets.core.policy import NumpyPolicy
from tradeops_assets.core.recipe import RECIPE_FILE, PolicyRecipe

POLICY_FILE = "policy.npz"
NORMALISER_FILE = "normaliser.json"
CONFIG_FILE = "config.json"
LINEAGE_FILE = "lineage.json"
BUNDLE_FILES = (POLICY_FILE, NORMALISER_FILE, RECIPE_FILE, CONFIG_FILE, LINEAGE_FILE)
BUNDLE_FORMAT = 2


def required_bars(window: int) -> int:
    """Bars a request needs so the decision bar ends a full window of feature rows.

    ``compute_features`` drops a symbol's first ``WARMUP_BARS`` bars, so n bars yield
    n - WARMUP_BARS feature rows and the observation needs ``window`` of them.
    """
    return F.WARMUP_BARS + window


@dataclass(frozen=True)
class PolicyBundle:
    policy: NumpyPolicy
    normaliser: Normaliser
    recipe: PolicyRecipe
    lineage: dict[str, Any]
    symbols: frozenset[str]
    path: Path | None = None

    @property
    def env(self) -> EnvConfig:
        return self.recipe.env

    @property
    def window(self) -> int:
        return self.env.window

    @property
    def min_bars(self) -> int:
        return required_bars(self.env.window)

    @property
    def version(self) -> str:
        return str(self.lineage.get("model_version", "unversioned"))

    @classmethod
    def load(cls, directory: Path | str) -> "PolicyBundle":
        directory = Path(directory)
        missing = [name for name in BUNDLE_FILES if not (directory / name).is_file()]
        if missing:
            raise BundleError(f"policy bundle {directory} lacks {missing}")
        try:
            config = json.loads((directory / CONFIG_FILE).read_text())
            lineage = json.loads((directory / LINEAGE_FILE).read_text())
            normaliser = Normaliser.from_dict(json.loads((directory / NORMALISER_FILE).read_text()))
            recipe = PolicyRecipe.from_json((directory / RECIPE_FILE).read_text())
            policy = NumpyPolicy.load(directory / POLICY_FILE)
        except (OSError, ValueError, KeyError, ConfigError) as exc:
            raise BundleError(f"policy bundle {directory} cannot be read: {exc}") from exc
        if config.get("format") != BUNDLE_FORMAT:
            raise BundleError(
                f"policy bundle {directory} has format {config.get('format')!r}; "
                f"this code serves format {BUNDLE_FORMAT}"
            )
        bundle = cls(
            policy=policy,
            normaliser=normaliser,
            recipe=recipe,
            lineage=lineage,
            symbols=frozenset(config.get("symbols", ())),
            path=directory,
        )
        bundle._check_fits_this_code(directory)
        return bundle

    def _check_fits_this_code(self, where: Path) -> None:
        columns = self.recipe.feature_columns
        if columns != F.FEATURE_COLUMNS:
            raise BundleError(
                f"policy bundle {where} was trained on features {list(columns)}, "
                f"this code computes {list(F.FEATURE_COLUMNS)}"
            )
        n = len(F.FEATURE_COLUMNS)
        if self.normaliser.mean.shape != (n,) or self.normaliser.std.shape != (n,):
            raise BundleError(
                f"policy bundle {where}: normaliser has {self.normaliser.mean.shape} "
                f"entries, features have {n}"
            )
        width = self.env.window * n + 1
        if self.policy.obs_width != width:
            raise BundleError(
                f"policy bundle {where}: policy takes observations of width "
                f"{self.policy.obs_width}, window {self.env.window} x {n} features + position "
                f"is {width}"
            )


def write_bundle(
    directory: Path | str,
    policy: NumpyPolicy,
    normaliser: Normaliser,
    recipe: PolicyRecipe,
    lineage: Mapping[str, Any],
    symbols: Iterable[str] | None = None,
) -> Path:
    """Writes a loadable bundle serving ``symbols`` (by default those the recipe was trained on;
    empty means any symbol)."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    config = {
        "format": BUNDLE_FORMAT,
        "symbols": sorted(set(recipe.symbols if symbols is None else symbols)),
        "warmup_bars": F.WARMUP_BARS,
    }
    policy.save(directory / POLICY_FILE)
    (directory / NORMALISER_FILE).write_text(json.dumps(normaliser.to_dict()))
    (directory / RECIPE_FILE).write_text(recipe.to_json())
    (directory / CONFIG_FILE).write_text(json.dumps(config, indent=2, sort_keys=True))
    (directory / LINEAGE_FILE).write_text(
        json.dumps(dict(lineage), indent=2, sort_keys=True, default=str)
    )
    PolicyBundle.load(directory)
    return directory
