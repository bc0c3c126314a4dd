"""`terraform fmt -check` and `terraform validate` of every root, where the machine has the
terraform binary and an unpacked AWS provider mirror (no registry is reachable here): the
checks CI's `terraform` job runs with the real registry. Each runs on a copy of terraform/,
so nothing (.terraform/, lock files) is written into the repository."""

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.infra.terraform import TERRAFORM

MIRROR = Path(os.environ.get("TRADEOPS_TF_PROVIDER_MIRROR", "/opt/tf-plugins"))
BINARY = shutil.which("terraform")
PROVIDER = MIRROR / "registry.terraform.io" / "hashicorp" / "aws"
ROOTS = ["bootstrap", "envs/dev", "envs/prod"]

pytestmark = pytest.mark.skipif(
    BINARY is None or not PROVIDER.is_dir(),
    reason="needs the terraform binary and an AWS provider mirror "
    "(TRADEOPS_TF_PROVIDER_MIRROR); CI's terraform job runs these",
)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("tf")
    shutil.copytree(TERRAFORM, root / "terraform", ignore=shutil.ignore_patterns(".terraform"))
    return root


@pytest.fixture(scope="module")
def env(workdir) -> dict[str, str]:
    rc = workdir / "terraformrc"
    rc.write_text(
        "provider_installation {\n"
        "  filesystem_mirror {\n"
        f'    path    = "{MIRROR}"\n'
        '    include = ["registry.terraform.io/hashicorp/aws"]\n'
        "  }\n"
        "}\n"
    )
    return {
        "PATH": os.environ.get("PATH", ""),
        "HOME": str(workdir),
        "TF_CLI_CONFIG_FILE": str(rc),
        "TF_IN_AUTOMATION": "1",
        "CHECKPOINT_DISABLE": "1",
    }


def terraform(env: dict[str, str], cwd: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [BINARY, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=600
    )


def test_terraform_fmt(workdir, env):
    done = terraform(env, workdir / "terraform", "fmt", "-check", "-recursive", "-no-color")
    assert done.returncode == 0, (
        f"not formatted (run terraform fmt -recursive terraform):\n{done.stdout}"
    )


@pytest.mark.parametrize("root", ROOTS)
def test_terraform_validate(workdir, env, root):
    cwd = workdir / "terraform" / root
    init = terraform(
        env, cwd, "init", "-backend=false", "-input=false", "-no-color", "-lockfile=readonly"
    )
    assert init.returncode == 0, init.stdout + init.stderr
    done = terraform(env, cwd, "validate", "-json", "-no-color")
    report = json.loads(done.stdout)
    assert report["valid"], json.dumps(report["diagnostics"], indent=1)
    assert report["error_count"] == 0
    assert report["warning_count"] == 0, json.dumps(report["diagnostics"], indent=1)
