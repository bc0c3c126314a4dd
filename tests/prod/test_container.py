"""``bentos/trading_policy/Dockerfile`` without Docker: the file read as Docker reads it, and
the launcher it runs, copied as the image copies it, refusing a tampered bento laid out in a
store as the image lays it out."""

import glob
import json
import shlex
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from bentos.trading_policy.release import store_path, verify_stored
from resources.serving import serving_env
from tests.bentos.conftest import (  # noqa: F401 (session fixtures, re-used here)
    TOKEN,
    bento_home,
    keypair,
    packaged,
    policy_bundle,
)

REPO = Path(__file__).resolve().parents[2]
DOCKERFILE = REPO / "bentos" / "trading_policy" / "Dockerfile"
STORE_IN_IMAGE = "/home/bentoml/bentoml"
LISTEN = ("--host", "0.0.0.0", "--port", "3000")


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) in order, continuation lines joined, comments dropped."""
    out, pending = [], ""
    for line in DOCKERFILE.read_text().splitlines():
        if line.lstrip().startswith("#") or (not line.strip() and not pending):
            continue
        pending += line.rstrip().removesuffix("\\") + " "
        if not line.rstrip().endswith("\\"):
            word, _, rest = pending.strip().partition(" ")
            out.append((word.upper(), " ".join(rest.split())))
            pending = ""
    return out


def of(kind: str) -> list[str]:
    return [args for word, args in instructions() if word == kind]


def env_names() -> set[str]:
    names = set()
    for args in of("ENV"):
        names |= {item.split("=", 1)[0] for item in shlex.split(args)}
    return names


def test_the_image_runs_the_launcher_as_a_non_root_user():
    (user,) = of("USER")
    assert user.split(":")[0] not in ("root", "0")
    # The last USER comes before the command, after everything copied as root.
    words = [word for word, _ in instructions()]
    assert words.index("USER") > max(i for i, w in enumerate(words) if w in ("COPY", "RUN"))
    (cmd,) = of("CMD")
    assert not of("ENTRYPOINT")  # the task definition's command replaces CMD whole
    assert "python -m bentos.trading_policy.launch" in cmd
    assert '\\"$BENTO_TAG\\" --host 0.0.0.0 --port 3000' in cmd
    assert "exec python" in cmd  # the launcher is PID 1's process, and gets ECS's SIGTERM


def test_no_private_key_and_no_bytecode():
    names = env_names() | {a.split("=", 1)[0] for a in of("ARG")}
    assert "TRADEOPS_SIGNING_KEY" not in names
    assert not [n for n in names if "PRIVATE" in n.upper()]
    assert "private" not in " ".join(args for w, args in instructions() if w != "RUN").lower()
    assert "PYTHONDONTWRITEBYTECODE=1" in " ".join(of("ENV"))
    assert f"BENTOML_HOME={STORE_IN_IMAGE}" in " ".join(of("ENV"))
    assert {"BENTO_TAG", "BENTOML_STORE"} <= {a.split("=", 1)[0] for a in of("ARG")}


def test_the_healthcheck_asks_readyz_on_the_served_port():
    (check,) = of("HEALTHCHECK")
    assert check.startswith("--")
    assert "CMD" in check
    assert "http://127.0.0.1:3000/readyz" in check


def test_serving_installs_neither_torch_nor_dagster_and_pins_to_the_lock():
    (install,) = [r for r in of("RUN") if "pip install" in r]
    assert "--constraint requirements/lock.txt" in install
    assert "bentoml" in install
    for heavy in ("torch", "dagster", "mlflow", "stable-baselines3", "gymnasium"):
        assert heavy not in install


SERVING_IMPORTS = textwrap.dedent(
    """
    import json, sys
    from importlib.metadata import packages_distributions
    import bentos.trading_policy.launch, bentos.trading_policy.service
    from tradeops_assets.core import tail_kernel
    owners = packages_distributions()
    tops = {name.partition(".")[0] for name in sys.modules}
    print(json.dumps(sorted({d for top in tops for d in owners.get(top, [])})))
    """
)


IMPORTED_IF_PRESENT = {
    "sniffio": "anyio tries it for the running async library",
    "charset-normalizer": "numpy.f2py (which numba loads) tries it for source encodings",
    "setuptools": "its _distutils_hack .pth runs in every interpreter that has it",
    "coverage": "the test run's own subprocess hook",
}
"""Distributions imported here only because they are installed: each importer falls back."""


def _installs(names: list[str]) -> set[str]:
    """The distributions ``pip install names`` brings, with everything they require."""
    from importlib.metadata import PackageNotFoundError, distribution

    from packaging.requirements import Requirement

    def canonical(name: str) -> str:
        return name.lower().replace("_", "-")

    seen, todo = set(), [canonical(Requirement(n).name) for n in names]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        try:
            requires = distribution(name).requires or []
        except PackageNotFoundError:
            continue
        for spec in map(Requirement, requires):
            if spec.marker is None or spec.marker.evaluate({"extra": ""}):
                todo.append(canonical(spec.name))
    return seen


def test_the_image_installs_every_distribution_serving_imports():
    """What the service, the launcher and the compiled features import at start-up, checked
    against what the image's one ``pip install`` brings (numba was once missing)."""
    (install,) = [r for r in of("RUN") if "pip install" in r]
    named = [w.strip("\"'") for w in install.split("pip install", 1)[1].split() if w[0] != "-"]
    named = [w for w in named if w and w != "requirements/lock.txt"]
    imported = json.loads(
        subprocess.run(
            [sys.executable, "-c", SERVING_IMPORTS],
            cwd=REPO,
            capture_output=True,
            text=True,
            check=True,
            timeout=300,
        ).stdout
    )
    assert {"numba", "bentoml"} <= set(imported)
    installed = _installs(named) | set(IMPORTED_IF_PRESENT) | {"tradeops"}  # COPY'd source
    missing = {d for d in imported if d.lower().replace("_", "-") not in installed}
    assert not missing, f"serving imports {sorted(missing)}; the Dockerfile does not install them"


def copy_as_the_image_does(app: Path, store: Path, built: Path) -> None:
    """Every COPY of the Dockerfile, the build context at the repository root and the build's
    store at ``built``: code into ``app`` (the WORKDIR), the store into ``store``."""
    for args in of("COPY"):
        *sources, target = args.split()
        for source in sources:
            if source.startswith("${BENTOML_STORE}/"):
                assert target.startswith(STORE_IN_IMAGE + "/")
                shutil.copytree(
                    built / source.removeprefix("${BENTOML_STORE}/"),
                    store / target.removeprefix(STORE_IN_IMAGE + "/"),
                )
                continue
            assert not target.startswith("/"), f"COPY {args}: outside the WORKDIR"
            matches = [Path(m) for m in glob.glob(str(REPO / source))]
            assert matches, f"COPY {source}: nothing in the build context"
            for path in matches:
                dest = app / target / path.name if target.endswith("/") else app / target
                dest.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy(path, dest)


def launch(app: Path, store: Path, tag: str, public_key: str, log: Path):
    env = serving_env(
        BENTOML_HOME=str(store),
        BENTOML_DO_NOT_TRACK="True",
        PYTHONDONTWRITEBYTECODE="1",
        TRADEOPS_SIGNING_PUBLIC_KEY=public_key,
        TRADEOPS_API_TOKEN=TOKEN,
        TRADEOPS_PREDICTION_LOG=str(log),
    )
    env.pop("PYTHONPATH", None)
    return subprocess.run(
        [sys.executable, "-m", "bentos.trading_policy.launch", tag, *LISTEN],
        cwd=app,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture
def image(packaged, bento_home, tmp_path) -> tuple[Path, Path]:  # noqa: F811
    app, store = tmp_path / "opt" / "tradeops", tmp_path / "home" / "bentoml" / "bentoml"
    app.mkdir(parents=True)
    copy_as_the_image_does(app, store, bento_home)
    return app, store


def test_the_launcher_in_the_image_layout_refuses_a_tampered_bento(
    image,
    packaged,  # noqa: F811
    keypair,  # noqa: F811
    tmp_path,
):
    app, store = image
    tag = packaged["bento_tag"]
    assert (app / "bentos" / "trading_policy" / "launch.py").exists()
    assert not (app / "tradeops_assets" / "definitions.py").exists()  # serving code only
    # As copied, the bento verifies against the trusted key.
    verify_stored(store, tag, keypair.public_b64)

    service = store_path(store, tag, "bentos") / "src" / "bentos" / "trading_policy" / "service.py"
    service.write_text(service.read_text() + "\nimport os  # planted\n")
    done = launch(app, store, tag, keypair.public_b64, tmp_path / "log")
    assert done.returncode == 3, done.stderr
    assert f"refusing to serve {tag}" in done.stderr
    assert "service.py" in done.stderr


def test_the_launcher_in_the_image_layout_refuses_a_bento_signed_by_another_key(
    image,
    packaged,  # noqa: F811
    tmp_path,
):
    from tradeops_assets.core.signing import DevKeypair

    app, store = image
    done = launch(
        app, store, packaged["bento_tag"], DevKeypair.generate().public_b64, tmp_path / "l"
    )
    assert done.returncode == 3, done.stderr
    assert "refusing to serve" in done.stderr
