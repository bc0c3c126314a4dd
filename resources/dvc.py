"""Drives DVC through its CLI from its own tool environment.

DVC 3 pulls in hydra-core, which pins antlr4-python3-runtime 4.9; Dagster's
asset-selection parser needs the 4.13 runtime. Installed side by side, string
selections fail with ``TypeError: ord() expected string of length 1``, and
``pip check`` says nothing. So DVC lives in ``.venv-dvc`` and is only ever run
as a program (docs/decisions/0001-dvc-tool-env.md).
"""

import hashlib
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import yaml

from tradeops_assets.core.errors import ConfigError, SnapshotError

DVC_ENV = "TRADEOPS_DVC"
REMOTE_NAME = "tradeops"


def default_dvc_bin() -> str:
    """``$TRADEOPS_DVC``, else ``.venv-dvc`` beside the active venv, else ``dvc`` on PATH."""
    explicit = os.environ.get(DVC_ENV)
    if explicit:
        return explicit
    beside = Path(sys.prefix).parent / ".venv-dvc" / "bin" / "dvc"
    if beside.exists():
        return str(beside)
    return shutil.which("dvc") or "dvc"


def md5_of(path: Path) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@dataclass(frozen=True)
class DvcRepo:
    """A DVC repository without git (``dvc init --no-scm``) with one remote."""

    root: Path
    remote_url: str
    dvc_bin: str

    def run(self, *args: str) -> str:
        try:
            done = subprocess.run(
                [self.dvc_bin, *args],
                cwd=self.root,
                capture_output=True,
                text=True,
                check=False,
                env={**os.environ, "DVC_NO_ANALYTICS": "1"},
            )
        except FileNotFoundError as exc:
            raise ConfigError(
                f"DVC executable '{self.dvc_bin}' not found; run 'make .venv-dvc' or set {DVC_ENV}"
            ) from exc
        if done.returncode != 0:
            raise SnapshotError(
                f"dvc {' '.join(args)} failed in {self.root}: {done.stderr.strip()}"
            )
        return done.stdout

    def ensure(self) -> "DvcRepo":
        if not (self.root / ".dvc").is_dir():
            self.root.mkdir(parents=True, exist_ok=True)
            self.run("init", "--no-scm", "-q")
            self.run("config", "core.autostage", "false")
            self.run(
                "config", "cache.type", "reflink,copy"
            )  # a link would let an in-place write corrupt the cache
            self.run("remote", "add", "-d", "-f", REMOTE_NAME, self.remote_url)
        if "://" not in self.remote_url:
            Path(self.remote_url).mkdir(parents=True, exist_ok=True)
        return self

    def add_and_push(self, paths: list[Path]) -> dict[Path, str]:
        """Snapshots files into the cache and the remote; returns each file's md5."""
        relative = [str(p.relative_to(self.root)) for p in paths]
        self.run("add", "-q", *relative)
        self.run("push", "-q", *[f"{r}.dvc" for r in relative])
        return {p: self.recorded_md5(p) for p in paths}

    def recorded_md5(self, path: Path) -> str:
        meta = yaml.safe_load(Path(f"{path}.dvc").read_text())
        return meta["outs"][0]["md5"]

    def restore(self, md5: str, out: Path) -> Path:
        """Fetches the exact bytes with this md5 from the remote into ``out``."""
        stage = self.root / ".restore" / md5
        stage.mkdir(parents=True, exist_ok=True)
        pointer = stage / "data.dvc"
        pointer.write_text(yaml.safe_dump({"outs": [{"md5": md5, "path": "data", "hash": "md5"}]}))
        try:
            self.run("pull", "-q", str(pointer.relative_to(self.root)))
        except SnapshotError as exc:
            raise SnapshotError(
                f"no snapshot with md5 {md5} in DVC remote {self.remote_url}: {exc}"
            ) from exc
        out.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(stage / "data", out)
        shutil.rmtree(stage)
        got = md5_of(out)
        if got != md5:
            raise SnapshotError(f"restored {out} has md5 {got}, expected {md5}")
        return out
