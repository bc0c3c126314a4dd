"""core.signing over a whole bento: every file, the model tag and the bundle digest it serves."""

import json
import os

import pytest

from tradeops_assets.core import signing
from tradeops_assets.core.errors import SignatureError


@pytest.fixture(scope="module")
def key() -> signing.DevKeypair:
    return signing.DevKeypair.generate()


@pytest.fixture
def bento(tmp_path, key):
    root = tmp_path / "bento"
    (root / "src" / "bentos").mkdir(parents=True)
    (root / "bento.yaml").write_text("models:\n- tag: trading_policy:abc\n")
    (root / "src" / "bentos" / "service.py").write_text("TARGET = None\n")
    (root / "README.md").write_text("policy\n")
    record = signing.sign_bento(root, key.private_pem, "trading_policy:abc", "b" * 64)
    return root, record


def test_an_intact_bento_verifies_and_names_its_model(bento, key):
    root, record = bento
    verified = signing.verify_bento(root, key.public_b64)
    assert verified == record
    assert verified["model_tag"] == "trading_policy:abc"
    assert set(verified["files"]) == {"bento.yaml", "src/bentos/service.py", "README.md"}
    assert signing.bento_digest(verified) == signing.bento_digest(record)


@pytest.mark.parametrize(
    ("tamper", "message"),
    [
        (lambda r: (r / "src/bentos/service.py").write_text("TARGET = 1.0\n"), "changed: src/bent"),
        (lambda r: (r / "bento.yaml").write_text("models: []\n"), "changed: bento.yaml"),
        (lambda r: (r / "src/bentos/extra.py").write_text(""), "added: src/bentos/extra.py"),
        (
            lambda r: (
                (r / "src/bentos/__pycache__").mkdir()
                or (r / "src/bentos/__pycache__/service.cpython-311.pyc").write_bytes(b"x")
            ),
            "added: src/bentos/__pycache__/service.cpython-311.pyc",
        ),
        (lambda r: (r / "README.md").unlink(), "missing: README.md"),
        (lambda r: os.symlink("/etc/passwd", r / "src/link"), "src/link is a symbolic link"),
    ],
)
def test_any_file_changed_added_or_removed_is_named(bento, key, tamper, message):
    root, _ = bento
    tamper(root)
    with pytest.raises(SignatureError, match=message):
        signing.verify_bento(root, key.public_b64)


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda r: r | {"model_tag": "trading_policy:other"}, "does not verify"),
        (lambda r: r | {"bundle_digest": "c" * 64}, "does not verify"),
        (
            lambda r: r | {"files": {**r["files"], "bento.yaml": "0" * 64}},
            "does not verify",
        ),
        (lambda r: r | {"key_id": "0123456789abcdef"}, "claims signer key 0123456789abcdef"),
        (lambda r: r | {"algorithm": "none"}, "unknown algorithm 'none'"),
        (lambda r: {k: v for k, v in r.items() if k != "files"}, "malformed"),
        (lambda r: r | {"signature": "%%%"}, "malformed"),
    ],
)
def test_the_manifest_itself_cannot_be_edited(bento, key, edit, message):
    root, record = bento
    (root / signing.BENTO_SIGNATURE_FILE).write_text(json.dumps(edit(record)))
    with pytest.raises(SignatureError, match=message):
        signing.verify_bento(root, key.public_b64)


def test_a_bento_signed_by_another_key_is_refused_even_claiming_the_trusted_id(bento, key):
    root, _ = bento
    stranger = signing.DevKeypair.generate()
    forged = signing.sign_bento(root, stranger.private_pem, "trading_policy:abc", "b" * 64)
    with pytest.raises(SignatureError, match="claims signer key"):
        signing.verify_bento(root, key.public_b64)
    trusted_id = signing.key_id(signing.load_public_key(key.public_b64))
    (root / signing.BENTO_SIGNATURE_FILE).write_text(json.dumps(forged | {"key_id": trusted_id}))
    with pytest.raises(SignatureError, match="does not verify with the trusted key"):
        signing.verify_bento(root, key.public_b64)


def test_an_unsigned_bento_is_refused(tmp_path, key):
    with pytest.raises(SignatureError, match="is not signed"):
        signing.verify_bento(tmp_path, key.public_b64)
