"""The prod path's stand-ins, real servers on loopback: an S3/KMS/ECS API (moto in server
mode), PostgreSQL (Debian's package) and an MLflow tracking server on both.

Each is started on a free port, waited for by probing it (never by sleeping a fixed
time), and stopped by the PID it was started with. PostgreSQL refuses to run as root,
so under root (CI) it runs as the ``postgres`` user the Debian package creates.
"""

import contextlib
import glob
import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import boto3
import httpx

BIN = Path(sys.executable).parent
REGION = "us-east-1"
STARTUP_S = 60.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(check, what: str, proc: subprocess.Popen, log: Path, timeout: float = STARTUP_S):
    """Polls ``check`` until it holds; fails with the server's log if it exits or never does."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited ({proc.returncode}): {log.read_text()[-3000:]}")
        with contextlib.suppress(Exception):
            if check():
                return
        time.sleep(0.2)
    raise RuntimeError(f"{what} not ready within {timeout:.0f} s: {log.read_text()[-3000:]}")


def stop(proc: subprocess.Popen | None, sig: int = signal.SIGTERM, group: bool = False) -> None:
    """Stops the process by its PID (its own process group if it leads one), then waits."""
    if proc is None or proc.poll() is not None:
        return

    def send(signum: int) -> None:
        with contextlib.suppress(ProcessLookupError):
            if group:
                os.killpg(proc.pid, signum)  # the group the server leads: its id is its PID
            else:
                proc.send_signal(signum)

    send(sig)
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        send(signal.SIGKILL)
        proc.wait(10)


def port_open(port: int) -> bool:
    with socket.create_connection(("127.0.0.1", port), timeout=0.5):
        return True


@dataclass
class Moto:
    """moto in server mode: S3, KMS, ECS and EC2 on one loopback port."""

    folder: Path
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def env(self) -> dict[str, str]:
        """What a process needs to reach the stand-in with boto3 (fake credentials)."""
        return {
            "AWS_ACCESS_KEY_ID": "standin",
            "AWS_SECRET_ACCESS_KEY": "standin",
            "AWS_DEFAULT_REGION": REGION,
            "AWS_REGION": REGION,
            "AWS_ENDPOINT_URL": self.url,
            "AWS_ENDPOINT_URL_S3": self.url,
            "AWS_ENDPOINT_URL_ECS": self.url,
        }

    def client(self, service: str):
        return boto3.client(
            service,
            endpoint_url=self.url,
            region_name=REGION,
            aws_access_key_id="standin",
            aws_secret_access_key="standin",
        )

    def start(self) -> "Moto":
        log = self.folder / "moto.log"
        self.proc = subprocess.Popen(
            [str(BIN / "python"), "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
            stdout=log.open("w"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        wait_for(
            lambda: httpx.get(f"{self.url}/moto-api/", timeout=1).status_code < 500,
            "moto",
            self.proc,
            log,
        )
        return self

    def stop(self) -> None:
        stop(self.proc, group=True)


@dataclass
class Postgres:
    """A throwaway PostgreSQL cluster on a loopback port, password auth (scram-sha-256)."""

    folder: Path
    port: int = field(default_factory=free_port)
    password: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    user: str = "tradeops"
    proc: subprocess.Popen | None = None

    @staticmethod
    def bin_dir() -> Path:
        found = sorted(glob.glob("/usr/lib/postgresql/*/bin/postgres"))
        if found:
            return Path(found[-1]).parent
        on_path = shutil.which("postgres")
        if on_path:
            return Path(on_path).parent
        raise RuntimeError("PostgreSQL is not installed: apt-get install postgresql (.ci/run does)")

    def _as(self) -> dict:
        """Runs the server as ``postgres`` under root, which PostgreSQL refuses to run as."""
        if os.geteuid() != 0:
            return {}
        account = pwd.getpwnam("postgres")
        return {"user": account.pw_uid, "group": account.pw_gid, "extra_groups": []}

    def start(self) -> "Postgres":
        bin_dir = self.bin_dir()
        # Its own folder under /tmp: the postgres user cannot enter root's pytest folders.
        self.root = Path(tempfile.mkdtemp(prefix="tradeops-pg-"))
        data, pwfile = self.root / "data", self.root / "pw"
        pwfile.write_text(self.password)
        as_user = self._as()
        if as_user:
            for path in (self.root, pwfile):
                os.chown(path, as_user["user"], as_user["group"])
        os.chmod(self.root, 0o700)
        subprocess.run(
            [
                str(bin_dir / "initdb"),
                "-D",
                str(data),
                "-U",
                self.user,
                f"--pwfile={pwfile}",
                "--auth=scram-sha-256",
                "-E",
                "UTF8",
                "--locale=C",
            ],
            check=True,
            capture_output=True,
            **as_user,
        )
        log = self.folder / "postgres.log"
        self.proc = subprocess.Popen(
            [
                str(bin_dir / "postgres"),
                "-D",
                str(data),
                "-p",
                str(self.port),
                "-h",
                "127.0.0.1",
                "-k",
                str(self.root),
                "-c",
                "fsync=off",
                "-c",
                "max_connections=200",
            ],
            stdout=log.open("w"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
            **as_user,
        )
        wait_for(lambda: self.connect().close() is None, "postgres", self.proc, log)
        return self

    def connect(self, db: str = "postgres"):
        import psycopg2

        return psycopg2.connect(
            host="127.0.0.1", port=self.port, user=self.user, password=self.password, dbname=db
        )

    def create_database(self, name: str) -> None:
        conn = self.connect()
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute(f'CREATE DATABASE "{name}"')
        conn.close()

    def url(self, db: str) -> str:
        return f"postgresql+psycopg2://{self.user}:{self.password}@127.0.0.1:{self.port}/{db}"

    def stop(self) -> None:
        stop(self.proc, signal.SIGINT)  # fast shutdown: roll back, close, exit
        shutil.rmtree(getattr(self, "root", ""), ignore_errors=True)


@dataclass
class MlflowServer:
    """``mlflow server``: runs and the registry in PostgreSQL, artifacts proxied to S3."""

    folder: Path
    backend: str
    artifacts: str
    env: dict[str, str]
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> "MlflowServer":
        log = self.folder / "mlflow.log"
        env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
        self.proc = subprocess.Popen(
            [
                str(BIN / "mlflow"),
                "server",
                "--backend-store-uri",
                self.backend,
                "--artifacts-destination",
                self.artifacts,
                "--serve-artifacts",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--workers",
                "1",
            ],
            cwd=self.folder,
            env={**env, **self.env},
            stdout=log.open("w"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        wait_for(
            lambda: httpx.get(f"{self.url}/health", timeout=2).status_code == 200,
            "mlflow server",
            self.proc,
            log,
            timeout=180,
        )
        return self

    def stop(self) -> None:
        stop(self.proc, group=True)
