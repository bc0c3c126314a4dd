"""The audit trail: an append-only, hash-chained record of every decision about a policy.

MLflow keeps no history of its aliases and Dagster's event log can be wiped
with its instance, so who promoted which version, when and why lives here.
Each record carries the SHA-256 of its predecessor and of itself; a head file
holds the last sequence number and hash. ``verify`` recomputes the chain: an
edited record breaks its own hash, a deleted or reordered one breaks the next
link, a deleted tail disagrees with the head. (In prod the log and its head go
to an S3 bucket with object lock, so not even an operator can rewrite both.)
"""

import fcntl
import hashlib
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from tradeops_assets.core.errors import AuditError

GENESIS = "0" * 64
LOG_NAME = "audit.jsonl"
HEAD_NAME = "audit.head.json"


def _digest(record: dict) -> str:
    body = {k: v for k, v in record.items() if k != "hash"}
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


@dataclass(frozen=True)
class Verification:
    records: int
    head: str
    problems: tuple[str, ...]

    @property
    def ok(self) -> bool:
        return not self.problems


class AuditLog:
    def __init__(self, root: Path | str) -> None:
        self.root = Path(root)
        self.path = self.root / LOG_NAME
        self.head_path = self.root / HEAD_NAME

    @contextmanager
    def _locked(self) -> Iterator[None]:
        self.root.mkdir(parents=True, exist_ok=True)
        with open(self.root / ".lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def append(self, action: str, actor: str, details: dict) -> dict:
        """Adds one record after the current head; refuses to extend a broken chain."""
        with self._locked():
            check = self.verify()
            if not check.ok:
                raise AuditError(
                    f"audit log {self.path} fails verification, not appending: {check.problems[0]}"
                )
            record = {
                "seq": check.records,
                "time": datetime.now(UTC).isoformat(),
                "actor": actor,
                "action": action,
                "details": details,
                "prev": check.head,
            }
            record["hash"] = _digest(record)
            line = json.dumps(record, sort_keys=True, default=str)
            with open(self.path, "a") as log:
                log.write(line + "\n")
                log.flush()
                os.fsync(log.fileno())
            tmp = self.head_path.with_suffix(".tmp")
            tmp.write_text(json.dumps({"seq": record["seq"], "hash": record["hash"]}))
            os.replace(tmp, self.head_path)
            return record

    def records(self) -> list[dict]:
        if not self.path.exists():
            return []
        out = []
        for number, line in enumerate(self.path.read_text().splitlines(), start=1):
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise AuditError(f"{self.path}:{number} is not a JSON record: {exc}") from exc
        return out

    def verify(self) -> Verification:
        problems: list[str] = []
        try:
            records = self.records()
        except AuditError as exc:
            return Verification(0, GENESIS, (str(exc),))
        previous = GENESIS
        for index, record in enumerate(records):
            where = f"{self.path}:{index + 1}"
            if record.get("seq") != index:
                problems.append(f"{where}: seq {record.get('seq')} where {index} was expected")
            if record.get("prev") != previous:
                problems.append(f"{where}: chain broken, prev does not match the record before")
            if record.get("hash") != _digest(record):
                problems.append(f"{where}: contents edited, hash does not match")
            previous = record.get("hash", "")
        head = json.loads(self.head_path.read_text()) if self.head_path.exists() else None
        if head is None and records:
            problems.append(f"{self.head_path} is missing")
        elif head is not None and (head["seq"] != len(records) - 1 or head["hash"] != previous):
            problems.append(
                f"{self.head_path} says {head['seq'] + 1} records ending {head['hash'][:12]}, "
                f"the log has {len(records)} ending {previous[:12]}: records were deleted"
            )
        return Verification(len(records), previous, tuple(problems))

    def history(self, action: str | None = None) -> list[dict]:
        return [r for r in self.records() if action is None or r["action"] == action]
