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


CHAIN = ("trained_policy", "policy_bento", "policy_deployment")


def resume_point(deployment: Deployment) -> str | None:
    """With no new data, where the graph still has work: nothing if the champion serves.

    A rerun does not retrain on unchanged data (the same recipe would give the same
    weights, which the gate rightly refuses to call better); it finishes what an
    earlier run left undone, or restarts the endpoint.
    """
    import dagster as dg
    import mlflow

    from resources.mlflow_policy import CHAMPION, REGISTERED_MODEL
    from resources.serving import alive, read_deployment

    client = mlflow.MlflowClient(tracking_uri=deployment.mlflow_uri)
    try:
        champion = str(client.get_model_version_by_alias(REGISTERED_MODEL, CHAMPION).version)
    except mlflow.exceptions.MlflowException:
        return "trained_policy"
    with dg.DagsterInstance.get() as instance:
        bento = instance.get_latest_materialization_event(dg.AssetKey("policy_bento"))
    meta = bento.asset_materialization.metadata if bento and bento.asset_materialization else {}
    if "policy_version" not in meta or meta["policy_version"].value != champion:
        return "policy_bento"
    state = read_deployment(deployment.serving_root) or {}
    serving = alive(state.get("bento_pid")) and alive(state.get("front_door_pid"))
    if not serving or state.get("bento_tag") != meta["bento_tag"].value:
        return "policy_deployment"
    return None


def demo(deployment: Deployment, through: str | None = None) -> None:
    """The graph from the source's new months on; ``through`` stops at that asset."""
    stop = f" and +key:{through}" if through else ""
    todo = missing_partitions(deployment)
    if todo:
        print(f"market_bars: {len(todo)} new month(s), {todo[0]} .. {todo[-1]}, in one run")
        _run_step(
            materialize_command(
                f"key:market_bars+{stop}", partition_range=f"{todo[0]}...{todo[-1]}"
            )
        )
    elif through:
        print("market_bars: every month of the source is already materialised")
        _run_step(materialize_command(f"key:market_features+{stop}"))
    else:
        print("market_bars: every month of the source is already materialised")
        start = resume_point(deployment)
        if start is None:
            print("the champion's bento is already serving")
        else:
            _run_step(materialize_command(f"key:{start}+"))
    port = os.environ.get("TRADEOPS_UI_PORT", "3001")
    print(
        "\nDone. Where to look:\n"
        f"  Dagster UI (lineage, runs, checks):  make ui  ->  http://127.0.0.1:{port}\n"
        f"  Dagster instance:                    {deployment.dagster_home}\n"
        f"  Datasets (Parquet, DVC workspace):   {deployment.datasets_root}\n"
        f"  DVC remote (every version):          {deployment.dvc_remote}\n"
        "  Restore any version:                 tradeops data restore --version <md5> --out DIR\n"
        "  Audit trail:                         tradeops audit verify | tradeops audit export"
    )
    if through is None:
        show_endpoint(deployment)


def show_endpoint(deployment: Deployment) -> None:
    """Calls the endpoint once, as a trader would, and prints how to do the same."""
    import httpx
    import polars as pl

    from tradeops_assets.core.serving import request_for, required_bars
    from tradeops_assets.core.sources import load_bars

    deployment.prepare_process()
    bars = load_bars(deployment.market_source)
    symbol = bars["symbol"][0]
    recent = bars.filter(pl.col("symbol") == symbol).tail(required_bars(16) + 20)
    body = request_for(recent)
    example = deployment.serving_root / "example-request.json"
    example.write_text(json.dumps(body))
    url = f"http://127.0.0.1:{deployment.serve_port}"
    token = os.environ["TRADEOPS_API_TOKEN"]
    answer = httpx.post(
        f"{url}/predict", json=body, headers={"Authorization": f"Bearer {token}"}, timeout=30
    )
    if answer.status_code != 200:
        raise SystemExit(
            f"tradeops demo: the endpoint answered {answer.status_code}: {answer.text}"
        )
    token_file = deployment.home / "keys" / "api_token"
    print(
        f"\nThe endpoint answers on {url}:\n  {answer.text}\n\nTry it:\n"
        f"  curl -s {url}/predict -H 'Content-Type: application/json' \\\n"
        f'    -H "Authorization: Bearer $(cat {token_file})" -d @{example}\n'
        f'  curl -s {url}/metadata -H "Authorization: Bearer $(cat {token_file})"\n'
        f"  make serve   # the deployed bento in the foreground on TRADEOPS_SERVE_PORT"
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


def serve(deployment: Deployment, stop: bool) -> int:
    """``make serve``: the deployed bento in the foreground, or stop the background one."""
    from resources import for_deployment
    from resources.serving import BENTOML, alive

    deployment.prepare_process()
    # Outside a Dagster run the resource's dg.EnvVar secrets are resolved here.
    target = for_deployment(deployment)["serving"].model_copy(
        update={
            "api_token": os.environ["TRADEOPS_API_TOKEN"],
            "public_key": os.environ["TRADEOPS_SIGNING_PUBLIC_KEY"],
        }
    )
    state = target.current()
    if state is None:
        print("tradeops serve: nothing deployed yet; run `make demo` first", file=sys.stderr)
        return 2
    running = alive(state.get("bento_pid")) or alive(state.get("front_door_pid"))
    if stop:
        target.stop()
        print(f"stopped {state['bento_tag']} and the front door on {state['url']}")
        return 0
    if running:
        print(
            f"{state['bento_tag']} is already serving on {state['url']} (since {state['since']}); "
            "`tradeops serve --stop` stops it"
        )
        return 0
    target.verify(state["bento_tag"])
    cmd = [str(BENTOML), "serve", state["bento_tag"], "--host", "127.0.0.1"]
    cmd += ["--port", str(deployment.serve_port)]
    print("+", " ".join(cmd), flush=True)
    os.execve(cmd[0], cmd, target.bento_env())
    return 0  # pragma: no cover


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="tradeops", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    dem = sub.add_parser("demo", help="materialise the graph on the configured source")
    dem.add_argument("--through", help="stop at this asset, e.g. market_features")
    tr = sub.add_parser("train", help="train a policy (trained_policy) with a progress bar")
    tr.add_argument("--timesteps", type=int, default=65_536)
    tr.add_argument("--seeds", default="0", help="comma-separated, e.g. 0,1,2")
    data = sub.add_parser("data", help="dataset versions").add_subparsers(
        dest="action", required=True
    )
    rest = data.add_parser("restore", help="bring back the exact bytes of a dataset version")
    rest.add_argument("--version", required=True, help="md5 recorded in the asset's metadata")
    rest.add_argument("--out", required=True, type=Path, help="directory to write into")
    srv = sub.add_parser("serve", help="serve the deployed bento on TRADEOPS_SERVE_PORT")
    srv.add_argument("--stop", action="store_true", help="stop the deployed bento and front door")
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
            demo(deployment, args.through)
        elif args.command == "serve":
            return serve(deployment, args.stop)
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
