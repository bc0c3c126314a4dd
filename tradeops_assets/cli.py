"""The ``tradeops`` console script: what operators and auditors run by hand.

``tradeops demo`` drives the real Dagster CLI against the local instance (the
same path an engineer uses), so what the demo shows is what production runs.
"""

import argparse
import os
import subprocess
import sys
from pathlib import Path

from tradeops_assets.core.errors import TradeopsError
from tradeops_assets.deployment import Deployment

MODULE = "tradeops_assets.definitions"


def _dagster(*args: str) -> None:
    cmd = [str(Path(sys.executable).parent / "dagster"), *args]
    print("+", " ".join(cmd), flush=True)
    if subprocess.run(cmd, check=False).returncode != 0:
        raise SystemExit(f"tradeops demo: step failed: {' '.join(args[:4])} (see the log above)")


def missing_partitions(deployment: Deployment) -> list[str]:
    """Months the source holds that the instance has not materialised yet."""
    import dagster as dg

    from tradeops_assets.defs.market_data.partitions import market_partitions

    keys = market_partitions(deployment).get_partition_keys()
    with dg.DagsterInstance.get() as instance:
        done = instance.get_materialized_partitions(dg.AssetKey("market_bars"))
    return [k for k in keys if k not in done]


def demo(deployment: Deployment) -> None:
    todo = missing_partitions(deployment)
    if todo:
        print(f"market_bars: {len(todo)} new month(s), {todo[0]} .. {todo[-1]}, in one run")
        _dagster(
            "asset",
            "materialize",
            "-m",
            MODULE,
            "--select",
            "key:market_bars+",
            "--partition-range",
            f"{todo[0]}...{todo[-1]}",
        )
    else:
        print("market_bars: every month of the source is already materialised")
        _dagster("asset", "materialize", "-m", MODULE, "--select", "key:market_features+")
    port = os.environ.get("TRADEOPS_UI_PORT", "3001")
    print(
        "\nDone. Where to look:\n"
        f"  Dagster UI (lineage, runs, checks):  make ui  ->  http://127.0.0.1:{port}\n"
        f"  Dagster instance:                    {deployment.dagster_home}\n"
        f"  Datasets (Parquet, DVC workspace):   {deployment.datasets_root}\n"
        f"  DVC remote (every version):          {deployment.dvc_remote}\n"
        "  Restore any version:                 tradeops data restore --version <md5> --out DIR"
    )


def restore(deployment: Deployment, md5: str, out: Path) -> None:
    from resources import for_deployment

    store = for_deployment(deployment)["datasets"]
    path = store.restore(md5, out)
    print(f"restored {md5} -> {path}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="tradeops", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("demo", help="materialise the graph on the configured source")
    data = sub.add_parser("data", help="dataset versions").add_subparsers(
        dest="action", required=True
    )
    rest = data.add_parser("restore", help="bring back the exact bytes of a dataset version")
    rest.add_argument("--version", required=True, help="md5 recorded in the asset's metadata")
    rest.add_argument("--out", required=True, type=Path, help="directory to write into")
    args = parser.parse_args(argv)
    try:
        deployment = Deployment.from_env()
        if args.command == "demo":
            demo(deployment)
        else:
            restore(deployment, args.version, args.out)
    except TradeopsError as exc:
        print(f"tradeops: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
