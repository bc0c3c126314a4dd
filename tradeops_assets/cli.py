"""The ``tradeops`` console script: what operators and auditors run by hand.

Every command derives what it needs from ``TRADEOPS_HOME`` (and the other
``TRADEOPS_*`` settings) itself, so ``.venv/bin/tradeops demo`` works outside the
Makefile. ``tradeops demo`` drives the real Dagster CLI against the local
instance (the path an engineer uses), so what the demo shows is what runs.

Exit codes: 0 done; 1 a step failed (what failed is printed, the full log is
kept); 2 bad input or configuration; 3 the promotion gate refused the challenger
(its verdict is printed; the champion and the endpoint are unchanged).
"""

import argparse
import json
import os
import re
import subprocess
import sys
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

from resources.deployment import Deployment
from tradeops_assets.core.errors import TradeopsError
from tradeops_assets.core.recipe import TrainConfig
from tradeops_assets.keys import (
    BACKTEST_REPORT,
    MARKET_BARS,
    MARKET_FEATURES,
    MONITORING_GROUP,
    POLICY_BENTO,
    POLICY_DEPLOYMENT,
    PROMOTION_GATE,
    REPORT_LOCATION,
    TRAINED_POLICY,
)

MODULE = "tradeops_assets.definitions"
EXIT_FAILED, EXIT_BAD_INPUT, EXIT_REFUSED = 1, 2, 3


class Refused(Exception):  # noqa: N818 (an outcome, not an error)
    """The promotion gate said no: an outcome, not an error."""


class StepFailedError(Exception):
    """A Dagster run failed for a reason other than the gate."""


def materialize_command(
    select: str,
    *,
    partition_range: str | None = None,
    partition: str | None = None,
    config: dict | None = None,
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
    if partition:
        cmd += ["--partition", partition]
    if config:
        cmd += ["--config-json", json.dumps(config)]
    return cmd


# A Dagster log line: "<time> - dagster - <LEVEL> - <job> - <run id> - <step> - <message>".
LOG_LINE = re.compile(
    r"^\S+ \S+ \S+ - dagster - (?P<level>[A-Z]+) - [^ ]+ - (?P<run>[0-9a-f-]{36}) - "
    r"(?:\d+ - )?(?:(?P<step>[\w.\[\]]+) - )?(?P<message>.*)$"
)
HIDDEN = ("STEP_FAILURE", "RUN_FAILURE", "Dependencies for step")
"""Dagster's own account of a stop; what stopped it is told once the run is over."""
PROGRESS = re.compile(r"training: (\d+) steps, ([\d,]+) steps/s, ETA ([\d,]+) s")


@dataclass(frozen=True)
class Step:
    """One Dagster CLI run: its output summarised live, its whole log kept in a file."""

    deployment: Deployment
    cmd: list[str]

    def run(self, show=None) -> None:
        logs = self.deployment.home / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        log_path = logs / f"{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}.log"
        show = show or _print_summary
        print("+", " ".join(self.cmd[1:]), flush=True)
        with (
            log_path.open("w") as log,
            subprocess.Popen(
                self.cmd,
                env=self.deployment.child_env(),
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            ) as proc,
        ):
            for line in proc.stdout:  # type: ignore[union-attr]
                log.write(line)
                show(line.rstrip("\n"))
        if proc.returncode != 0:
            raise StepFailedError(str(log_path))


def _print_summary(line: str) -> None:
    """What the assets say, as it happens; tracebacks and Dagster's events stay in the log."""
    match = LOG_LINE.match(line)
    if match is None:
        return
    message, step = match["message"], match["step"] or ""
    hidden = message.startswith(HIDDEN) or step in HIDDEN
    if match["level"] in ("INFO", "WARNING", "ERROR", "CRITICAL") and not hidden:
        where = f"[{step}] " if step and not step.isupper() else ""
        print(f"  {where}{message.splitlines()[0][:300]}", flush=True)


def _instance(deployment: Deployment):
    import dagster as dg

    deployment.init()
    return dg.DagsterInstance.from_config(str(deployment.dagster_home))


class _Resolved(dict):
    """A deployment's resources, each resolved on first use as a run would resolve it.

    A resource's ``dg.EnvVar`` fields (every location and secret in prod) are read only
    by ``dg.build_resources``; used raw they hold the variable, not its value. Resolving
    one key at a time means a command builds only what it touches (never, say, the MLflow
    run resource). Nothing here has a teardown that a command relies on.
    """

    def __init__(self, definitions: dict) -> None:
        super().__init__()
        self._definitions = definitions

    def __missing__(self, key: str):
        import dagster as dg

        with dg.build_resources({key: self._definitions[key]}) as built:
            resolved = getattr(built, key)
        self[key] = resolved
        return resolved

    def __contains__(self, key: object) -> bool:
        return key in self._definitions

    def get(self, key: str, default=None):
        return self[key] if key in self._definitions else default


def _resources(deployment: Deployment) -> dict:
    from resources import for_deployment

    definitions = for_deployment(deployment)
    return _Resolved(definitions) if deployment.name != "local" else definitions


def _hide_library_warnings() -> None:
    """Dagster and MLflow warn about their own APIs as they load (MLflow insists, whatever the
    filters); a person reading the CLI needs the pipeline's words. The runs' logs keep all."""
    show = warnings.showwarning

    def ours_only(message, category, filename, lineno, file=None, line=None):
        if "site-packages" not in str(filename):
            show(message, category, filename, lineno, file, line)

    warnings.showwarning = ours_only


def gate_refusal(deployment: Deployment, since: float) -> str | None:
    """The gate's verdict in plain words, if a run started after ``since`` was refused by it."""
    import dagster as dg

    from resources.mlflow_policy import CHAMPION

    with _instance(deployment) as instance:
        runs = [
            r for r in instance.get_run_records(limit=5) if r.create_timestamp.timestamp() >= since
        ]
        refused = any(
            event.dagster_event.event_specific_data.check_name == PROMOTION_GATE
            and not event.dagster_event.event_specific_data.passed
            for record in runs
            for event in instance.all_logs(
                record.dagster_run.run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION
            )
        )
        if not refused:
            return None
        report = instance.get_latest_materialization_event(dg.AssetKey(BACKTEST_REPORT))
    resources = _resources(deployment)
    location = str(report.asset_materialization.metadata[REPORT_LOCATION].value)  # type: ignore[union-attr]
    decision = resources["reports"].read_gate(location)
    champion = resources["registry"].version_for(CHAMPION)
    serving = (resources["serving"].current() or {}).get("bento_tag")
    lines = [
        f"The promotion gate refused tradeops-policy v{decision.challenger_version}:",
        *(f"  - {c.name}: {c.why}" for c in decision.verdict.failed),
        f"Champion unchanged ({f'v{champion}' if champion else 'none yet'}), nothing deployed"
        + (f"; {serving} keeps serving." if serving else "."),
        f"The full report: {location}",
    ]
    return "\n".join(lines)


def run_steps(deployment: Deployment, steps: list[list[str]], show=None) -> None:
    """Runs each step in turn; a refusal by the gate is told apart from a failure."""
    since = time.time()
    for cmd in steps:
        try:
            Step(deployment, cmd).run(show)
        except StepFailedError as failed:
            verdict = gate_refusal(deployment, since)
            if verdict is not None:
                raise Refused(verdict) from None
            raise StepFailedError(
                f"step failed: {' '.join(cmd[4:])}\n{_error_tail(Path(str(failed)))}\n"
                f"The full log: {failed}"
            ) from None


def _error_tail(log: Path, lines: int = 25) -> str:
    text = log.read_text(errors="replace").splitlines()
    errors = [i for i, line in enumerate(text) if " - ERROR - " in line or "Error" in line]
    start = errors[0] if errors else max(len(text) - lines, 0)
    return "\n".join(text[start : start + lines])


def downstream(key: str) -> str:
    """``key`` and what the pipeline builds from it; monitoring runs on its own days."""
    return f"key:{key}+ and not group:{MONITORING_GROUP}"


def ingest_plan(deployment: Deployment, through: str | None) -> list[list[str]]:
    """The runs that bring new or changed months in, and what follows them."""
    from tradeops_assets.defs.market_data import partitions

    stop = f" and +key:{through}" if through else ""
    digests = _resources(deployment)["market_data"].month_digests()
    with _instance(deployment) as instance:
        plan = partitions.plan_months(instance, digests)
        if not plan:
            return []
        partitions.add_months(instance, plan)
        ranges = partitions.partition_ranges(instance, plan.todo)
    print(
        f"{MARKET_BARS}: {len(plan.new)} new month(s)"
        + (f", {plan.new[0]} .. {plan.new[-1]}" if plan.new else "")
        + (f"; {len(plan.changed)} changed: {', '.join(plan.changed)}" if plan.changed else "")
        + f"; {len(ranges)} run(s)"
    )
    if len(ranges) == 1:
        ((first, last),) = ranges
        select = f"{downstream(MARKET_BARS)}{stop}"
        return [materialize_command(select, partition_range=f"{first}...{last}")]
    bars = [
        materialize_command(f"key:{MARKET_BARS}", partition_range=f"{first}...{last}")
        for first, last in ranges
    ]
    return [*bars, materialize_command(f"{downstream(MARKET_FEATURES)}{stop}")]


def resume_point(deployment: Deployment) -> str | None:
    """With no new data, where the graph still has work: nothing if the champion serves.

    A rerun does not retrain on unchanged data (the same recipe would give the same
    weights, which the gate rightly refuses to call better); it finishes what an
    earlier run left undone, or restarts the endpoint.
    """
    import dagster as dg

    from resources.mlflow_policy import CHAMPION

    resources = _resources(deployment)
    champion = resources["registry"].version_for(CHAMPION)
    if champion is None:
        return TRAINED_POLICY
    with _instance(deployment) as instance:
        bento = instance.get_latest_materialization_event(dg.AssetKey(POLICY_BENTO))
    meta = bento.asset_materialization.metadata if bento and bento.asset_materialization else {}
    if "policy_version" not in meta or meta["policy_version"].value != champion:
        return POLICY_BENTO
    if not resources["serving"].is_serving(meta["bento_tag"].value):
        return POLICY_DEPLOYMENT
    return None


def demo(deployment: Deployment, through: str | None = None) -> None:
    """The graph from the source's new months on; ``through`` stops at that asset."""
    steps = ingest_plan(deployment, through)
    if not steps:
        print(f"{MARKET_BARS}: every month of the source is already materialised, unchanged")
        if through:
            steps = [materialize_command(f"{downstream(MARKET_FEATURES)} and +key:{through}")]
        elif (start := resume_point(deployment)) is not None:
            steps = [materialize_command(downstream(start))]
        else:
            print("the champion's bento is already serving")
    run_steps(deployment, steps)
    port = os.environ.get("TRADEOPS_UI_PORT", "3001")
    print(
        "\nDone. Where to look:\n"
        f"  Dagster UI (lineage, runs, checks):  make ui  ->  http://127.0.0.1:{port}\n"
        f"  Dagster instance:                    {deployment.dagster_home}\n"
        f"  Datasets (Parquet, DVC workspace):   {deployment.datasets_root}\n"
        f"  DVC remote (every version):          {deployment.dvc_remote}\n"
        f"  Run logs:                            {deployment.home / 'logs'}\n"
        "  Restore any version:                 tradeops data restore --version <md5> --out DIR\n"
        "  Audit trail:                         tradeops audit verify | tradeops audit export"
    )
    if through is None:
        show_endpoint(deployment)
        monitor_today(deployment)


def show_endpoint(deployment: Deployment) -> None:
    """Calls the endpoint once, as a trader would, and prints how to do the same."""
    import httpx
    import polars as pl

    from tradeops_assets.core.bundle import required_bars
    from tradeops_assets.core.request import request_for

    resources = _resources(deployment)
    bars = resources["market_data"].bars()
    symbol = bars["symbol"][0]
    recent = bars.filter(pl.col("symbol") == symbol).sort("timestamp").tail(required_bars(16) + 20)
    body = request_for(recent)
    deployment.serving_root.mkdir(parents=True, exist_ok=True)
    example = deployment.serving_root / "example-request.json"
    example.write_text(json.dumps(body))
    url = f"http://127.0.0.1:{deployment.serve_port}"
    token = resources["secrets"].api_token()
    answer = httpx.post(
        f"{url}/predict", json=body, headers={"Authorization": f"Bearer {token}"}, timeout=30
    )
    if answer.status_code != 200:
        raise StepFailedError(f"the endpoint answered {answer.status_code}: {answer.text}")
    token_file = deployment.keys_root / "api_token"
    print(
        f"\nThe endpoint answers on {url}:\n  {answer.text}\n\nTry it:\n"
        f"  curl -s {url}/predict -H 'Content-Type: application/json' \\\n"
        f'    -H "Authorization: Bearer $(cat {token_file})" -d @{example}\n'
        f'  curl -s {url}/metadata -H "Authorization: Bearer $(cat {token_file})"\n'
        f"  make serve   # the deployed bento in the foreground on TRADEOPS_SERVE_PORT"
    )


def monitor_today(deployment: Deployment) -> None:
    """Today's drift, live performance and serving health, as the nightly schedule would."""
    today = time.strftime("%Y-%m-%d", time.gmtime())
    run_steps(deployment, [materialize_command(f"group:{MONITORING_GROUP}", partition=today)])
    print(f"\nMonitoring for {today}: feature_drift, live_performance, serving_health (make ui)")


def progress_line(steps: int, total: int, rate: str, eta: str, width: int = 30) -> str:
    done = min(steps / total, 1.0) if total else 1.0
    bar = "#" * round(done * width) + "-" * (width - round(done * width))
    return f"[{bar}] {steps:,}/{total:,} steps  {rate} steps/s  ETA {eta} s"


def train(deployment: Deployment, timesteps: int, seeds: list[int]) -> None:
    """Materialises trained_policy through Dagster and draws its progress as a bar."""
    config = {"ops": {TRAINED_POLICY: {"config": {"timesteps": timesteps, "seeds": seeds}}}}
    tty = sys.stdout.isatty()

    def show(line: str) -> None:
        match = PROGRESS.search(line)
        if match:
            bar = progress_line(int(match[1]), timesteps, match[2], match[3])
            print(f"\r{bar}" if tty else bar, end="" if tty else "\n", flush=True)

    try:
        run_steps(deployment, [materialize_command(TRAINED_POLICY, config=config)], show)
    finally:
        print()
    print("trained_policy materialised; see the Dagster UI and MLflow for the run and the model")


def restore(deployment: Deployment, md5: str, out: Path) -> None:
    path = _resources(deployment)["datasets"].restore(md5, out)
    print(f"restored {md5} -> {path}")


def live_export(deployment: Deployment, at: str | None, bento: str | None, out: Path | None) -> int:
    """``audit export --at`` / ``--bento``: what was serving, and everything that put it there."""
    from tradeops_assets import provenance

    found = _resources(deployment)
    trail = found["audit"]
    records = trail.records()
    moment = provenance.parse_moment(at) if at else None
    deploy = provenance.deploy_serving(records, moment, bento)
    with _instance(deployment) as instance:
        record = provenance.live_record(
            records, deploy, instance, found["registry"], found["reports"]
        )
        check = trail.verify(trail.anchors(instance))
    record["audit_chain"] = {"records": check.records, "head": check.head, "intact": check.ok}
    text = json.dumps(record, indent=2, sort_keys=True, default=str) + "\n"
    if out is None:
        sys.stdout.write(text)
    else:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text)
        title = f"Serving {record['bento_tag']} (tradeops-policy v{record['model_version']})"
        out.with_suffix(".html").write_text(provenance.as_html(record, title))
        print(f"exported {out} and {out.with_suffix('.html')}", file=sys.stderr)
    if not check.ok:
        print(f"tradeops audit: WARNING, verification fails: {check.problems[0]}", file=sys.stderr)
        return EXIT_FAILED
    return 0


def audit(deployment: Deployment, action: str, out: Path | None) -> int:
    trail = _resources(deployment)["audit"]
    with _instance(deployment) as instance:
        check = trail.verify(trail.anchors(instance))
    if action == "verify":
        for problem in check.problems:
            print(f"tradeops audit: {problem}", file=sys.stderr)
        for note in check.notes:
            print(f"tradeops audit: note: {note}", file=sys.stderr)
        if not check.ok:
            return EXIT_FAILED
        print(
            f"audit log intact: {check.records} records, head {check.head}, "
            f"{check.anchors} anchors outside the files agree"
        )
        if not check.anchors and check.records:
            print("tradeops audit: WARNING, no anchors found outside the files", file=sys.stderr)
        return 0
    records = trail.records()
    text = "".join(json.dumps(r, sort_keys=True) + "\n" for r in records)
    if out is None:
        sys.stdout.write(text)
    else:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text)
        print(f"exported {len(records)} records to {out}", file=sys.stderr)
    if not check.ok:
        print(f"tradeops audit: WARNING, verification fails: {check.problems[0]}", file=sys.stderr)
        return EXIT_FAILED
    return 0


def override(deployment: Deployment, version: str, reason: str) -> None:
    """A person puts a version in as champion without the gate: recorded, alerted, never silent.

    The record (who, why, from which version) is written before the alias moves, so a
    move that fails afterwards leaves the trail and the alias disagreeing, which the
    packaging and the deployment refuse rather than trust either.
    """
    import dagster as dg

    from resources.audit import person
    from resources.mlflow_policy import CHAMPION, REGISTERED_MODEL
    from resources.notifier import OVERRIDDEN
    from tradeops_assets.core.errors import ConfigError
    from tradeops_assets.core.governance import OVERRIDE

    reason = " ".join(reason.split())
    if len(reason) < 10:
        raise ConfigError(
            f"an override needs a reason a reviewer can read (10 characters or more): {reason!r}"
        )
    found = _resources(deployment)
    registry, trail = found["registry"], found["audit"]
    registry.require(version)
    actor = person()
    previous = registry.version_for(CHAMPION)
    record = trail.append(
        OVERRIDE,
        actor,
        {
            "model": REGISTERED_MODEL,
            "alias": CHAMPION,
            "from_version": previous,
            "to_version": version,
            "reason": reason,
        },
    )
    with _instance(deployment) as instance:
        instance.report_runless_asset_event(trail.observation(record))
    registry.move_alias(CHAMPION, version)
    with dg.build_resources({"notifier": found["notifier"]}) as built:  # resolves dg.EnvVar
        built.notifier.alert(
            OVERRIDDEN,
            f"{actor} made tradeops-policy v{version} champion without the gate",
            {"reason": reason, "from_version": previous, "audit_seq": record["seq"]},
        )
    print(
        f"override recorded (audit record {record['seq']}): v{version} is champion on "
        f"{actor}'s authority, replacing v{previous}. `tradeops demo` packages and deploys it."
    )


def reproduce(deployment: Deployment, version: str) -> int:
    """Restores a policy's exact training data through DVC, retrains its recorded recipe and
    seed, and compares the weights hash with the registered one: exit 0 only if equal."""
    import tempfile

    import polars as pl

    from resources.mlflow_policy import REGISTERED_MODEL
    from tradeops_assets.core import training

    found = _resources(deployment)
    registry, datasets = found["registry"], found["datasets"]
    registry.require(version)
    policy = registry.fetch(version)
    recipe = policy.recipe
    registered = registry.run_tag(policy.run_id, "weights_hash")
    with tempfile.TemporaryDirectory(prefix="tradeops-reproduce-") as tmp:
        path = datasets.restore(recipe.data_version, Path(tmp) / "data")
        frame = pl.read_parquet(path)
        print(
            f"restored market_features {recipe.data_version} through DVC: {frame.height} rows; "
            f"retraining {recipe.train.algorithm.value}, seed {recipe.train.seed}, "
            f"{recipe.train.timesteps:,} steps on {recipe.train_window}",
            flush=True,
        )
        result = training.train(frame, recipe.train, recipe.train_window, Path(tmp) / "train")
    if result.weights_hash == registered:
        print(f"reproduced {REGISTERED_MODEL} v{version}: weights hash {registered} (equal)")
        return 0
    print(
        f"NOT reproduced: {REGISTERED_MODEL} v{version} registered weights hash {registered}, "
        f"retrained {result.weights_hash}",
        file=sys.stderr,
    )
    return EXIT_FAILED


def serve(deployment: Deployment, stop: bool) -> int:
    """``make serve``: the deployed bento in the foreground, or stop the background one."""
    from resources.serving import alive

    target = _resources(deployment)["serving"]
    state = target.current()
    if state is None:
        print("tradeops serve: nothing deployed yet; run `make demo` first", file=sys.stderr)
        return EXIT_BAD_INPUT
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
    cmd = [sys.executable, "-m", "bentos.trading_policy.launch", state["bento_tag"]]
    cmd += ["--host", "127.0.0.1", "--port", str(deployment.serve_port)]
    print("+", " ".join(cmd), flush=True)
    os.execve(cmd[0], cmd, target.bento_env())
    return 0  # pragma: no cover


def token(deployment: Deployment, action: str, client: str | None) -> int:
    """Named clients' tokens: issue, revoke, list. The endpoint picks a change up within
    about a second, with no redeploy; every issue and revocation is in the audit trail
    (the token's hash prefix, never the token)."""
    import hashlib

    from resources.audit import person
    from tradeops_assets.core import tokens
    from tradeops_assets.core.errors import ConfigError

    found = _resources(deployment)
    path = found["secrets"].tokens_file()
    if path is None:
        raise ConfigError(
            f"tradeops token edits a local tokens file; in {deployment.name} the named "
            "clients' tokens live in Secrets Manager (<name>/serving/tokens, synced to every "
            "serving task): change them there (docs/production.md, Client tokens in prod)"
        )
    current = tokens.read_tokens(path)
    if action == "list":
        for name in sorted(current):
            print(name)
        return 0
    tokens.check_client(client or "", "tradeops token")
    if action == "add":
        if client in current:
            raise ConfigError(f"client {client!r} already has a token; revoke it first")
        secret = tokens.new_token()
        event, updated = "token_issued", {**current, client: secret}
    else:
        if client not in current:
            raise ConfigError(f"client {client!r} has no token in {path}")
        secret = current[client]
        event, updated = "token_revoked", {k: v for k, v in current.items() if k != client}
    fingerprint = hashlib.sha256(secret.encode()).hexdigest()[:12]
    trail = found["audit"]
    record = trail.append(event, person(), {"client": client, "token_sha256_prefix": fingerprint})
    with _instance(deployment) as instance:
        instance.report_runless_asset_event(trail.observation(record))
    tokens.write_tokens(path, updated)
    if action == "add":
        print(secret)
        print(f"issued a token to {client} (sha256 {fingerprint}...)", file=sys.stderr)
    else:
        print(f"revoked {client}'s token (sha256 {fingerprint}...)")
    return 0


def init(deployment: Deployment) -> None:
    """The setup step: the local instance's home and the dev secrets, created if missing."""
    deployment.init()
    _resources(deployment)["secrets"].api_token()
    print(f"tradeops home ready: {deployment.home}")


def ui(deployment: Deployment) -> int:
    deployment.init()
    port = os.environ.get("TRADEOPS_UI_PORT", "3001")
    cmd = [str(Path(sys.executable).parent / "dagster"), "dev", "-m", MODULE]
    cmd += ["-h", "127.0.0.1", "-p", port]
    os.execve(cmd[0], cmd, deployment.child_env())
    return 0  # pragma: no cover


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="tradeops",
        description=__doc__.splitlines()[0],
        epilog="exit codes: 0 done, 1 a step failed, 2 bad input or configuration, "
        "3 refused by the promotion gate",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    dem = sub.add_parser("demo", help="materialise the graph on the configured source")
    dem.add_argument("--through", help="stop at this asset, e.g. market_features")
    tr = sub.add_parser("train", help="train a policy (trained_policy) with a progress bar")
    tr.add_argument("--timesteps", type=int, default=None, help="default: the training config's")
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
    exp = aud.add_parser(
        "export",
        help="every record as JSON lines, chain hashes included; with --at or --bento, the "
        "full record of what was serving (JSON, and an HTML page beside --out)",
    )
    exp.add_argument("--out", type=Path, help="file to write (default: stdout)")
    which = exp.add_mutually_exclusive_group()
    which.add_argument("--at", help="a moment, ISO 8601 (naive = UTC): what was serving then")
    which.add_argument("--bento", help="a bento tag: the record of its deployment")
    rep = sub.add_parser(
        "reproduce", help="retrain a registered policy from its DVC data and recipe; same hash?"
    )
    rep.add_argument("--policy", required=True, help="the registered model version")
    ovr = sub.add_parser(
        "override", help="make a version champion without the gate: recorded and alerted"
    )
    ovr.add_argument("--version", required=True, help="the registered model version")
    ovr.add_argument("--reason", required=True, help="why, for the auditor")
    tok = sub.add_parser("token", help="named clients' API tokens: add, revoke, list")
    tok.add_argument("action", choices=["add", "revoke", "list"])
    tok.add_argument("client", nargs="?", help="the trading client's name")
    sub.add_parser("init", help="create the local instance and dev secrets (make env runs it)")
    sub.add_parser("ui", help="the Dagster UI on the local instance (TRADEOPS_UI_PORT)")
    sub.add_parser(
        "drift-demo",
        help="the closed loop on a fresh home (TRADEOPS_HOME/drift-demo): drift in, new bento out",
    )
    args = parser.parse_args(argv)
    _hide_library_warnings()
    try:
        deployment = Deployment.from_env()
        if args.command == "demo":
            demo(deployment, args.through)
        elif args.command == "serve":
            return serve(deployment, args.stop)
        elif args.command == "audit":
            if getattr(args, "at", None) or getattr(args, "bento", None):
                return live_export(deployment, args.at, args.bento, args.out)
            return audit(deployment, args.action, getattr(args, "out", None))
        elif args.command == "train":
            timesteps = args.timesteps or TrainConfig().timesteps
            train(deployment, timesteps, [int(x) for x in args.seeds.split(",")])
        elif args.command == "init":
            init(deployment)
        elif args.command == "reproduce":
            return reproduce(deployment, args.policy)
        elif args.command == "override":
            override(deployment, args.version, args.reason)
        elif args.command == "token":
            return token(deployment, args.action, args.client)
        elif args.command == "ui":
            return ui(deployment)
        elif args.command == "drift-demo":
            from tradeops_assets import drill

            try:
                return drill.run(deployment.home / "drift-demo")
            except drill.DrillError as failed:
                raise StepFailedError(f"drift-demo: {failed}") from None
        else:
            restore(deployment, args.version, args.out)
    except Refused as refused:
        print(f"\n{refused}")
        print(f"tradeops: refused by the promotion gate (exit {EXIT_REFUSED})", file=sys.stderr)
        return EXIT_REFUSED
    except StepFailedError as failed:
        print(f"\ntradeops: {failed}", file=sys.stderr)
        return EXIT_FAILED
    except TradeopsError as exc:
        print(f"tradeops: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    return 0


if __name__ == "__main__":
    sys.exit(main())
