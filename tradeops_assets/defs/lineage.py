"""What every materialisation records so an auditor can reproduce it.

Metadata: git commit, library versions, config and upstream data versions (code
versions are derived in ``code_versions.py``).
"""

import hashlib
import json
import os
import subprocess
from functools import cache
from importlib import metadata
from pathlib import Path

import dagster as dg

from tradeops_assets.keys import BACKTEST_REPORT, REPORT_LOCATION

LIBRARIES = (
    "polars",
    "pandera",
    "numpy",
    "pyarrow",
    "scipy",
    "exchange-calendars",
    "gymnasium",
    "torch",
    "stable-baselines3",
    "mlflow",
    "bentoml",
    "dagster",
)
REPO_ROOT = Path(__file__).resolve().parents[2]


@cache
def git_commit() -> str:
    if os.environ.get("TRADEOPS_GIT_COMMIT"):
        return os.environ["TRADEOPS_GIT_COMMIT"]
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        )
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return out.stdout.strip() + ("-dirty" if dirty.strip() else "")


@cache
def library_versions() -> dict[str, str]:
    return {name: metadata.version(name) for name in LIBRARIES}


def combined_version(versions: dict[str, str]) -> str:
    return hashlib.sha256(json.dumps(versions, sort_keys=True).encode()).hexdigest()[:32]


def lineage_metadata(*, config: dict, upstream: dict[str, str] | None = None) -> dict:
    meta = {
        "git_commit": git_commit(),
        "library_versions": dg.MetadataValue.json(library_versions()),
        "config": dg.MetadataValue.json(config),
    }
    if upstream is not None:
        meta["upstream_versions"] = dg.MetadataValue.json(upstream)
    return meta


def latest_metadata(context, asset: str) -> dict:
    """The metadata values of ``asset``'s latest materialisation; fails if it has none."""
    event = context.instance.get_latest_materialization_event(dg.AssetKey(asset))
    if event is None or event.asset_materialization is None:
        raise dg.Failure(f"{asset} has never been materialised")
    return {k: v.value for k, v in event.asset_materialization.metadata.items()}


def latest_report(context) -> str:
    """Where the latest backtest_report stored its summary: what the gate and later stages read."""
    return str(latest_metadata(context, BACKTEST_REPORT)[REPORT_LOCATION])
