"""The audit trail: an append-only, hash-chained record of every decision about a policy.

MLflow keeps no history of its aliases and Dagster's event log can be wiped
with its instance, so who promoted which version, when and why lives here.
Each record carries the SHA-256 of its predecessor and of itself; a head file
holds the last sequence number and hash. ``verify`` recomputes the chain: an
edited record breaks its own hash, a deleted or reordered one breaks the next
link, a deleted tail disagrees with the head.

No key is needed to rewrite both files consistently, so every head is also
anchored outside them (an observation in the Dagster event log of the run that
appended it, and a tag on the registered model in MLflow); ``verify`` given those
anchors catches a cut tail, a rewritten chain or deleted files. In prod the files
go to an S3 bucket with Object Lock, a second wall.

Crash rule: a record is written (and fsynced) before the head moves. A writer
killed between the two leaves one whole record past the head; it verifies, so it
stands, ``verify`` notes it, and the next append moves the head past it. Two or
more records past the head are not a crash, and are reported.
"""

import fcntl
import hashlib
import json
import os
import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from tradeops_assets.core.errors import AuditError

GENESIS = "0" * 64
LOG_NAME = "audit.jsonl"
HEAD_NAME = "audit.head.json"
_HASH = re.compile(r"[0-9a-f]{64}")


def _digest(record: dict) -> str:
    body = {k: v for k, v in record.items() if k != "hash"}
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


@dataclass(frozen=True)
class Anchor:
    """A head seen outside the log's files: which record, its hash, and where it was seen."""

    seq: int
    hash: str
    where: str


@dataclass(frozen=True)
class Verification:
    records: int
    head: str
    problems: tuple[str, ...]
    notes: tuple[str, ...] = ()
    anchors: int = 0

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
        self.root.mkdir(mode=0o700, parents=True, exist_ok=True)
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
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            with os.fdopen(fd, "a") as log:
                log.write(line + "\n")
                log.flush()
                os.fsync(log.fileno())
            tmp = self.head_path.with_suffix(".tmp")
            tmp.touch(mode=0o600)
            tmp.write_text(json.dumps({"seq": record["seq"], "hash": record["hash"]}))
            os.replace(tmp, self.head_path)
            return record

    def records(self) -> list[dict]:
        if not self.path.exists():
            return []
        out = []
        for number, line in enumerate(self.path.read_text().splitlines(), start=1):
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise AuditError(f"{self.path}:{number} is not a JSON record: {exc}") from exc
            if not isinstance(record, dict):
                raise AuditError(
                    f"{self.path}:{number} is not a JSON object (a {type(record).__name__})"
                )
            out.append(record)
        return out

    def _head(self) -> tuple[dict | None, str | None]:
        """The head file as (seq, hash), or the problem with it."""
        if not self.head_path.exists():
            return None, None
        try:
            head = json.loads(self.head_path.read_text())
        except json.JSONDecodeError as exc:
            return None, f"{self.head_path} is not JSON: {exc}"
        if (
            not isinstance(head, dict)
            or type(head.get("seq")) is not int
            or not _HASH.fullmatch(str(head.get("hash")))
        ):
            return None, f'{self.head_path} is not {{"seq": <int>, "hash": <64 hex>}}: {head!r:.80}'
        return head, None

    def verify(self, anchors: Sequence[Anchor] = ()) -> Verification:
        """The chain, its head, and every anchor seen outside the files."""
        problems: list[str] = []
        notes: list[str] = []
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
        head, bad_head = self._head()
        confirmed = head["seq"] + 1 if head else 0
        if bad_head:
            problems.append(bad_head)
        elif len(records) == confirmed + 1 and (
            head is None or head["hash"] == records[-2].get("hash")
        ):
            notes.append(
                f"{self.path}:{len(records)} is past the head (a writer stopped between the "
                "record and the head); it verifies, and the next append confirms it"
            )
        elif head is None and records:
            problems.append(f"{self.head_path} is missing")
        elif head is not None and (head["seq"] != len(records) - 1 or head["hash"] != previous):
            problems.append(
                f"{self.head_path} says {head['seq'] + 1} records ending {head['hash'][:12]}, "
                f"the log has {len(records)} ending {previous[:12]}: records were deleted"
            )
        problems += self._against(records, anchors)
        return Verification(len(records), previous, tuple(problems), tuple(notes), len(anchors))

    def _against(self, records: list[dict], anchors: Sequence[Anchor]) -> list[str]:
        """An anchored head must be in the log, unchanged; at most one record may follow the
        last anchor (a run that died before anchoring it)."""
        if not anchors:
            return []
        out = []
        beyond = [a for a in anchors if a.seq >= len(records)]
        if beyond:
            last = max(beyond, key=lambda a: a.seq)
            out.append(
                f"{last.where} anchored record {last.seq} ending {last.hash[:12]}, but "
                f"{self.path} has {len(records)} records: records were deleted"
            )
        changed = sorted(
            (a for a in anchors if a.seq < len(records) and records[a.seq].get("hash") != a.hash),
            key=lambda a: a.seq,
        )
        if changed:
            first = changed[0]
            out.append(
                f"{self.path}:{first.seq + 1} differs from the record {first.where} anchored "
                f"(hash {first.hash[:12]}): the log was rewritten"
            )
        newest = max(a.seq for a in anchors)
        if len(records) - 1 - newest > 1:
            out.append(
                f"{self.path} records {newest + 1}..{len(records) - 1} are anchored nowhere "
                "(not in the Dagster event log, not in MLflow): written outside tradeops"
            )
        return out

    def history(self, action: str | None = None) -> list[dict]:
        return [r for r in self.records() if action is None or r["action"] == action]
