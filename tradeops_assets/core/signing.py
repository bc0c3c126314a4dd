"""Ed25519 signatures over a policy bundle and over the whole bento that serves it.

A bundle is signed where it is built and verified where it is served, so a file
swapped in the model store, the bento or a container image stops the endpoint
from starting. The bundle's signature (``signature.json``) covers the policy; the
bento's (``tradeops-signature.json`` beside ``bento.yaml``) covers every file of
the bento (service code, configuration, ``bento.yaml``) and names the one model
and bundle digest it serves, so neither the code nor the model can be swapped
under a valid signature. The key that verifies either must not travel with them:
it comes from the deployment, because a key shipped next to the files it vouches
for proves nothing. A signature's ``key_id`` is checked against the trusted key,
never taken on trust.
"""

import base64
import binascii
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from tradeops_assets.core.errors import SignatureError

SIGNATURE_FILE = "signature.json"
ALGORITHM = "ed25519-sha256-dir-v1"
BENTO_SIGNATURE_FILE = "tradeops-signature.json"
BENTO_ALGORITHM = "ed25519-sha256-bento-v1"


def bundle_digest(directory: Path | str) -> str:
    """SHA-256 over every file's relative path and bytes, in sorted order, signature excluded.

    Names are hashed with their lengths so that moving bytes between a name and the
    content (or between files) changes the digest.
    """
    directory = Path(directory)
    digest = hashlib.sha256(ALGORITHM.encode())
    files = sorted(
        p for p in directory.rglob("*") if p.is_file() and p.relative_to(directory).as_posix()
    )
    for path in files:
        name = path.relative_to(directory).as_posix()
        if name == SIGNATURE_FILE:
            continue
        data = path.read_bytes()
        digest.update(len(name).to_bytes(8, "big") + name.encode())
        digest.update(len(data).to_bytes(8, "big") + data)
    return digest.hexdigest()


def key_id(public_key: Ed25519PublicKey) -> str:
    """Short fingerprint so an operator can tell which key signed a bundle."""
    return hashlib.sha256(public_bytes(public_key)).hexdigest()[:16]


def public_bytes(public_key: Ed25519PublicKey) -> bytes:
    return public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def _decode(material: bytes | str, what: str) -> bytes:
    if isinstance(material, str):
        material = material.encode()
    material = material.strip()
    if material.startswith(b"-----BEGIN"):
        return material
    if len(material) == 32:
        return material
    try:
        return base64.b64decode(material, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise SignatureError(f"{what} is neither PEM, raw 32 bytes nor base64: {exc}") from None


def load_private_key(material: bytes | str) -> Ed25519PrivateKey:
    """An Ed25519 private key from PEM (PKCS8), raw 32 bytes or base64 of either."""
    data = _decode(material, "signing private key")
    try:
        if data.startswith(b"-----BEGIN"):
            key = serialization.load_pem_private_key(data, password=None)
        elif len(data) == 32:
            key = Ed25519PrivateKey.from_private_bytes(data)
        else:
            key = serialization.load_pem_private_key(base64.b64decode(data), password=None)
    except (ValueError, TypeError, binascii.Error) as exc:
        raise SignatureError(f"signing private key cannot be read: {exc}") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise SignatureError(f"signing key must be Ed25519, got {type(key).__name__}")
    return key


def load_public_key(material: bytes | str) -> Ed25519PublicKey:
    """An Ed25519 public key from base64 of its raw 32 bytes (the env var's form), or PEM."""
    data = _decode(material, "signing public key")
    try:
        if data.startswith(b"-----BEGIN"):
            key = serialization.load_pem_public_key(data)
        else:
            key = Ed25519PublicKey.from_public_bytes(data)
    except (ValueError, TypeError) as exc:
        raise SignatureError(f"signing public key cannot be read: {exc}") from None
    if not isinstance(key, Ed25519PublicKey):
        raise SignatureError(f"signing public key must be Ed25519, got {type(key).__name__}")
    return key


@dataclass(frozen=True)
class DevKeypair:
    """A throwaway keypair for local runs and tests; production keys live in a secret store."""

    private_pem: bytes
    public_b64: str

    @classmethod
    def generate(cls) -> "DevKeypair":
        key = Ed25519PrivateKey.generate()
        pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        return cls(pem, base64.b64encode(public_bytes(key.public_key())).decode())


def sign_bundle(directory: Path | str, private_key: Ed25519PrivateKey | bytes | str) -> dict:
    """Writes ``signature.json`` into the bundle and returns its content."""
    directory = Path(directory)
    key = (
        private_key if isinstance(private_key, Ed25519PrivateKey) else load_private_key(private_key)
    )
    digest = bundle_digest(directory)
    record = {
        "algorithm": ALGORITHM,
        "digest": digest,
        "signature": base64.b64encode(key.sign(bytes.fromhex(digest))).decode(),
        "key_id": key_id(key.public_key()),
    }
    (directory / SIGNATURE_FILE).write_text(json.dumps(record, indent=2, sort_keys=True))
    return record


def verify_bundle(directory: Path | str, public_key: Ed25519PublicKey | bytes | str) -> dict:
    """Returns the signature record if the bundle is intact and signed by ``public_key``."""
    directory = Path(directory)
    key = public_key if isinstance(public_key, Ed25519PublicKey) else load_public_key(public_key)
    path = directory / SIGNATURE_FILE
    if not path.is_file():
        raise SignatureError(f"policy bundle {directory} is not signed: {SIGNATURE_FILE} missing")
    try:
        record = json.loads(path.read_text())
        signature = base64.b64decode(record["signature"], validate=True)
        claimed = str(record["digest"])
    except (ValueError, KeyError, TypeError, binascii.Error) as exc:
        raise SignatureError(f"{path} is malformed: {exc}") from None
    if record.get("algorithm") != ALGORITHM:
        raise SignatureError(f"{path}: unknown algorithm {record.get('algorithm')!r}")
    if record.get("key_id") != key_id(key):
        raise SignatureError(
            f"policy bundle {directory} claims signer key {record.get('key_id')}; "
            f"the trusted key is {key_id(key)}"
        )
    actual = bundle_digest(directory)
    if actual != claimed:
        raise SignatureError(
            f"policy bundle {directory} was modified after signing: digest {actual} "
            f"!= signed {claimed}"
        )
    try:
        key.verify(signature, bytes.fromhex(claimed))
    except (InvalidSignature, ValueError):
        raise SignatureError(
            f"policy bundle {directory}: its signature does not verify with the trusted key "
            f"{key_id(key)}"
        ) from None
    return record


def file_hashes(directory: Path | str, skip: str = BENTO_SIGNATURE_FILE) -> dict[str, str]:
    """SHA-256 of every file under ``directory`` by relative path; links are refused.

    A symbolic link could point the signed name at unsigned bytes, so a tree that
    holds one cannot be signed or verified.
    """
    directory = Path(directory)
    hashes = {}
    for path in sorted(directory.rglob("*")):
        name = path.relative_to(directory).as_posix()
        if path.is_symlink():
            raise SignatureError(f"{directory}: {name} is a symbolic link; a signed tree has none")
        if path.is_file() and name != skip:
            hashes[name] = hashlib.sha256(path.read_bytes()).hexdigest()
    return hashes


def _manifest_bytes(manifest: dict) -> bytes:
    return json.dumps(manifest, sort_keys=True, separators=(",", ":")).encode()


def sign_bento(
    directory: Path | str,
    private_key: Ed25519PrivateKey | bytes | str,
    model_tag: str,
    bundle_digest: str,
) -> dict:
    """Signs every file of a built bento and the model it must serve; returns the record."""
    directory = Path(directory)
    key = (
        private_key if isinstance(private_key, Ed25519PrivateKey) else load_private_key(private_key)
    )
    manifest = {
        "algorithm": BENTO_ALGORITHM,
        "key_id": key_id(key.public_key()),
        "model_tag": model_tag,
        "bundle_digest": bundle_digest,
        "files": file_hashes(directory),
    }
    signature = base64.b64encode(key.sign(_manifest_bytes(manifest))).decode()
    record = {**manifest, "signature": signature}
    (directory / BENTO_SIGNATURE_FILE).write_text(json.dumps(record, indent=2, sort_keys=True))
    return record


def bento_digest(record: dict) -> str:
    """One hash naming a signed bento: over its manifest, as signed."""
    manifest = {k: v for k, v in record.items() if k != "signature"}
    return hashlib.sha256(_manifest_bytes(manifest)).hexdigest()


def verify_bento(directory: Path | str, public_key: Ed25519PublicKey | bytes | str) -> dict:
    """The bento's signature record if every file is as signed by the trusted key.

    The order matters: the key id and the signature are checked before the files,
    so a refusal names an untrusted signer rather than listing files it rewrote.
    """
    directory = Path(directory)
    key = public_key if isinstance(public_key, Ed25519PublicKey) else load_public_key(public_key)
    path = directory / BENTO_SIGNATURE_FILE
    if not path.is_file():
        raise SignatureError(f"bento {directory} is not signed: {BENTO_SIGNATURE_FILE} missing")
    try:
        record = json.loads(path.read_text())
        signature = base64.b64decode(record["signature"], validate=True)
        manifest = {k: record[k] for k in ("algorithm", "key_id", "model_tag", "bundle_digest")}
        files = record["files"]
        if not isinstance(files, dict) or not all(isinstance(v, str) for v in files.values()):
            raise TypeError("files must map each path to its SHA-256")
    except (ValueError, KeyError, TypeError, binascii.Error) as exc:
        raise SignatureError(f"{path} is malformed: {exc}") from None
    if manifest["algorithm"] != BENTO_ALGORITHM:
        raise SignatureError(f"{path}: unknown algorithm {manifest['algorithm']!r}")
    trusted = key_id(key)
    if manifest["key_id"] != trusted:
        raise SignatureError(
            f"bento {directory} claims signer key {manifest['key_id']}; "
            f"the trusted key is {trusted}"
        )
    try:
        key.verify(signature, _manifest_bytes({**manifest, "files": files}))
    except InvalidSignature:
        raise SignatureError(
            f"bento {directory}: its signature does not verify with the trusted key {trusted}"
        ) from None
    actual = file_hashes(directory)
    changed = sorted(n for n in files.keys() & actual.keys() if files[n] != actual[n])
    added = sorted(actual.keys() - files.keys())
    missing = sorted(files.keys() - actual.keys())
    if changed or added or missing:
        parts = [
            f"{what}: {', '.join(names[:5])}{' ...' if len(names) > 5 else ''}"
            for what, names in (("changed", changed), ("added", added), ("missing", missing))
            if names
        ]
        raise SignatureError(f"bento {directory} differs from what was signed; " + "; ".join(parts))
    return record
