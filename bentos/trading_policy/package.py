"""Turning a policy bundle into a BentoML model-store entry and a bento, offline.

``save_model`` copies the bundle into ``<model>/bundle/`` and signs it there, so
what is verified at start-up is exactly what the store holds. ``build_bento``
builds from ``bentofile.yaml`` with that one model pinned; the bento carries
the service and ``tradeops_assets`` source and the project's lock file as its
requirements, and nothing is resolved or downloaded at build time. ``sign_built``
then signs the bento whole (code, configuration, ``bento.yaml``, and the model
tag and bundle digest it must serve): the unit of release.
"""

import argparse
import json
import shutil
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import bentoml
import yaml

from bentos.trading_policy.release import BUNDLE_DIR
from tradeops_assets.core import signing
from tradeops_assets.core.bundle import PolicyBundle

HERE = Path(__file__).resolve().parent
REPO_ROOT = HERE.parents[1]
BENTOFILE = HERE / "bentofile.yaml"
MODEL_NAME = "trading_policy"


def _labels(labels: Mapping[str, Any] | None) -> dict[str, str]:
    return {str(k): str(v) for k, v in (labels or {}).items()}


def save_model(
    bundle_dir: Path | str,
    private_key: bytes | str,
    labels: Mapping[str, Any] | None = None,
    name: str = MODEL_NAME,
) -> str:
    """Stores the bundle as a new version of model ``name``; returns its tag."""
    bundle_dir = Path(bundle_dir)
    bundle = PolicyBundle.load(bundle_dir)
    key = signing.load_private_key(private_key)
    metadata = {
        "lineage": bundle.lineage,
        "recipe": bundle.recipe.to_dict(),
        "symbols": sorted(bundle.symbols),
        "signing_key_id": signing.key_id(key.public_key()),
    }
    with bentoml.models.create(name, labels=_labels(labels), metadata=metadata) as model:
        target = Path(model.path) / BUNDLE_DIR
        shutil.copytree(bundle_dir, target, ignore=shutil.ignore_patterns(signing.SIGNATURE_FILE))
        signing.sign_bundle(target, key)
    return str(model.tag)


def build_bento(
    model_tag: str,
    labels: Mapping[str, Any] | None = None,
    version: str | None = None,
) -> str:
    """Builds the bento from bentofile.yaml with ``model_tag`` as its only model."""
    config = yaml.safe_load(BENTOFILE.read_text())
    bento = bentoml.bentos.build(
        service=config["service"],
        name=config.get("name"),
        labels={**_labels(config.get("labels")), **_labels(labels)},
        include=config.get("include"),
        exclude=config.get("exclude"),
        python=config.get("python"),
        models=[str(model_tag)],
        version=version,
        build_ctx=str(REPO_ROOT),
    )
    return str(bento.tag)


def sign_built(bento_tag: str, model_tag: str, private_key: bytes | str) -> dict:
    """Signs the stored bento ``bento_tag`` as serving exactly ``model_tag``'s bundle."""
    bundle = Path(bentoml.models.get(model_tag).path) / BUNDLE_DIR
    bundle_record = json.loads((bundle / signing.SIGNATURE_FILE).read_text())
    return signing.sign_bento(
        bentoml.bentos.get(bento_tag).path, private_key, model_tag, bundle_record["digest"]
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bundle", required=True, type=Path, help="policy bundle directory")
    parser.add_argument(
        "--private-key-file", required=True, type=Path, help="Ed25519 key: PEM or base64"
    )
    parser.add_argument("--label", action="append", default=[], help="key=value, repeatable")
    parser.add_argument("--no-bento", action="store_true", help="store the model only")
    args = parser.parse_args(argv)
    labels = dict(item.split("=", 1) for item in args.label)
    key = args.private_key_file.read_bytes()
    model_tag = save_model(args.bundle, key, labels)
    result = {"model_tag": model_tag}
    if not args.no_bento:
        result["bento_tag"] = build_bento(model_tag, labels)
        signed = sign_built(result["bento_tag"], model_tag, key)
        result["bento_digest"] = signing.bento_digest(signed)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
