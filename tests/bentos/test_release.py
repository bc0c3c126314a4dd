"""The bento is the unit of release: nothing of it serves unless all of it is as signed.

Each test tampers with a private copy of the BentoML store (bentos and models),
then starts it the way the deployer does (``bentos.trading_policy.launch``) or,
for the checks the service makes itself, with a bare ``bentoml serve``.
"""

import json
import shutil
import sys
from pathlib import Path

import pytest
import yaml

from resources.serving import BentoProcess
from tradeops_assets.core import signing

from .conftest import Server, server_env

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("bento")]
BENTOML = Path(sys.executable).with_name("bentoml")


def store_copy(bento_home: Path, packaged: dict, tmp: Path) -> tuple[Path, Path, Path]:
    """A copy of the whole store, and its bento and model folders, to tamper with."""
    home = tmp / "bentoml"
    shutil.copytree(bento_home, home, symlinks=True)
    bento = home / "bentos" / "trading_policy" / packaged["bento_tag"].split(":")[1]
    model = home / "models" / "trading_policy" / packaged["model_tag"].split(":")[1]
    return home, bento, model


def refused(server: BentoProcess, reason: str, nonzero: bool = True) -> str:
    """The start fails (never ready, the process ends) and its log says why.

    A bare ``bentoml serve`` whose worker refuses is stopped by that worker with SIGTERM,
    which BentoML answers with exit 0; the launcher's refusals exit 2 or 3.
    """
    try:
        ready = server.wait_ready(timeout=90)
        code = server.proc.wait(60) if not ready else None
        text = server.log_tail(1_000_000)
        assert not ready, text[-3000:]
        assert code is not None, text[-3000:]
        assert code != 0 or not nonzero, text[-3000:]
        assert reason in text, text[-3000:]
        return text
    finally:
        server.stop()


def bare_serve(bento_tag: str, env: dict, log: Path) -> BentoProcess:
    """``bentoml serve`` without the launcher: what the service checks on its own."""
    return BentoProcess(bento_tag, env, log, launcher=(str(BENTOML), "serve"))


def test_edited_service_code_in_a_stored_bento_never_starts(
    packaged, bento_home, keypair, tmp_path
):
    """The probe's attack: service.py edited to answer target_position 1.0 under the same tag."""
    home, bento, _ = store_copy(bento_home, packaged, tmp_path)
    service = bento / "src" / "bentos" / "trading_policy" / "service.py"
    original = service.read_text()
    service.write_text(
        original.replace("def predict(http: Request) -> Response:\n", "def predict(http):\n", 1)
        + "\n\nasync def _always_long(http):\n"
        '    return _json({"target_position": 1.0})\n'
    )
    assert service.read_text() != original
    env = server_env(home, keypair.public_b64, tmp_path / "log")
    text = refused(
        Server(packaged["bento_tag"], env), "changed: src/bentos/trading_policy/service.py"
    )
    assert "Uvicorn running" not in text  # refused before any of the bento's code ran


@pytest.mark.parametrize(
    ("tamper", "reason"),
    [
        (
            lambda bento: (bento / "bento.yaml").write_text(
                (bento / "bento.yaml").read_text().replace("project: tradeops", "project: x")
            ),
            "changed: bento.yaml",
        ),
        (
            lambda bento: (bento / "src" / "tradeops_assets" / "core" / "extra.py").write_text(""),
            "added: src/tradeops_assets/core/extra.py",
        ),
        (lambda bento: (bento / "README.md").unlink(), "missing: README.md"),
        (lambda bento: (bento / signing.BENTO_SIGNATURE_FILE).unlink(), "is not signed"),
    ],
    ids=["config", "added-code", "removed-file", "unsigned"],
)
def test_any_change_to_the_bento_is_refused_by_the_launcher_and_the_service(
    packaged, bento_home, keypair, tmp_path, tamper, reason
):
    home, bento, _ = store_copy(bento_home, packaged, tmp_path)
    tamper(bento)
    env = server_env(home, keypair.public_b64, tmp_path / "log")
    refused(Server(packaged["bento_tag"], env), reason)
    refused(bare_serve(packaged["bento_tag"], env, tmp_path / "bare.log"), reason, nonzero=False)


def test_a_tampered_or_unsigned_bundle_is_refused(packaged, bento_home, keypair, tmp_path):
    home, _, model = store_copy(bento_home, packaged, tmp_path)
    lineage = model / "bundle" / "lineage.json"
    lineage.write_text(lineage.read_text().replace('"7"', '"8"'))
    env = server_env(home, keypair.public_b64, tmp_path / "log")
    refused(Server(packaged["bento_tag"], env), "modified after signing")
    (model / "bundle" / signing.SIGNATURE_FILE).unlink()
    refused(Server(packaged["bento_tag"], env), "is not signed")


def test_the_environment_cannot_point_the_bento_at_another_model(
    packaged, bento_home, keypair, tmp_path
):
    """A second, validly signed model in the store is still not the one this bento serves."""
    home, _, model = store_copy(bento_home, packaged, tmp_path)
    other = model.parent / "other0001"
    shutil.copytree(model, other)
    info = yaml.safe_load((other / "model.yaml").read_text())
    (other / "model.yaml").write_text(yaml.safe_dump(info | {"version": "other0001"}))
    env = server_env(
        home, keypair.public_b64, tmp_path / "log", TRADEOPS_POLICY_MODEL="trading_policy:other0001"
    )
    refused(Server(packaged["bento_tag"], env), "serves nothing else")
    refused(
        bare_serve(packaged["bento_tag"], env, tmp_path / "bare.log"),
        "serves nothing else",
        nonzero=False,
    )


def test_only_the_trusted_key_vouches_and_its_id_is_checked(
    packaged, bento_home, keypair, tmp_path
):
    home, bento, _ = store_copy(bento_home, packaged, tmp_path)
    stranger = signing.DevKeypair.generate()
    refused(
        Server(packaged["bento_tag"], server_env(home, stranger.public_b64, tmp_path / "a")),
        "the trusted key is",
    )
    refused(
        Server(packaged["bento_tag"], server_env(home, "", tmp_path / "b")),
        "TRADEOPS_SIGNING_PUBLIC_KEY is not set",
    )
    record = json.loads((bento / signing.BENTO_SIGNATURE_FILE).read_text())
    resigned = signing.sign_bento(
        bento, stranger.private_pem, record["model_tag"], record["bundle_digest"]
    )
    trusted_id = signing.key_id(signing.load_public_key(keypair.public_b64))
    (bento / signing.BENTO_SIGNATURE_FILE).write_text(json.dumps(resigned | {"key_id": trusted_id}))
    refused(
        Server(packaged["bento_tag"], server_env(home, keypair.public_b64, tmp_path / "c")),
        "does not verify with the trusted key",
    )


def test_serving_refuses_to_start_beside_a_private_key(packaged, bento_home, keypair, tmp_path):
    env = server_env(bento_home, keypair.public_b64, tmp_path / "log")
    leaked = env | {"TRADEOPS_SIGNING_KEY": keypair.private_pem.decode()}
    refused(Server(packaged["bento_tag"], leaked), "serving never holds the private signing key")
    refused(
        bare_serve(packaged["bento_tag"], leaked, tmp_path / "bare.log"),
        "TRADEOPS_SIGNING_KEY in the serving environment",
        nonzero=False,
    )
    pem_elsewhere = env | {"SOME_VAR": keypair.private_pem.decode()}
    refused(Server(packaged["bento_tag"], pem_elsewhere), "SOME_VAR")


def test_no_token_configured_is_refused(packaged, bento_home, keypair, tmp_path):
    env = server_env(bento_home, keypair.public_b64, tmp_path / "log", TRADEOPS_API_TOKEN="")
    refused(Server(packaged["bento_tag"], env), "neither TRADEOPS_API_TOKEN nor")


def test_a_served_bento_stays_as_signed(served, bento_home, keypair):
    """Serving writes nothing into the signed tree (no bytecode), so a restart verifies."""
    bento = bento_home / "bentos" / "trading_policy" / served.bento_tag.split(":")[1]
    assert signing.verify_bento(bento, keypair.public_b64)["model_tag"] == served.model_tag
    assert not list(bento.rglob("__pycache__"))
