"""``make drift-demo``: the closed loop on a fresh home, watched step by step.

The drill does what a desk would see on a bad morning. It writes the demo's market
as monthly vendor files into a folder, runs the demo graph on it (the first
champion, serving), starts the Dagster daemon and webserver, then drops one month
in which the market has changed regime and lets the automations alone react:
market_data_sensor ingests the month, the automation sensor rebuilds the features
and today's monitoring, feature_drift's check breaches, drift_sensor requests one
retrain, the gate judges it, and a better policy is built, signed and swapped in.
Nothing is run by hand after the drop; the drill only watches the instance and
prints each step with its time. Alerts go to a webhook receiver on loopback, the
stand-in for the desk's chat channel. Everything started is stopped by its PID.
"""

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
import httpx
import polars as pl

from resources.deployment import LOCAL, Deployment
from resources.serving import alive, free_port, stop_deployment, stop_group
from sensors.drift import SENSOR as DRIFT_SENSOR
from sensors.drift import finished_evaluation
from tradeops_assets.cli import Refused
from tradeops_assets.core.sources import DEFAULT_SOURCE, parse_source
from tradeops_assets.core.synthetic import RegimeShift
from tradeops_assets.keys import (
    BACKTEST_REPORT,
    FEATURE_DRIFT,
    FEATURE_DRIFT_CHECK,
    MARKET_BARS,
    MARKET_FEATURES,
    POLICY_BENTO,
    POLICY_DEPLOYMENT,
    PROMOTION_GATE,
    TRIGGER_TAG,
)
from tradeops_assets.receiver import Receiver

LOOP_DEADLINE_S = 20 * 60
START_DEADLINE_S = 120
POLL_S = 2.0


class DrillError(Exception):
    """The loop did not close: which step was missing, and where to look."""


def write_months(bars: pl.DataFrame, folder: Path) -> list[Path]:
    """One Parquet file per calendar month, as a vendor's monthly drop would land."""
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for (month,), frame in bars.group_by(
        pl.col("timestamp").dt.strftime("%Y-%m"), maintain_order=True
    ):
        written.append(drop_file(frame, month_file(folder, str(month))))
    return written


def month_file(folder: Path, month: str) -> Path:
    return folder / f"bars-{month}.parquet"


def drop_file(frame: pl.DataFrame, path: Path) -> Path:
    """Written beside, then renamed in: the folder never shows a half-written file."""
    staging = path.parent.parent / f".{path.name}.part"
    frame.write_parquet(staging)
    os.replace(staging, path)
    return path


@dataclass
class Watch:
    """What the instance says happened since the drop, read fresh on every poll."""

    instance: dg.DagsterInstance
    since: float

    def runs(self, **tags: str) -> list[dg.DagsterRun]:
        records = self.instance.get_run_records(dg.RunsFilter(tags=tags or None), limit=50)
        return [r.dagster_run for r in records if r.create_timestamp.timestamp() >= self.since]

    def materialized(self, asset: str, run_id: str | None = None) -> dg.EventLogEntry | None:
        for record in self.instance.fetch_materializations(dg.AssetKey(asset), limit=5).records:
            if record.timestamp >= self.since and run_id in (None, record.run_id):
                return record.event_log_entry
        return None

    def sensor_ticks(self, name: str) -> list:
        """The daemon's ticks of sensor ``name`` since the drop, newest first."""
        for state in self.instance.all_instigator_state():
            if state.instigator_name == name:
                ticks = self.instance.get_ticks(
                    state.instigator_origin_id, state.selector_id, after=self.since, limit=20
                )
                return list(ticks)
        return []

    def evaluation(self, asset: str, check: str, run_id: str | None = None):
        key = dg.AssetCheckKey(dg.AssetKey(asset), check)
        history = self.instance.event_log_storage.get_asset_check_execution_history(key, 5)
        for record in history:
            if record.event is None or record.event.timestamp < self.since:
                continue
            verdict = finished_evaluation(record)
            if verdict is not None and run_id in (None, record.run_id):
                return verdict
        return None


@dataclass
class DriftDrill:
    home: Path
    out: Callable[[str], None] = print
    shift: RegimeShift = field(default_factory=RegimeShift)
    pids: dict[str, int] = field(default_factory=dict)
    receiver: Receiver | None = None
    started: float = 0.0

    @property
    def vendor(self) -> Path:
        return self.home / "vendor"

    @property
    def deployment(self) -> Deployment:
        return Deployment(
            name=LOCAL,
            home=self.home,
            market_source=str(self.vendor),
            serve_port=self.serve_port,
            alert_webhook=True,
        )

    def __post_init__(self) -> None:
        self.serve_port = free_port()
        self.ui_port = free_port()

    def env(self) -> dict[str, str]:
        assert self.receiver is not None
        return {
            **self.deployment.child_env(),
            "TRADEOPS_ALERT_WEBHOOK": self.receiver.url,
            "TRADEOPS_UI_PORT": str(self.ui_port),
        }

    def say(self, step: str) -> None:
        clock = datetime.now(UTC).strftime("%H:%M:%S")
        elapsed = f"+{time.time() - self.started:6.1f} s" if self.started else " " * 9
        self.out(f"[{clock} {elapsed}] {step}")

    # The drill's phases, in order; tests call them one by one.

    def prepare(self) -> None:
        """A fresh home whose market source is a folder of the demo market's monthly files."""
        if self.home.exists():
            stop_deployment(self.deployment.serving_root)  # an earlier drill's endpoint
            shutil.rmtree(self.home)
        bars = parse_source(DEFAULT_SOURCE).bars()
        files = write_months(bars, self.vendor)
        self.deployment.init()
        self.receiver = Receiver(log=self.home / "alerts.jsonl").__enter__()
        self.say(f"fresh home {self.home}: {len(files)} monthly files of {DEFAULT_SOURCE}")

    def run_demo(self) -> None:
        """The demo graph through the tradeops CLI: the first champion, deployed and serving."""
        self.say("running the demo graph (tradeops demo) on the vendor folder")
        done = subprocess.run(
            [str(Path(sys.executable).parent / "tradeops"), "demo"],
            env=self.env(),
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0:
            raise DrillError(f"tradeops demo failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
        self.say(f"champion serving: policy v{self.served_version()} on {self.url}")

    def start_services(self) -> None:
        """The daemon (sensors, schedules, automation) and the UI, each in its own group."""
        bin_dir = Path(sys.executable).parent
        module = ["-m", "tradeops_assets.definitions"]
        logs = self.home / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        commands = {
            "dagster-daemon": [str(bin_dir / "dagster-daemon"), "run", *module],
            "dagster-webserver": [
                str(bin_dir / "dagster-webserver"),
                *module,
                "-h",
                "127.0.0.1",
                "-p",
                str(self.ui_port),
            ],
        }
        for name, cmd in commands.items():
            with (logs / f"{name}.log").open("w") as log:
                proc = subprocess.Popen(
                    cmd,
                    env=self.env(),
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            self.pids[name] = proc.pid
        deadline = time.monotonic() + START_DEADLINE_S
        while not self._ui_up():
            for name, pid in self.pids.items():
                if not alive(pid):
                    raise DrillError(f"{name} exited during start-up; see {logs / name}.log")
            if time.monotonic() > deadline:
                raise DrillError(f"the Dagster UI did not answer within {START_DEADLINE_S} s")
            time.sleep(1)
        self.say(
            f"dagster-daemon (pid {self.pids['dagster-daemon']}) and the UI "
            f"(pid {self.pids['dagster-webserver']}) up: http://127.0.0.1:{self.ui_port}"
        )

    def drop(self, frame: pl.DataFrame, what: str) -> float:
        month = frame.get_column("timestamp").min().strftime("%Y-%m")  # type: ignore[union-attr]
        path = drop_file(frame, month_file(self.vendor, month))
        self.started = time.time()
        self.say(f"dropped {path.name}: {what} ({frame.height} bars)")
        return self.started

    def shifted_month(self) -> pl.DataFrame:
        return self.shift.month_after(parse_source(str(self.vendor)).bars())

    def calm_month(self) -> pl.DataFrame:
        """A month more of the old regime: what must not set the loop off."""
        same = RegimeShift(vol_scale=1.0, momentum=-0.5, range_scale=1.0, gap_scale=1.0)
        return same.month_after(parse_source(str(self.vendor)).bars())

    def watch_quiet(self, deadline_s: float = LOOP_DEADLINE_S) -> dg.AssetCheckEvaluation:
        """After a month of the old regime: ingested, judged, and no retrain asked for.

        Waits for today's feature_drift judged on the new month, then for a drift_sensor
        tick after that judgement; returns the judgement.
        """
        deadline = time.time() + deadline_s
        with dg.DagsterInstance.from_config(str(self.deployment.dagster_home)) as instance:
            watch = Watch(instance, self.started)
            while time.time() < deadline:
                self._fail_on_failed_runs(watch)
                judged = watch.evaluation(FEATURE_DRIFT, FEATURE_DRIFT_CHECK)
                if judged is not None:
                    later = Watch(instance, time.time())
                    while time.time() < deadline and not later.sensor_ticks(DRIFT_SENSOR):
                        self._check_services()
                        time.sleep(POLL_S)
                    retrains = watch.runs(**{TRIGGER_TAG: DRIFT_SENSOR})
                    meta = {k: v.value for k, v in judged.metadata.items()}
                    self.say(
                        f"old-regime month judged: {judged.description} (PSI "
                        f"{'under' if judged.passed else 'over'} {meta['warn_at']} warn, under "
                        f"{meta['error_at']} error); drift_sensor ticked, "
                        f"{len(retrains)} retrain(s) requested"
                    )
                    if retrains:
                        raise DrillError("a month of the old regime set off a retrain")
                    return judged
                self._check_services()
                time.sleep(POLL_S)
        raise DrillError(f"feature_drift was not judged within {deadline_s / 60:.0f} min")

    def watch_loop(self, deadline_s: float = LOOP_DEADLINE_S) -> float:
        """Follows the loop from the drop to the new bento serving; its seconds."""
        said: set[str] = set()
        deadline = time.time() + deadline_s
        first = self.served_version()
        with dg.DagsterInstance.from_config(str(self.deployment.dagster_home)) as instance:
            watch = Watch(instance, self.started)
            while time.time() < deadline:
                done = self._observe(watch, said, first)
                if done is not None:
                    return done
                self._check_services()
                time.sleep(POLL_S)
        missing = "; ".join(sorted(set(STEPS) - said)) or "nothing"
        raise DrillError(
            f"the loop did not close within {deadline_s / 60:.0f} min; not seen: {missing}. "
            f"Logs: {self.home / 'logs'}; the UI: http://127.0.0.1:{self.ui_port}"
        )

    def _observe(self, watch: Watch, said: set[str], first: str) -> float | None:
        def once(step: str, text: str) -> None:
            if step not in said:
                said.add(step)
                self.say(text)

        for run in watch.runs(**{"dagster/sensor_name": "market_data_sensor"}):
            once(
                "picked up",
                f"new data picked up: market_data_sensor ran {MARKET_BARS} "
                f"[{run.tags.get('dagster/partition')}] (run {run.run_id[:8]})",
            )
        if (features := watch.materialized(MARKET_FEATURES)) is not None:
            rows = features.asset_materialization.metadata["dagster/row_count"].value  # type: ignore[union-attr]
            once("features", f"{MARKET_FEATURES} rebuilt by the automation sensor: {rows} rows")
        drift = watch.evaluation(FEATURE_DRIFT, FEATURE_DRIFT_CHECK)
        if drift is not None and not drift.passed and drift.severity == dg.AssetCheckSeverity.ERROR:
            meta = {k: v.value for k, v in drift.metadata.items()}
            once(
                "drift",
                f"drift detected: {drift.description}; features at PSI >= "
                f"{meta['error_at']}: {meta.get('features_over_error')}",
            )
        for run in watch.runs(**{TRIGGER_TAG: DRIFT_SENSOR}):
            once(
                "retrain",
                f"retrain requested by drift_sensor: run {run.run_id[:8]}, breach "
                f"{run.tags.get('tradeops/breach')}",
            )
            gate = watch.evaluation(BACKTEST_REPORT, PROMOTION_GATE, run.run_id)
            if gate is not None:
                reason = gate.metadata["reason"].value
                once("gate", f"gate verdict: {reason}")
                if not gate.passed:
                    raise Refused(
                        f"the gate refused the retrained policy; v{first} serves on: {reason}"
                    )
            if (bento := watch.materialized(POLICY_BENTO, run.run_id)) is not None:
                meta = bento.asset_materialization.metadata  # type: ignore[union-attr]
                once(
                    "bento",
                    f"new bento built and signed: {meta['bento_tag'].value} "
                    f"(policy v{meta['policy_version'].value}, signature "
                    f"{str(meta['digest'].value)[:16]}, key {meta['key_id'].value})",
                )
            if watch.materialized(POLICY_DEPLOYMENT, run.run_id) is not None:
                version = self.served_version()
                if version != first:
                    once(
                        "serving",
                        f"new bento serving: the endpoint answers with policy "
                        f"v{version} (was v{first})",
                    )
            if run.status == dg.DagsterRunStatus.FAILURE:
                raise DrillError(f"the retrain run {run.run_id} failed; see the UI")
        self._fail_on_failed_runs(watch)
        kinds = self.receiver.kinds() if self.receiver else []
        if "deployment_done" in kinds and "serving" in said:
            once("alert", f"alerts delivered to the webhook: {', '.join(kinds)}")
            return time.time() - self.started
        return None

    def _fail_on_failed_runs(self, watch: Watch) -> None:
        """A failed ingest or monitoring run ends the drill; the retrain's is the gate's."""
        for run in watch.runs():
            if run.status == dg.DagsterRunStatus.FAILURE and run.tags.get(TRIGGER_TAG) is None:
                what = run.tags.get("dagster/partition") or ", ".join(
                    k.to_user_string() for k in run.asset_selection or ()
                )
                raise DrillError(
                    f"run {run.run_id} ({what}, by {run.tags.get('dagster/sensor_name', 'hand')}) "
                    f"failed; see http://127.0.0.1:{self.ui_port}/runs/{run.run_id}"
                )

    def _check_services(self) -> None:
        for name, pid in self.pids.items():
            if not alive(pid):
                raise DrillError(f"{name} (pid {pid}) died; see {self.home / 'logs' / name}.log")

    def _ui_up(self) -> bool:
        try:
            return httpx.get(f"http://127.0.0.1:{self.ui_port}/server_info", timeout=2).is_success
        except httpx.HTTPError:
            return False

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.serve_port}"

    def served_version(self) -> str:
        return served_version(self.deployment)

    def stop(self) -> None:
        """Stops what the drill started, by PID: daemon, UI, the bento and its front door."""
        for name, pid in reversed(self.pids.items()):
            stop_group(pid)
            self.say(f"stopped {name} (pid {pid})")
        self.pids.clear()
        stop_deployment(self.deployment.serving_root)
        if self.receiver is not None:
            self.receiver.__exit__(None, None, None)
            self.receiver = None


def served_version(deployment: Deployment) -> str:
    """Asks the deployment's endpoint as a trader would; the policy version that answered."""
    body = json.loads((deployment.serving_root / "example-request.json").read_text())
    token = (deployment.keys_root / "api_token").read_text().strip()
    answer = httpx.post(
        f"http://127.0.0.1:{deployment.serve_port}/predict",
        json=body,
        headers={"Authorization": f"Bearer {token}"},
        timeout=30,
    )
    if answer.status_code != 200:
        raise DrillError(f"the endpoint answered {answer.status_code}: {answer.text[:300]}")
    return str(answer.json()["policy_version"])


STEPS = ("picked up", "features", "drift", "retrain", "gate", "bento", "serving", "alert")


def run(home: Path) -> int:
    drill = DriftDrill(home)
    try:
        drill.prepare()
        drill.run_demo()
        drill.start_services()
        drill.drop(drill.calm_month(), "a month more of the old regime")
        drill.watch_quiet()
        drill.drop(
            drill.shifted_month(),
            f"regime shift: volatility x{drill.shift.vol_scale:g}, ranges "
            f"x{drill.shift.range_scale:g}, gaps x{drill.shift.gap_scale:g}, next-bar momentum "
            f"{drill.shift.momentum:+g} where the demo market reverses",
        )
        seconds = drill.watch_loop()
    finally:
        drill.stop()
    print(f"drift loop: {seconds:.0f} s from data drop to new bento serving")
    return 0
