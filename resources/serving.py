"""Building signed bentos and running them locally behind one stable port.

``BentoBuilder`` turns a policy bundle into a signed model-store entry and a
bento. ``LocalServing`` is the local deployment target: a front door owns the
serving port (resources/frontdoor.py) and a deploy is start new bento, wait for
its /readyz, switch the front door, let the old bento drain, stop it by its PID.
If the new bento never gets ready, it is stopped and the old one keeps serving.
What is deployed, since when and why is kept in ``deployment.json`` and in the
audit log; the Dagster materialisation holds the same record.
"""

import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
import httpx
import yaml

from bentos.trading_policy.settings import ServeSettings
from resources.secrets import Secrets
from tradeops_assets.core import signing
from tradeops_assets.core.bundle import write_bundle
from tradeops_assets.core.errors import TradeopsError
from tradeops_assets.core.recipe import RegisteredPolicy

BENTOML = Path(sys.executable).with_name("bentoml")
REPO_ROOT = Path(__file__).resolve().parents[1]
DEPLOYMENT_FILE = "deployment.json"
PRIVATE_ENV = ("TRADEOPS_SIGNING_KEY",)
REQUEST_TOTAL = re.compile(
    r'^bentoml_service_request_total\{[^}]*endpoint="(?P<endpoint>[^"]*)"[^}]*'
    r'http_response_code="(?P<code>\d+)"[^}]*\}\s+(?P<count>[0-9.e+]+)$',
    re.MULTILINE,
)
PROBES = frozenset({"/healthz", "/livez", "/readyz", "/metrics"})
"""Never inherited by a serving process, whatever the deployer's own environment holds."""


class DeployError(TradeopsError):
    """A bento that may not, or could not, be put behind the serving port."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def stop_group(pid: int, grace: float = 30.0) -> None:
    """SIGTERM the process group we started (its own session), SIGKILL after ``grace``."""
    if not alive(pid):
        return
    try:
        os.killpg(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        try:
            finished, _ = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            finished = pid if not alive(pid) else 0
        if finished:
            return
        time.sleep(0.1)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)


def _store_path(root: Path, tag: str, kind: str) -> Path:
    name, _, version = tag.partition(":")
    folder = root / kind / name
    if version in ("", "latest"):
        latest = folder / "latest"
        if not latest.exists():
            raise DeployError(f"no {kind[:-1]} named {name} in the BentoML store {root}")
        version = latest.read_text().strip()
    return folder / version


def bento_bundle(bentoml_home: str | Path, bento_tag: str) -> Path:
    """The signed policy bundle a bento serves: its one model's ``bundle`` in the store.

    Read from the store's files, not through ``bentoml``, whose store is fixed at
    import time by BENTOML_HOME: a deployer may serve a store other than its own.
    """
    root = Path(bentoml_home)
    manifest = _store_path(root, bento_tag, "bentos") / "bento.yaml"
    if not manifest.exists():
        raise DeployError(f"bento {bento_tag} is not in the BentoML store {root}")
    models = yaml.safe_load(manifest.read_text()).get("models") or []
    if len(models) != 1:
        raise DeployError(f"bento {bento_tag} holds {len(models)} models, not one policy")
    return _store_path(root, models[0]["tag"], "models") / "bundle"


def serving_env(**extra: str) -> dict[str, str]:
    """This process's environment for a child that serves traffic: no private key in it."""
    return {k: v for k, v in os.environ.items() if k not in PRIVATE_ENV} | extra


def bento_env(bentoml_home: str | Path, settings: ServeSettings, **extra: str) -> dict[str, str]:
    """The environment ``bentoml serve`` of a policy bento needs: its store and its settings,
    nothing secret beyond the API token and the public key; ``extra`` overrides."""
    return serving_env(
        **{
            "BENTOML_HOME": str(bentoml_home),
            "BENTOML_DO_NOT_TRACK": "True",
            # A worker that refuses to start ends `bentoml serve` instead of respawning.
            "BENTOML_CONTAINERIZED": "true",
            **settings.to_env(),
            **extra,
        }
    )


def read_deployment(root: str | Path) -> dict | None:
    """What ``LocalServing.deploy`` last recorded under ``root``, if anything."""
    path = Path(root) / DEPLOYMENT_FILE
    return json.loads(path.read_text()) if path.exists() else None


def stop_deployment(root: str | Path) -> None:
    """Stops the bento and the front door a deployment started, by the PIDs it recorded."""
    state = read_deployment(root) or {}
    stop_group(state.get("bento_pid"))
    stop_group(state.get("front_door_pid"))


def package_elsewhere(
    bundle: Path, private_pem: str | bytes, bentoml_home: str | Path, workdir: Path, *args: str
) -> dict:
    """Signs ``bundle`` and builds its bento into the BentoML store at ``bentoml_home``.

    BentoML fixes its store when it is imported, so packaging runs
    ``bentos.trading_policy.package`` in a process of its own, which also keeps
    bentoml out of the Dagster process. The key reaches it as an owner-only file in
    ``workdir``, never through the environment. Returns ``{"model_tag", "bento_tag"}``.
    """
    key_file = Path(workdir) / "signing-key.pem"
    fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(private_pem.encode() if isinstance(private_pem, str) else private_pem)
    try:
        done = subprocess.run(
            [
                *(sys.executable, "-m", "bentos.trading_policy.package", "--bundle", str(bundle)),
                *("--private-key-file", str(key_file), *args),
            ],
            cwd=REPO_ROOT,
            env=serving_env(BENTOML_HOME=str(bentoml_home), BENTOML_DO_NOT_TRACK="True"),
            capture_output=True,
            text=True,
            timeout=300,
        )
    finally:
        key_file.unlink(missing_ok=True)
    if done.returncode != 0:
        raise DeployError(f"packaging {bundle} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


class BentoProcess:
    """``bentoml serve`` in its own session, stopped through the process group of its PID."""

    def __init__(
        self,
        target: str,
        env: dict,
        log: Path,
        port: int | None = None,
        cpus: set[int] | None = None,
    ) -> None:
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = log
        log.parent.mkdir(parents=True, exist_ok=True)
        with log.open("ab") as out:
            self.proc = subprocess.Popen(
                [str(BENTOML), "serve", target, "--host", "127.0.0.1", "--port", str(self.port)],
                cwd=REPO_ROOT,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=(lambda: os.sched_setaffinity(0, cpus)) if cpus else None,
            )
        self.pid = self.proc.pid

    def wait_ready(self, timeout: float = 120) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return False
            try:
                if httpx.get(f"{self.url}/readyz", timeout=2).status_code == 200:
                    return True
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        return False

    def log_tail(self, chars: int = 3000) -> str:
        return self.log.read_text(errors="replace")[-chars:] if self.log.exists() else ""

    def stop(self) -> None:
        stop_group(self.pid)
        if self.proc.poll() is None:
            self.proc.wait(10)


class BentoBuilder(dg.ConfigurableResource):
    """Bundles a registered policy, signs it with the pipeline's key and builds its bento."""

    secrets: Secrets
    bentoml_home: str

    def build(self, policy: RegisteredPolicy, lineage: dict, labels: dict) -> dict:
        with tempfile.TemporaryDirectory() as workdir:
            bundle = write_bundle(
                Path(workdir) / "bundle", policy.policy, policy.normaliser, policy.recipe, lineage
            )
            label_args = [arg for k, v in labels.items() for arg in ("--label", f"{k}={v}")]
            built = package_elsewhere(
                bundle, self.secrets.signing_key(), self.bentoml_home, Path(workdir), *label_args
            )
        bundle_dir = bento_bundle(self.bentoml_home, built["bento_tag"])
        record = json.loads((bundle_dir / signing.SIGNATURE_FILE).read_text())
        return {**built, "digest": record["digest"], "key_id": record["key_id"]}


class ServingTarget(dg.ConfigurableResource):
    """Where traders' requests are answered; ``policy_deployment`` knows only this interface.

    Locally a front door on one port (``LocalServing``); in prod an ECS service behind
    a load balancer. ``deploy`` puts a signed bento live without dropping a request or
    leaves the live one serving; it returns what it recorded.
    """

    def current(self) -> dict | None:
        raise NotImplementedError

    def deploy(self, bento_tag: str, why: str, labels: dict) -> dict:
        raise NotImplementedError

    def is_serving(self, bento_tag: str) -> bool:
        raise NotImplementedError

    def request_counts(self) -> dict[int, int]:
        """Traders' requests since the live bento started, by HTTP status."""
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError


class LocalServing(ServingTarget):
    """The local serving port: a front door and the bento behind it."""

    root: str
    port: int
    secrets: Secrets
    prediction_log: str
    bentoml_home: str
    max_bars: int = ServeSettings.max_bars
    max_batch: int = ServeSettings.max_batch
    ready_timeout_s: float = 120.0
    drain_timeout_s: float = 30.0

    @property
    def folder(self) -> Path:
        return Path(self.root)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def current(self) -> dict | None:
        return read_deployment(self.folder)

    def settings(self) -> ServeSettings:
        return ServeSettings(
            api_token=self.secrets.api_token(),
            public_key=self.secrets.public_key(),
            prediction_log=Path(self.prediction_log),
            max_bars=self.max_bars,
            max_batch=self.max_batch,
        )

    def bento_env(self) -> dict:
        return bento_env(self.bentoml_home, self.settings())

    def is_serving(self, bento_tag: str) -> bool:
        state = self.current() or {}
        return (
            state.get("bento_tag") == bento_tag
            and alive(state.get("bento_pid"))
            and alive(state.get("front_door_pid"))
        )

    def request_counts(self) -> dict[int, int]:
        """BentoML's own counters of the live bento, scraped from ``/metrics``; probes left out."""
        try:
            text = httpx.get(f"{self.url}/metrics", timeout=2).text
        except httpx.HTTPError:
            return {}
        counts: dict[int, int] = {}
        for match in REQUEST_TOTAL.finditer(text):
            if match["endpoint"] not in PROBES:
                code = int(match["code"])
                counts[code] = counts.get(code, 0) + int(float(match["count"]))
        return counts

    def verify(self, bento_tag: str) -> dict:
        """Deploys only signed bentos: the bundle must verify against the trusted key."""
        bundle = bento_bundle(self.bentoml_home, bento_tag)
        try:
            return signing.verify_bundle(bundle, self.secrets.public_key())
        except TradeopsError as exc:
            raise DeployError(f"refusing to deploy {bento_tag}: {exc}") from exc

    def _front_door(self) -> int:
        state = self.current() or {}
        pid = state.get("front_door_pid")
        if alive(pid):
            return pid
        log = (self.folder / "frontdoor.log").open("ab")
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "resources.frontdoor",
                "--port",
                str(self.port),
                "--state",
                str(self.folder),
            ],
            cwd=REPO_ROOT,
            env=serving_env(),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise DeployError(
                    f"the front door could not take port {self.port}; see "
                    f"{self.folder / 'frontdoor.log'}"
                )
            try:
                httpx.get(f"{self.url}/_frontdoor", timeout=1)
                return proc.pid
            except httpx.TransportError:
                time.sleep(0.1)
        raise DeployError(f"the front door did not answer on port {self.port}")

    def _switch(self, front_door: int, backend: dict) -> None:
        tmp = self.folder / "backend.json.tmp"
        tmp.write_text(json.dumps(backend))
        os.replace(tmp, self.folder / "backend.json")
        os.kill(front_door, signal.SIGHUP)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            status = httpx.get(f"{self.url}/_frontdoor", timeout=2).json()
            if status["backend"].get("port") == backend["port"]:
                return
            time.sleep(0.05)
        raise DeployError("the front door did not switch to the new bento")

    def _drain(self, port: int) -> int:
        deadline = time.monotonic() + self.drain_timeout_s
        while time.monotonic() < deadline:
            in_flight = httpx.get(f"{self.url}/_frontdoor", timeout=2).json()["in_flight"]
            if not in_flight.get(str(port)):
                return 0
            time.sleep(0.05)
        return int(in_flight.get(str(port), 0))

    def deploy(self, bento_tag: str, why: str, labels: dict) -> dict:
        self.folder.mkdir(parents=True, exist_ok=True)
        signature = self.verify(bento_tag)
        previous = self.current()
        new = BentoProcess(
            bento_tag, self.bento_env(), self.folder / f"bento-{bento_tag.replace(':', '-')}.log"
        )
        if not new.wait_ready(self.ready_timeout_s):
            tail = new.log_tail()
            new.stop()
            raise DeployError(
                f"{bento_tag} failed its health check (/readyz) within "
                f"{self.ready_timeout_s:.0f} s; rolled back, "
                f"{(previous or {}).get('bento_tag', 'nothing')} keeps serving. Its log:\n{tail}"
            )
        if previous is None or not alive(previous.get("front_door_pid")):
            (self.folder / "backend.json").write_text(json.dumps({"port": new.port}))
        front_door = self._front_door()
        self._switch(front_door, {"port": new.port, "bento_tag": bento_tag})
        left = 0
        if previous and alive(previous.get("bento_pid")):
            left = self._drain(previous["bento_port"])
            stop_group(previous["bento_pid"])
        record = {
            "bento_tag": bento_tag,
            "bento_pid": new.pid,
            "bento_port": new.port,
            "front_door_pid": front_door,
            "url": self.url,
            "since": datetime.now(UTC).isoformat(),
            "why": why,
            "labels": labels,
            "signature_digest": signature["digest"],
            "signing_key_id": signature["key_id"],
            "previous_bento_tag": (previous or {}).get("bento_tag"),
            "requests_cut_off_while_draining": left,
        }
        tmp = self.folder / (DEPLOYMENT_FILE + ".tmp")
        tmp.write_text(json.dumps(record, indent=2))
        os.replace(tmp, self.folder / DEPLOYMENT_FILE)
        return record

    def stop(self) -> None:
        stop_deployment(self.folder)
