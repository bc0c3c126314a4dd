"""Write-once objects on S3: the one way prod stores anything it must be able to show later.

Every put asks S3 to refuse an existing key (``If-None-Match: *``) and to encrypt with
the deployment's KMS key (``SSE-KMS``), so no code path here can overwrite an earlier
version or write an object in the clear. Keys are versioned by content hash or by time
(``versioned_name``); a refused put of the same bytes is the same version, stored
already; a refused put of other bytes is an error that names the key. The buckets also
keep S3 versioning on (Terraform), a second wall against a writer outside this code.
The one exception is ``ObjectStore.put_replacing``, for scratch state that only a later
attempt of the same run reads (training checkpoints): never a record, still SSE-KMS, and
versioning keeps what it replaces.

Locations are ``s3://bucket/prefix`` strings, read from the environment through
``dg.EnvVar`` by the resources that hold them; credentials are never configuration
(the ECS task role's, found by boto3's own chain).
"""

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from tradeops_assets.core.errors import ConfigError, SnapshotError

KMS = "aws:kms"
COMPLIANCE = "COMPLIANCE"
_REFUSED = {"PreconditionFailed", "412"}
_CONFLICT = {"ConditionalRequestConflict", "409"}
_MISSING = {"NoSuchKey", "404", "NotFound"}


class StorageError(SnapshotError):
    """An S3 call that failed: names the operation and the object, never a credential."""


class OverwriteRefusedError(StorageError):
    """A put would have replaced an object holding other bytes: refused, nothing changed."""


@dataclass(frozen=True)
class S3Url:
    bucket: str
    prefix: str = ""

    @classmethod
    def parse(cls, url: str, what: str = "S3 location") -> "S3Url":
        """``s3://bucket[/prefix]``; anything else is refused naming ``what``."""
        text = str(url).strip()
        if not text.startswith("s3://"):
            raise ConfigError(f"{what}={text!r} is not an s3://bucket[/prefix] URL")
        bucket, _, prefix = text.removeprefix("s3://").partition("/")
        if not bucket or any(c in bucket for c in " \\"):
            raise ConfigError(f"{what}={text!r} names no bucket")
        return cls(bucket, prefix.strip("/"))

    def key(self, *parts: str) -> str:
        return "/".join(p.strip("/") for p in (self.prefix, *parts) if p and p.strip("/"))

    def url(self, *parts: str) -> str:
        return f"s3://{self.bucket}/{self.key(*parts)}"

    def child(self, *parts: str) -> "S3Url":
        return S3Url(self.bucket, self.key(*parts))

    def __str__(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}" if self.prefix else f"s3://{self.bucket}"


def split_url(url: str) -> tuple[str, str]:
    """(bucket, key) of ``s3://bucket/key``."""
    parsed = S3Url.parse(url, "object URL")
    return parsed.bucket, parsed.prefix


def stamp(now: datetime | None = None) -> str:
    """A UTC time that sorts as text: what a time-versioned key starts with."""
    return (now or datetime.now(UTC)).strftime("%Y%m%dT%H%M%S.%fZ")


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _code(exc: ClientError) -> str:
    error = exc.response.get("Error", {})
    status = str(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", ""))
    return str(error.get("Code") or status)


class S3Reader:
    """Reads and lists objects; also what ``core.sources`` reads an s3:// market source with."""

    def __init__(self, client: Any) -> None:
        self.client = client

    def get(self, bucket: str, key: str) -> bytes | None:
        """The object's bytes, or None if there is no such key."""
        try:
            return self.client.get_object(Bucket=bucket, Key=key)["Body"].read()
        except ClientError as exc:
            if _code(exc) in _MISSING:
                return None
            raise StorageError(f"get s3://{bucket}/{key} failed: {_code(exc)}") from exc
        except BotoCoreError as exc:
            raise StorageError(f"get s3://{bucket}/{key} failed: {exc}") from exc

    def require(self, bucket: str, key: str, what: str) -> bytes:
        body = self.get(bucket, key)
        if body is None:
            raise StorageError(f"{what} s3://{bucket}/{key} is missing")
        return body

    def listing(self, bucket: str, prefix: str) -> Iterator[dict]:
        """Every object under ``prefix`` (``Key``, ``Size``, ``LastModified``), in key order."""
        prefix = f"{prefix.rstrip('/')}/" if prefix else ""
        try:
            for page in self.client.get_paginator("list_objects_v2").paginate(
                Bucket=bucket, Prefix=prefix
            ):
                yield from page.get("Contents", [])
        except ClientError as exc:
            raise StorageError(f"list s3://{bucket}/{prefix} failed: {_code(exc)}") from exc
        except BotoCoreError as exc:
            raise StorageError(f"list s3://{bucket}/{prefix} failed: {exc}") from exc

    def keys(self, bucket: str, prefix: str) -> list[str]:
        return [item["Key"] for item in self.listing(bucket, prefix)]

    def versions(self, bucket: str, prefix: str) -> dict[str, list[str]]:
        """Each key under ``prefix`` with its version ids, newest first (delete markers too)."""
        prefix = f"{prefix.rstrip('/')}/" if prefix else ""
        out: dict[str, list[str]] = {}
        try:
            for page in self.client.get_paginator("list_object_versions").paginate(
                Bucket=bucket, Prefix=prefix
            ):
                for item in [*page.get("Versions", []), *page.get("DeleteMarkers", [])]:
                    out.setdefault(item["Key"], []).append(item["VersionId"])
        except ClientError as exc:
            raise StorageError(f"list versions s3://{bucket}/{prefix}: {_code(exc)}") from exc
        return out

    def objects(self, bucket: str, prefix: str) -> dict[str, tuple[int, int]]:
        """``core.sources.ObjectReader``: each key with (size, modification time in ns)."""
        return {
            item["Key"]: (int(item["Size"]), int(item["LastModified"].timestamp() * 1e9))
            for item in self.listing(bucket, prefix)
        }

    def fetch(self, bucket: str, key: str) -> bytes:
        return self.require(bucket, key, "market data file")


class ObjectStore(S3Reader):
    """An S3 client that writes only new objects, each under SSE-KMS with ``kms_key_id``.

    ``lock_days`` adds an Object Lock retention in COMPLIANCE mode to every put: nobody,
    the account's root included, can delete or overwrite that version before it ends.
    """

    def __init__(self, client: Any, kms_key_id: str, lock_days: int | None = None) -> None:
        if not kms_key_id:
            raise ConfigError("an S3 store needs the KMS key every object is encrypted with")
        super().__init__(client)
        self.kms_key_id = kms_key_id
        self.lock_days = lock_days

    def put_new(
        self, bucket: str, key: str, body: bytes, content_type: str = "application/octet-stream"
    ) -> bool:
        """Stores ``body`` at a key that must not exist yet; True if this call wrote it.

        The same bytes already there are the same version (False); other bytes are refused.
        """
        extra: dict[str, Any] = {}
        if self.lock_days:
            extra["ObjectLockMode"] = COMPLIANCE
            extra["ObjectLockRetainUntilDate"] = datetime.now(UTC) + timedelta(days=self.lock_days)
        for _ in range(3):
            try:
                self._put(bucket, key, body, content_type, IfNoneMatch="*", **extra)
                return True
            except ClientError as exc:
                code = _code(exc)
                if code in _CONFLICT:  # a concurrent put of the same key: ask again
                    continue
                if code not in _REFUSED:
                    raise StorageError(f"put s3://{bucket}/{key} failed: {code}") from exc
            except BotoCoreError as exc:
                raise StorageError(f"put s3://{bucket}/{key} failed: {exc}") from exc
            existing = self.get(bucket, key)
            if existing == body:
                return False
            raise OverwriteRefusedError(
                f"s3://{bucket}/{key} exists with other bytes (sha256 "
                f"{sha256(existing or b'')[:12]}, new {sha256(body)[:12]}); an earlier version "
                "is never overwritten"
            )
        raise StorageError(f"put s3://{bucket}/{key}: concurrent writers kept conflicting")

    def put_replacing(self, bucket: str, key: str, body: bytes) -> None:
        """Stores ``body`` at ``key`` whether or not it exists: the newest version is the state.

        A training checkpoint changes at every save under one key, which the next attempt of
        the run must find without listing; ``put_new`` would refuse the second save.
        """
        if self.lock_days:
            raise ConfigError(f"s3://{bucket}/{key}: a store under Object Lock only adds objects")
        try:
            self._put(bucket, key, body, "application/octet-stream")
        except ClientError as exc:
            raise StorageError(f"put s3://{bucket}/{key} failed: {_code(exc)}") from exc
        except BotoCoreError as exc:
            raise StorageError(f"put s3://{bucket}/{key} failed: {exc}") from exc

    def _put(self, bucket: str, key: str, body: bytes, content_type: str, **extra: Any) -> None:
        """Every write asks for SSE-KMS with this store's key."""
        self.client.put_object(
            Bucket=bucket,
            Key=key,
            Body=body,
            ContentType=content_type,
            ServerSideEncryption=KMS,
            SSEKMSKeyId=self.kms_key_id,
            **extra,
        )


def object_store(s3_resource: Any, kms_key_id: str, lock_days: int | None = None) -> ObjectStore:
    """An ``ObjectStore`` on a dagster-aws ``S3Resource``'s client."""
    return ObjectStore(s3_resource.get_client(), kms_key_id, lock_days)


def versioned_name(digest: str, suffix: str = ".json", now: datetime | None = None) -> str:
    """``<UTC stamp>-<digest><suffix>``: later versions sort after earlier ones."""
    return f"{stamp(now)}-{digest}{suffix}"
