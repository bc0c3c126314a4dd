"""The ``tradeops`` console script: what operators and auditors run by hand.

``tradeops demo`` drives the real Dagster CLI against the local instance (the
same path an engineer uses), so what the demo shows is what production runs.
"""

import argparse
import json
import os
import re
import subprocess
import sys
from pathlib import Path

from tradeops_assets.core.errors import TradeopsError
from tradeops_assets.deployment import Deployment

MODULE = "tradeops_assets.definitions"


def materialize_command(
    select: str, *, partition_range: str | None = None, config: dict | None = None
) -> list[str]:
    """The real Dagster CLI call every path uses: the demo, ``tradeops train`` and the tests."""
    cmd = [
        str(Path(sys.executable).parent / "dagster"),
        "asset",
        "materialize",
        "-m",
        MODULE,
        "--select",
        select,
    ]
    if partition_range:
        cmd += ["--partition-range", partition_range]
    if config:
        cmd += ["--config-json", json.dumps(config)]
    return cmd


def _run_step(cmd: list[str]) -> None:
    print("+", " ".join(cmd), flush=True)
    if subprocess.run(cmd, check=False).returncode != 0:
        raise SystemExit(f"tradeops demo: step failed: {' '.join(cmd[1:6])} (see the log above)")


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
        _run_step(
            materialize_command("key:market_bars+", partition_range=f"{todo[0]}...{todo[-1]}")
        )
    else:
        print("market_bars: every month of the source is already materialised")
        _run_step(materialize_command("key:market_features+"))
    port = os.environ.get("TRADEOPS_UI_PORT", "3001")
    print(
        "\nDone. Where to look:\n"
        f"  Dagster UI (lineage, runs, checks):  make ui  ->  http://127.0.0.1:{port}\n"
        f"  Dagster instance:                    {deployment.dagster_home}\n"
        f"  Datasets (Parquet, DVC workspace):   {deployment.datasets_root}\n"
        f"  DVC remote (every version):          {deployment.dvc_remote}\n"
        "  Restore any version:                 tradeops data restore --version <md5> --out DIR"
    )


PROGRESS = re.compile(r"training: (\d+) steps, ([\d,]+) steps/s, ETA ([\d,]+) s")


def progress_line(steps: int, total: int, rate: str, eta: str, width: int = 30) -> str:
    done = min(steps / total, 1.0) if total else 1.0
    bar = "#" * round(done * width) + "-" * (width - round(done * width))
    return f"[{bar}] {steps:,}/{total:,} steps  {rate} steps/s  ETA {eta} s"


def train(timesteps: int, seeds: list[int]) -> None:
    """Materialises trained_policy through Dagster and draws its progress as a bar."""
    config = {"ops": {"trained_policy": {"config": {"timesteps": timesteps, "seeds": seeds}}}}
    cmd = materialize_command("trained_policy", config=config)
    tty = sys.stdout.isatty()
    with subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) as proc:
        log = []
        for line in proc.stdout:  # type: ignore[union-attr]
            log.append(line)
            match = PROGRESS.search(line)
            if match:
                bar = progress_line(int(match[1]), timesteps, match[2], match[3])
                print(f"\r{bar}" if tty else bar, end="" if tty else "\n", flush=True)
    print()
    if proc.returncode != 0:
        sys.stderr.write("".join(log[-40:]))
        raise SystemExit("tradeops train: trained_policy failed (the log's tail is above)")
    print("trained_policy materialised; see the Dagster UI and MLflow for the run and the model")


def restore(deployment: Deployment, md5: str, out: Path) -> None:
    from resources import for_deployment

    store = for_deployment(deployment)["datasets"]
    path = store.restore(md5, out)
    print(f"restored {md5} -> {path}")


def audit(deployment: Deployment, action: str, out: Path | None) -> int:
    from tradeops_assets.core.audit import AuditLog

    log = AuditLog(deployment.home / "audit")
    check = log.verify()
    if action == "verify":
        for problem in check.problems:
            print(f"tradeops audit: {problem}", file=sys.stderr)
        if not check.ok:
            return 1
        print(f"audit log intact: {check.records} records, head {check.head}")
        return 0
    records = log.records()
    text = "".join(json.dumps(r, sort_keys=True) + "\n" for r in records)
    if out is None:
        sys.stdout.write(text)
    else:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text)
        print(f"exported {len(records)} records to {out}", file=sys.stderr)
    if not check.ok:
        print(f"tradeops audit: WARNING, verification fails: {check.problems[0]}", file=sys.stderr)
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="tradeops", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("demo", help="materialise the graph on the configured source")
    tr = sub.add_parser("train", help="train a policy (trained_policy) with a progress bar")
    tr.add_argument("--timesteps", type=int, default=65_536)
    tr.add_argument("--seeds", default="0", help="comma-separated, e.g. 0,1,2")
    data = sub.add_parser("data", help="dataset versions").add_subparsers(
        dest="action", required=True
    )
    rest = data.add_parser("restore", help="bring back the exact bytes of a dataset version")
    rest.add_argument("--version", required=True, help="md5 recorded in the asset's metadata")
    rest.add_argument("--out", required=True, type=Path, help="directory to write into")
    aud = sub.add_parser("audit", help="the hash-chained audit trail").add_subparsers(
        dest="action", required=True
    )
    aud.add_parser("verify", help="recompute the chain; exit 1 on any edit or deletion")
    exp = aud.add_parser("export", help="every record as JSON lines, chain hashes included")
    exp.add_argument("--out", type=Path, help="file to write (default: stdout)")
    args = parser.parse_args(argv)
    try:
        deployment = Deployment.from_env()
        if args.command == "demo":
            demo(deployment)
        elif args.command == "audit":
            return audit(deployment, args.action, getattr(args, "out", None))
        elif args.command == "train":
            train(args.timesteps, [int(x) for x in args.seeds.split(",")])
        else:
            restore(deployment, args.version, args.out)
    except TradeopsError as exc:
        print(f"tradeops: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
