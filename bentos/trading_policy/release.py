"""A signed bento in a BentoML store, checked whole before anything of it runs.

The service checks itself at start-up too, but a tampered ``service.py`` would
simply skip its own check; so whoever starts a bento (the deployer, the launcher
in ``launch.py``, the container's entrypoint) verifies it first with code from
outside the bento. Read from the store's files rather than through ``bentoml``,
whose store is fixed at import by ``BENTOML_HOME``: a deployer may serve a store
other than its own.
"""

from dataclasses import dataclass
from pathlib import Path

import yaml

from tradeops_assets.core import signing
from tradeops_assets.core.errors import ConfigError, SignatureError

BUNDLE_DIR = "bundle"  # the signed policy bundle's folder inside a model-store entry
MANIFEST = "bento.yaml"


def store_path(home: Path | str, tag: str, kind: str) -> Path:
    """``<home>/<kind>/<name>/<version>``, resolving ``latest`` as BentoML does."""
    name, _, version = tag.partition(":")
    folder = Path(home) / kind / name
    if version in ("", "latest"):
        latest = folder / "latest"
        if not latest.exists():
            raise ConfigError(f"no {kind[:-1]} named {name} in the BentoML store {home}")
        version = latest.read_text().strip()
    return folder / version


def bento_model_tag(bento_dir: Path) -> str:
    """The one model a bento's manifest names."""
    manifest = bento_dir / MANIFEST
    if not manifest.exists():
        raise ConfigError(f"{bento_dir} holds no {MANIFEST}: not a bento")
    models = yaml.safe_load(manifest.read_text()).get("models") or []
    if len(models) != 1:
        raise ConfigError(f"bento {bento_dir} holds {len(models)} models, not one policy")
    return str(models[0]["tag"])


@dataclass(frozen=True)
class Release:
    """What one verified bento serves, and the two signature records that vouch for it."""

    bento_dir: Path
    model_tag: str
    bundle_dir: Path
    bento_signature: dict
    bundle_signature: dict

    @property
    def digest(self) -> str:
        return signing.bento_digest(self.bento_signature)


def verify_release(
    bento_dir: Path | str,
    model_dir: Path | str,
    public_key: str,
    requested_model: str | None = None,
) -> Release:
    """Refuses unless the bento's files, its model's tag and the model's bundle are all as signed.

    ``model_dir`` is the store entry of the model the bento's manifest names;
    ``requested_model`` (the serving setting) may only repeat the signed tag.
    """
    bento_dir, model_dir = Path(bento_dir), Path(model_dir)
    record = signing.verify_bento(bento_dir, public_key)
    named = bento_model_tag(bento_dir)
    if named != record["model_tag"]:
        raise SignatureError(
            f"bento {bento_dir} names model {named}; it was signed for {record['model_tag']}"
        )
    if requested_model and requested_model != named:
        raise ConfigError(
            f"TRADEOPS_POLICY_MODEL={requested_model!r}, but this bento is signed to serve "
            f"{named} and serves nothing else"
        )
    bundle_dir = model_dir / BUNDLE_DIR
    bundle_record = signing.verify_bundle(bundle_dir, public_key)
    if bundle_record["digest"] != record["bundle_digest"]:
        raise SignatureError(
            f"model {named} holds bundle {bundle_record['digest'][:16]}; bento {bento_dir} was "
            f"signed with bundle {record['bundle_digest'][:16]}"
        )
    return Release(bento_dir, named, bundle_dir, record, bundle_record)


def verify_stored(
    home: Path | str, bento_tag: str, public_key: str, requested_model: str | None = None
) -> Release:
    """``verify_release`` for a bento found by tag in the store at ``home``."""
    bento_dir = store_path(home, bento_tag, "bentos")
    if not (bento_dir / MANIFEST).exists():
        raise ConfigError(f"bento {bento_tag} is not in the BentoML store {home}")
    model_dir = store_path(home, bento_model_tag(bento_dir), "models")
    return verify_release(bento_dir, model_dir, public_key, requested_model)


def bento_tag_of(bento_dir: Path) -> str:
    """``name:version`` of a bento folder in a store."""
    return f"{bento_dir.parent.name}:{bento_dir.name}"
