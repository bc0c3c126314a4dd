"""Building signed bentos and running them locally behind one stable port.

``BentoBuilder`` turns a policy bundle into a signed model-store entry and a
bento. ``LocalServing`` is the local deployment target: a front door owns the
serving port (resources/frontdoor.py) and a deploy is start new bento, wait for
its /readyz, switch the front door, let the old bento drain, stop it by its PID.
If the new bento never gets ready, it is stopped and the old one keeps serving.
What is deployed, since when and why is kept in ``deployment.json`` and in the
audit log; the Dagster materialisation holds the same record.

Processes are stopped by what was recorded when they started: a PID together
with its start time (``/proc/<pid>/stat`` field 22), so a PID the kernel has
since given to another process is never signalled, and every process the bento
started, found by parent PID, so a worker that left the process group or the
session is stopped too. Deploys to one folder take ``deploy.lock`` in turn.
"""

import contextlib
import fcntl
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
import httpx

from bentos.trading_policy.release import verify_stored
from bentos.trading_policy.settings import ServeSettings, serving_environment
from resources.frontdoor import (
    ADMIN_SOCKET,
    BACKEND_FILE,
    DEPLOYMENT_FILE,
    EVENTS_FILE,
    LOCK_FILE,
    SPARE_FILE,
    SPEC_FILE,
    STATUS_PATH,
    proc_stat,
)
from resources.secrets import Secrets
from tradeops_assets.core.bundle import write_bundle
from tradeops_assets.core.errors import TradeopsError
from tradeops_assets.core.recipe import RegisteredPolicy

BENTOML = Path(sys.executable).with_name("bentoml")
REPO_ROOT = Path(__file__).resolve().parents[1]
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


def _stat(pid: int) -> tuple[str, int, int, int] | None:
    """State, parent PID, session and start time of ``pid``, from ``/proc/<pid>/stat``."""
    fields = proc_stat(pid)
    if fields is None:
        return None
    return fields[0].decode(), int(fields[1]), int(fields[3]), int(fields[19])


def start_time(pid: int | None) -> int | None:
    """When ``pid`` started, in clock ticks after boot; None once it has exited.

    A PID is reused, its start time with it is not: the pair names one process for good.
    """
    stat = _stat(pid) if pid else None
    return None if stat is None or stat[0] in ("Z", "X") else stat[3]


def running(pid: int | None, start: int | None = None) -> bool:
    """Whether ``pid`` is live and, when ``start`` is known, still the process that began then."""
    started = start_time(pid)
    return started is not None and (start is None or started == start)


def family(pid: int, start: int | None = None) -> list[tuple[int, int]]:
    """``pid`` and every live process it started, as (PID, start time) pairs.

    Descendants are found by parent PID, so one that called ``setsid`` is found
    while its parent lives; members of ``pid``'s session are found even when
    orphaned. Nothing is found from a PID that now names another process.
    """
    table: dict[int, tuple[str, int, int, int]] = {}
    for entry in os.scandir("/proc"):
        if entry.name.isdigit() and (stat := _stat(int(entry.name))) and stat[0] not in "ZX":
            table[int(entry.name)] = stat
    root = table.get(pid)
    if root is not None and start is not None and root[3] != start:
        return []
    if start is None:
        if root is None:
            return []
        start = root[3]
    # While a session lives its ID is never reused as a PID, so these are the root's.
    seeds = [p for p, (_, _, sid, began) in table.items() if sid == pid and began >= start]
    children: dict[int, list[int]] = defaultdict(list)
    for child, (_, parent, _, _) in table.items():
        children[parent].append(child)
    found: dict[int, int] = {}
    todo = [pid, *seeds] if root is not None else seeds
    while todo:
        p = todo.pop()
        if p in table and p not in found:
            found[p] = table[p][3]
            todo.extend(children.get(p, ()))
    return sorted(found.items())


def signal_process(pid: int, start: int | None, sig: int) -> bool:
    """Sends ``sig`` to ``pid`` only if it is still the process that began at ``start``.

    Through a pidfd where the kernel has them, so the check and the signal name the
    same process even if it exits in between. Returns whether a signal was sent.
    """
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return False
    except (OSError, AttributeError):
        fd = None
    try:
        if not running(pid, start):
            return False
        if fd is None:
            os.kill(pid, sig)
        else:
            signal.pidfd_send_signal(fd, sig)
        return True
    except ProcessLookupError:
        return False
    finally:
        if fd is not None:
            os.close(fd)


def _reap(pid: int, wait: float = 0.0) -> None:
    """Collects ``pid``'s exit status if it is our child, so it leaves no zombie; ``wait``
    covers a process still tearing down, which /proc may already show as gone."""
    deadline = time.monotonic() + wait
    with contextlib.suppress(ChildProcessError):
        while not os.waitpid(pid, os.WNOHANG)[0] and time.monotonic() < deadline:
            time.sleep(0.02)


def stop_processes(processes: Iterable[tuple[int, int | None]], grace: float = 30.0) -> list[int]:
    """SIGTERMs each (PID, start time) that is still that process, SIGKILLs what is left after
    ``grace`` s; returns the PIDs signalled. A PID whose start time differs is left alone."""
    targets = dict(processes)
    signalled = [p for p, began in targets.items() if signal_process(p, began, signal.SIGTERM)]
    deadline = time.monotonic() + grace
    while True:
        for pid in signalled:
            _reap(pid)
        if not any(running(p, targets[p]) for p in signalled):
            return signalled
        if time.monotonic() >= deadline:
            break
        time.sleep(0.05)
    for pid in signalled:
        signal_process(pid, targets[pid], signal.SIGKILL)
    for pid in signalled:
        with contextlib.suppress(ChildProcessError):
            if running(pid, targets[pid]):
                os.waitpid(pid, 0)
    return signalled


def stop_group(
    pid: int | None,
    grace: float = 30.0,
    start: int | None = None,
    known: Iterable[tuple[int, int]] = (),
) -> list[int]:
    """Stops a process we started and everything it started: its live family (``family``) and
    the ``known`` processes recorded earlier (a worker that left the session and was orphaned
    is found no other way). ``start`` guards against a reused PID; without it, none is checked.
    """
    if not pid:
        return []
    targets = dict(family(pid, start)) | {int(p): int(s) for p, s in known}
    stopped = stop_processes(targets.items(), grace)
    # Anything forked while the family was shutting down.
    late = [(p, s) for p, s in family(pid, start) if p not in targets]
    if late:
        stopped += stop_processes(late, grace)
    _reap(pid, wait=5.0)
    return stopped


@contextlib.contextmanager
def deploy_lock(root: Path, timeout: float) -> Iterator[None]:
    """Holds ``root/deploy.lock`` (``flock``) so that deploys to one folder run one at a time.

    The kernel drops the lock when its holder exits, so a crashed deploy never
    wedges the next; the holder's PID is in the file so a waiting one can name it.
    """
    root.mkdir(parents=True, exist_ok=True)
    path = root / LOCK_FILE
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
                    raise DeployError(
                        f"another deploy (pid {holder}) still holds {path} after {timeout:.0f} s "
                        "of waiting; let it finish, or stop that process"
                    ) from None
                time.sleep(0.05)
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield
    finally:
        os.close(fd)


def serving_env(**extra: str) -> dict[str, str]:
    """This process's environment, allow-listed, for a child that serves traffic."""
    return serving_environment(os.environ, **extra)


def bento_env(bentoml_home: str | Path, settings: ServeSettings, **extra: str) -> dict[str, str]:
    """The environment ``bentoml serve`` of a policy bento needs: its store and its settings,
    nothing secret beyond the API token and the public key; ``extra`` overrides."""
    return serving_env(
        **{
            "BENTOML_HOME": str(bentoml_home),
            "BENTOML_DO_NOT_TRACK": "True",
            "PYTHONDONTWRITEBYTECODE": "1",  # nothing may be written into the signed tree
            "OMP_NUM_THREADS": "1",  # a worker per core; threaded BLAS only contends
            **settings.to_env(),
            **extra,
        }
    )


def read_deployment(root: str | Path) -> dict | None:
    """What ``LocalServing.deploy`` last recorded under ``root``, if anything."""
    path = Path(root) / DEPLOYMENT_FILE
    return json.loads(path.read_text()) if path.exists() else None


def read_events(root: str | Path) -> list[dict]:
    """What the front door's supervisor recorded under ``root``: each bento exit and restart."""
    path = Path(root) / EVENTS_FILE
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def stop_deployment(root: str | Path) -> None:
    """Stops the front door a deployment recorded, then its bento (all its processes): in that
    order, or the door would start the bento again."""
    state = read_deployment(root) or {}
    stop_group(state.get("front_door_pid"), start=state.get("front_door_start"))
    state = read_deployment(root) or {}  # the door may have restarted the bento meanwhile
    stop_group(
        state.get("bento_pid"),
        start=state.get("bento_start"),
        known=state.get("bento_processes", []),
    )
    spare = Path(root) / SPARE_FILE  # the door stops its spare; not if it was killed
    with contextlib.suppress(OSError, ValueError):
        recorded = json.loads(spare.read_text())
        stop_group(recorded.get("pid"), start=recorded.get("start"))
        spare.unlink()


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
    """``bentoml serve`` in its own session, stopped with every process it started."""

    def __init__(
        self,
        target: str,
        env: dict,
        log: Path,
        port: int | None = None,
        cpus: set[int] | None = None,
        launcher: tuple[str, ...] = (sys.executable, "-m", "bentos.trading_policy.launch"),
    ) -> None:
        """``launcher`` verifies the whole bento before any of it runs; only tests of the
        service's own start-up checks pass ``bentoml serve`` itself."""
        self.target = target
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = log
        log.parent.mkdir(parents=True, exist_ok=True)
        with log.open("ab") as out:
            self.proc = subprocess.Popen(
                self.command(target, self.port, launcher),
                cwd=REPO_ROOT,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=(lambda: os.sched_setaffinity(0, cpus)) if cpus else None,
            )
        self.pid = self.proc.pid
        self.start = start_time(self.pid)
        self.known: list[tuple[int, int]] = []

    @staticmethod
    def command(
        target: str,
        port: int | str,
        launcher: tuple[str, ...] = (sys.executable, "-m", "bentos.trading_policy.launch"),
    ) -> list[str]:
        return [*launcher, target, "--host", "127.0.0.1", "--port", str(port)]

    def processes(self) -> list[tuple[int, int]]:
        """Its processes now, remembered: a worker orphaned later is stopped from this list."""
        self.known = sorted(set(self.known) | set(family(self.pid, self.start)))
        return self.known

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
        stop_group(self.pid, start=self.start, known=self.known)
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
        release = verify_stored(self.bentoml_home, built["bento_tag"], self.secrets.public_key())
        record = release.bundle_signature
        return {
            **built,
            "digest": record["digest"],
            "key_id": record["key_id"],
            "bento_digest": release.digest,
        }


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

    def counter(self, name: str) -> float:
        """A counter the live bento exposes in ``/metrics``, summed over its labels."""
        raise NotImplementedError

    def events(self) -> list[dict]:
        """What happened to the live service outside a deploy: each exit and restart."""
        return []

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
    max_body_bytes: int = ServeSettings.max_body_bytes
    """The largest request body; the front door refuses a larger one before the bento sees it."""
    max_in_flight: int = 256
    """Requests at the bento at once; the front door sheds the next with a 503."""
    ready_timeout_s: float = 120.0
    drain_timeout_s: float = 30.0
    lock_timeout_s: float = 600.0
    """How long a deploy waits for another deploy to the same folder to finish."""
    spare: bool = True
    """Keep a second bento of the live tag ready: a bento that dies is replaced at once."""

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
            tokens_file=self.secrets.tokens_file(),
            public_key=self.secrets.public_key(),
            prediction_log=Path(self.prediction_log),
            max_bars=self.max_bars,
            max_batch=self.max_batch,
            max_body_bytes=self.max_body_bytes,
        )

    def bento_env(self) -> dict:
        return bento_env(self.bentoml_home, self.settings())

    def is_serving(self, bento_tag: str) -> bool:
        state = self.current() or {}
        return (
            state.get("bento_tag") == bento_tag
            and running(state.get("bento_pid"), state.get("bento_start"))
            and running(state.get("front_door_pid"), state.get("front_door_start"))
        )

    def _metrics(self) -> str:
        try:
            return httpx.get(f"{self.url}/metrics", timeout=2).text
        except httpx.HTTPError:
            return ""

    def counter(self, name: str) -> float:
        pattern = re.compile(rf"^{re.escape(name)}(?:{{[^}}]*}})?\s+([0-9.e+]+)$", re.MULTILINE)
        return sum(float(value) for value in pattern.findall(self._metrics()))

    def request_counts(self) -> dict[int, int]:
        """BentoML's own counters of the live bento, scraped from ``/metrics``; probes left out."""
        text = self._metrics()
        if not text:
            return {}
        counts: dict[int, int] = {}
        for match in REQUEST_TOTAL.finditer(text):
            if match["endpoint"] not in PROBES:
                code = int(match["code"])
                counts[code] = counts.get(code, 0) + int(float(match["count"]))
        return counts

    def verify(self, bento_tag: str) -> dict:
        """Deploys only signed bentos: bento and bundle must verify against the trusted key."""
        try:
            release = verify_stored(self.bentoml_home, bento_tag, self.secrets.public_key())
        except TradeopsError as exc:
            raise DeployError(f"refusing to deploy {bento_tag}: {exc}") from exc
        return {**release.bundle_signature, "bento_digest": release.digest}

    def events(self) -> list[dict]:
        """Bento exits and restarts since the first deploy (``read_events``), for serving_health."""
        return read_events(self.folder)

    def front_door_status(self, timeout: float = 2) -> dict:
        """The front door's own view: backend, requests in flight per bento port, refusals.

        Asked on its owner-only Unix socket: traders on the serving port never see it.
        """
        transport = httpx.HTTPTransport(uds=str(self.folder / ADMIN_SOCKET))
        with httpx.Client(transport=transport, base_url="http://front-door", timeout=timeout) as c:
            answer = c.get(STATUS_PATH)
        answer.raise_for_status()
        return answer.json()

    def _front_door(self) -> tuple[int, int | None]:
        state = self.current() or {}
        pid, start = state.get("front_door_pid"), state.get("front_door_start")
        if pid and running(pid, start):
            try:
                self.front_door_status()
                return pid, start
            except (httpx.TransportError, httpx.HTTPStatusError):
                # One from before its status left the serving port: replaced, once.
                stop_group(pid, grace=10, start=start)
        log_path = self.folder / "frontdoor.log"
        with log_path.open("ab") as log:
            proc = subprocess.Popen(
                [
                    *(sys.executable, "-m", "resources.frontdoor"),
                    *("--port", str(self.port), "--state", str(self.folder)),
                    *("--max-body-bytes", str(self.max_body_bytes)),
                    *("--max-in-flight", str(self.max_in_flight)),
                    "--supervise",
                    *(["--spare"] if self.spare else []),
                ],
                cwd=REPO_ROOT,
                env=serving_env(),
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        start = start_time(proc.pid)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                tail = log_path.read_text(errors="replace")[-2000:]
                raise DeployError(
                    f"the front door could not start on port {self.port} "
                    f"(exit {proc.returncode}); {log_path} ends:\n{tail}"
                )
            try:
                self.front_door_status(timeout=1)
                return proc.pid, start
            except (httpx.TransportError, httpx.HTTPStatusError):
                time.sleep(0.1)
        stop_group(proc.pid, start=start)
        raise DeployError(f"the front door did not answer on {self.folder / ADMIN_SOCKET}")

    def _switch(self, front_door: tuple[int, int | None], backend: dict) -> None:
        tmp = self.folder / (BACKEND_FILE + ".tmp")
        tmp.write_text(json.dumps(backend))
        os.replace(tmp, self.folder / BACKEND_FILE)
        if not signal_process(*front_door, signal.SIGHUP):
            raise DeployError(f"the front door (pid {front_door[0]}) is gone; nothing switched")
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.front_door_status()["backend"].get("port") == backend["port"]:
                return
            time.sleep(0.05)
        raise DeployError(
            f"the front door did not switch to port {backend['port']}; see "
            f"{self.folder / 'frontdoor.log'}"
        )

    def _write_spec(self, bento: BentoProcess, env: dict) -> None:
        """How the front door starts the live bento again if it dies; written under the deploy
        lock once the door serves it, owner-only since it holds the API token."""
        spec = {
            "bento_tag": bento.target,
            "command": BentoProcess.command(bento.target, "{port}"),
            "env": env,
            "cwd": str(REPO_ROOT),
            "log": str(bento.log),
        }
        tmp = self.folder / (SPEC_FILE + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as out:
            json.dump(spec, out)
        os.replace(tmp, self.folder / SPEC_FILE)

    @staticmethod
    def _backend_of(record: dict) -> dict:
        """What the front door forwards to, and supervises, for a deployment record."""
        return {
            "port": record["bento_port"],
            "bento_tag": record["bento_tag"],
            "pid": record["bento_pid"],
            "start": record.get("bento_start"),
        }

    def _drain(self, port: int) -> int:
        deadline = time.monotonic() + self.drain_timeout_s
        while time.monotonic() < deadline:
            in_flight = self.front_door_status()["in_flight"]
            if not in_flight.get(str(port)):
                return 0
            time.sleep(0.05)
        return int(in_flight.get(str(port), 0))

    def deploy(self, bento_tag: str, why: str, labels: dict) -> dict:
        with deploy_lock(self.folder, self.lock_timeout_s):
            return self._deploy(bento_tag, why, labels)

    def _deploy(self, bento_tag: str, why: str, labels: dict) -> dict:
        os.chmod(self.folder, 0o700)  # it holds the front door's admin socket
        signature = self.verify(bento_tag)
        previous = self.current()
        env = self.bento_env()
        new = BentoProcess(bento_tag, env, self.folder / f"bento-{bento_tag.replace(':', '-')}.log")
        if not new.wait_ready(self.ready_timeout_s):
            tail = new.log_tail()
            new.stop()
            raise DeployError(
                f"{bento_tag} failed its health check (/readyz) within "
                f"{self.ready_timeout_s:.0f} s; rolled back, "
                f"{(previous or {}).get('bento_tag', 'nothing')} keeps serving. Its log:\n{tail}"
            )
        processes = new.processes()
        backend = {"port": new.port, "bento_tag": bento_tag, "pid": new.pid, "start": new.start}
        previous_door = (previous or {}).get("front_door_pid")
        if not running(previous_door, (previous or {}).get("front_door_start")):
            (self.folder / BACKEND_FILE).write_text(json.dumps(backend))
        front_door = None
        try:
            front_door = self._front_door()
            self._switch(front_door, backend)
        except (DeployError, httpx.HTTPError) as exc:
            if previous and front_door:  # it may have switched after all: back to the live one
                with contextlib.suppress(DeployError, httpx.HTTPError, OSError):
                    self._switch(front_door, self._backend_of(previous))
            new.stop()
            raise DeployError(
                f"{bento_tag} started but the front door did not take it ({exc}); stopped it, "
                f"{(previous or {}).get('bento_tag', 'nothing')} keeps serving"
            ) from exc
        self._write_spec(new, env)
        left = 0
        if previous and running(previous.get("bento_pid"), previous.get("bento_start")):
            left = self._drain(previous["bento_port"])
        if previous:
            stop_group(
                previous.get("bento_pid"),
                start=previous.get("bento_start"),
                known=previous.get("bento_processes", []),
            )
        record = {
            "bento_tag": bento_tag,
            "bento_pid": new.pid,
            "bento_start": new.start,
            "bento_processes": [list(p) for p in processes],
            "bento_port": new.port,
            "front_door_pid": front_door[0],
            "front_door_start": front_door[1],
            "url": self.url,
            "since": datetime.now(UTC).isoformat(),
            "why": why,
            "labels": labels,
            "signature_digest": signature["digest"],
            "signing_key_id": signature["key_id"],
            "bento_digest": signature["bento_digest"],
            "previous_bento_tag": (previous or {}).get("bento_tag"),
            "requests_cut_off_while_draining": left,
        }
        tmp = self.folder / (DEPLOYMENT_FILE + ".tmp")
        tmp.write_text(json.dumps(record, indent=2))
        os.replace(tmp, self.folder / DEPLOYMENT_FILE)
        return record

    def stop(self) -> None:
        stop_deployment(self.folder)
