"""The prod deployment's stores on S3 (dagster-aws ``S3Resource``), one per local store.

Each class here is the S3 twin of a local resource and keeps its contract, so no asset
changes with the deployment: ``S3DatasetStore`` (datasets and the DVC remote),
``S3ReportStore`` (backtest reports, the ledger and the gate's verdicts),
``S3PredictionLogStore`` (the endpoint's decisions), ``S3AuditTrail`` (the hash-chained
audit log in an Object Lock bucket), ``S3MarketData`` (an ``s3://bucket/prefix``
market source) and ``S3TrainingWorkspace`` (checkpoints that outlive a Spot task). Every
write goes through ``resources.s3.ObjectStore``: SSE-KMS on each put, and a key is never
written twice with other bytes, save a training checkpoint (``put_replacing``).

This module imports dagster-aws, which takes seconds to load; only ``resources.prod``
imports it, so the local deployment never pays for it.
"""

import contextlib
import hashlib
import io
import json
import os
import re
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
import polars as pl
from dagster_aws.s3 import S3Resource
from pydantic import Field

from resources.audit import AuditTrail
from resources.datasets import DatasetStore, Snapshot
from resources.dvc import md5_of
from resources.market_data import MarketDataResource
from resources.prediction_log import PredictionLogStore
from resources.reports import GATE_JSON, LEDGER, REPORT_HTML, REPORT_JSON, ReportStore, StoredReport
from resources.s3 import (
    ObjectStore,
    OverwriteRefusedError,
    S3Reader,
    S3Url,
    object_store,
    sha256,
    split_url,
    versioned_name,
)
from resources.tracking import TrainingWorkspace
from tradeops_assets.core import sources
from tradeops_assets.core.audit import Anchor, AuditLog, Verification, _digest
from tradeops_assets.core.errors import AuditError, ConfigError, SnapshotError
from tradeops_assets.core.prediction_log import JOURNAL_DIR, JOURNAL_SUFFIX, read_log
from tradeops_assets.core.promotion import GateDecision
from tradeops_assets.core.summary import BacktestSummary
from tradeops_assets.keys import MARKET_BARS

DATA_PREFIX = "datasets"
VERSIONS = "versions"
INDEX_PREFIX = "index"
"""Under the DVC remote: ``index/<md5>/<asset>/<partition>.json``, the first write of an md5."""
REPORTS_PREFIX = "reports"
GATES = "gates"
RECORDS, HEADS = "records", "heads"
VERIFY_ATTEMPTS = 4
_HASH = re.compile(r"[0-9a-f]{64}")
AUDIT_RETENTION_DAYS = 2557
"""Seven years, as the audit bucket's default retention in Terraform."""
TRAINING_PREFIX = "training"
"""Under the artifacts location: ``training/<root run id>/...``, the training role's own."""


def _md5(body: bytes) -> str:
    return hashlib.md5(body, usedforsecurity=False).hexdigest()


def dvc_key(remote: S3Url, md5: str) -> str:
    """Where ``dvc push`` puts a file with this md5 in a DVC 3 remote."""
    return remote.key("files", "md5", md5[:2], md5[2:])


def parquet_bytes(frame: pl.DataFrame) -> bytes:
    """The bytes ``DatasetStore.write`` puts in a file, for the same frame."""
    buffer = io.BytesIO()
    frame.write_parquet(buffer, compression="zstd", statistics=True)
    return buffer.getvalue()


class S3DatasetStore(DatasetStore):
    """Parquet datasets on S3 with every version kept: the prod ``datasets`` resource.

    ``raw`` holds market_bars, ``features`` every other dataset, ``remote`` is the DVC
    remote; each is an ``s3://bucket/prefix`` read through ``dg.EnvVar``. A partition's
    bytes live at ``datasets/<asset>/<partition>/<md5>.parquet`` and each write adds
    ``.../versions/<UTC stamp>-<md5>.json``: the newest record is the partition's current
    version. The same bytes also go to the DVC remote in DVC's own layout
    (``files/md5/<2>/<30>``, what ``dvc push`` writes), so ``tradeops data restore`` and
    a DVC client with that remote both bring back the exact bytes behind an md5, with no
    DVC process in the run's task. ``root`` is a local scratch folder, never the record.
    """

    root: str = ""
    remote: str = Field(description="s3://bucket/prefix the DVC remote is under")
    remote_prefix: str = Field("dvc", description="the DVC remote: <remote>/<remote_prefix>")
    raw: str = Field(description="where market_bars live, s3://bucket/prefix")
    features: str = Field(description="where every other dataset lives, s3://bucket/prefix")
    kms_key_id: str = Field(description="the KMS key every object is encrypted with")
    s3: S3Resource

    def _store(self) -> ObjectStore:
        return object_store(self.s3, self.kms_key_id)

    def _location(self, asset: str) -> S3Url:
        if asset == MARKET_BARS:
            return S3Url.parse(self.raw, "the raw dataset location")
        return S3Url.parse(self.features, "the features dataset location")

    def _remote(self) -> S3Url:
        return S3Url.parse(self.remote, "the DVC remote location").child(self.remote_prefix)

    def write(self, asset: str, frames: dict[str, pl.DataFrame]) -> list[Snapshot]:
        store, where, remote = self._store(), self._location(asset), self._remote()
        now = datetime.now(UTC)
        snapshots = []
        for partition, frame in frames.items():
            body = parquet_bytes(frame)
            md5 = _md5(body)
            folder = (DATA_PREFIX, asset, partition)
            store.put_new(where.bucket, where.key(*folder, f"{md5}.parquet"), body)
            store.put_new(remote.bucket, dvc_key(remote, md5), body)
            snap = Snapshot(
                asset, partition, md5, frame.height, f"{asset}/{partition}.parquet", now.isoformat()
            )
            record = json.dumps(asdict(snap), sort_keys=True).encode()
            version = where.key(*folder, VERSIONS, versioned_name(md5, now=now))
            store.put_new(where.bucket, version, record, "application/json")
            index = remote.key(INDEX_PREFIX, md5, asset, f"{partition}.json")
            if store.get(remote.bucket, index) is None:
                # Another run may record the same bytes first; its record stands.
                with contextlib.suppress(OverwriteRefusedError):
                    store.put_new(remote.bucket, index, record, "application/json")
            snapshots.append(snap)
        return snapshots

    def current(self, asset: str) -> dict[str, str]:
        """Each stored partition's current md5: its newest version record."""
        store, where = self._store(), self._location(asset)
        latest: dict[str, str] = {}
        prefix = where.key(DATA_PREFIX, asset)
        for key in store.keys(where.bucket, prefix):
            parts = key[len(prefix) + 1 :].split("/")
            if len(parts) == 3 and parts[1] == VERSIONS and parts[2].endswith(".json"):
                latest[parts[0]] = parts[2].removesuffix(".json").rpartition("-")[2]
        return latest

    def partitions(self, asset: str) -> list[str]:
        return sorted(self.current(asset))

    def read(
        self, asset: str, partitions: list[str] | None = None
    ) -> tuple[pl.DataFrame, dict[str, str]]:
        current = self.current(asset)
        keys = sorted(current) if partitions is None else partitions
        missing = [k for k in keys if k not in current]
        where = self._location(asset)
        if missing or not keys:
            raise SnapshotError(
                f"dataset {asset} has no stored partition(s) {missing or keys} under "
                f"{where.url(DATA_PREFIX, asset)}; materialise it first"
            )
        store = self._store()
        frames = []
        for key in keys:
            body = store.require(
                where.bucket,
                where.key(DATA_PREFIX, asset, key, f"{current[key]}.parquet"),
                f"{asset} partition {key}",
            )
            if _md5(body) != current[key]:
                raise SnapshotError(
                    f"{asset} partition {key} under {where.url(DATA_PREFIX, asset, key)} has md5 "
                    f"{_md5(body)}; its version record says {current[key]}"
                )
            frames.append(pl.read_parquet(io.BytesIO(body)))
        return pl.concat(frames, how="vertical"), {k: current[k] for k in keys}

    def find(self, md5: str) -> Snapshot | None:
        store, remote = self._store(), self._remote()
        for key in store.keys(remote.bucket, remote.key(INDEX_PREFIX, md5)):
            body = store.get(remote.bucket, key)
            if body:
                return Snapshot(**json.loads(body))
        return None

    def restore(self, md5: str, out_dir: Path) -> Path:
        """The exact bytes with this md5, from the DVC remote on S3, into ``out_dir``."""
        store, remote = self._store(), self._remote()
        body = store.get(remote.bucket, dvc_key(remote, md5))
        if body is None:
            raise SnapshotError(f"no snapshot with md5 {md5} in DVC remote {remote}")
        snap = self.find(md5)
        out = out_dir / (Path(snap.path) if snap else Path(f"{md5}.parquet"))
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_name(f".{out.name}.tmp")
        tmp.write_bytes(body)
        os.replace(tmp, out)
        got = md5_of(out)
        if got != md5:
            raise SnapshotError(f"restored {out} has md5 {got}, expected {md5}")
        return out


class S3ReportStore(ReportStore):
    """Backtest reports on S3: ``reports/<run id>/<sha256[:16]>/`` holds the summary, the
    HTML page and the ledger, and ``gates/<UTC stamp>-<sha>.json`` every verdict on it.

    A location is the summary's ``s3://`` URL. Files the pipeline hands to MLflow or shows
    as a path are copies in ``root``, a local scratch folder, never the record.
    """

    location: str = Field(description="s3://bucket/prefix; reports go under <location>/reports")
    kms_key_id: str = Field(description="the KMS key every object is encrypted with")
    s3: S3Resource

    def _store(self) -> ObjectStore:
        return object_store(self.s3, self.kms_key_id)

    def _scratch(self, bucket: str, key: str) -> Path:
        folder = Path(self.root or tempfile.gettempdir()) / bucket / Path(key).parent
        folder.mkdir(parents=True, exist_ok=True)
        return folder

    def write(
        self, run_id: str, summary: BacktestSummary, html: str, ledger: pl.DataFrame
    ) -> StoredReport:
        store = self._store()
        body = summary.to_json().encode()
        digest = sha256(body)
        folder = S3Url.parse(self.location, "the reports location").child(
            REPORTS_PREFIX, run_id, digest[:16]
        )
        store.put_new(folder.bucket, folder.key(REPORT_JSON), body, "application/json")
        store.put_new(folder.bucket, folder.key(REPORT_HTML), html.encode(), "text/html")
        ledger_bytes = io.BytesIO()
        ledger.write_parquet(ledger_bytes)
        store.put_new(folder.bucket, folder.key(LEDGER), ledger_bytes.getvalue())
        page = self._scratch(folder.bucket, folder.key(REPORT_HTML)) / REPORT_HTML
        page.write_text(html)
        return StoredReport(folder.url(REPORT_JSON), str(page), digest)

    def read(self, location: str) -> tuple[BacktestSummary, str]:
        bucket, key = split_url(location)
        body = self._store().get(bucket, key)
        if body is None:
            raise dg.Failure(f"backtest report {location} is missing: run backtest_report")
        return BacktestSummary.from_json(body.decode()), sha256(body)

    def files(self, location: str) -> list[Path]:
        """Local copies of the report's files, for the MLflow run that keeps a copy."""
        bucket, key = split_url(location)
        folder = key.rpartition("/")[0]
        store, scratch = self._store(), self._scratch(bucket, key)
        out = []
        for name in (REPORT_JSON, REPORT_HTML, LEDGER):
            body = store.get(bucket, f"{folder}/{name}")
            if body is not None:
                (scratch / name).write_bytes(body)
                out.append(scratch / name)
        gate = self._latest_gate(bucket, folder)
        if gate is not None:
            (scratch / GATE_JSON).write_bytes(gate)
            out.insert(2, scratch / GATE_JSON)
        return out

    def write_gate(self, location: str, decision: GateDecision) -> Path:
        bucket, key = split_url(location)
        body = json.dumps(decision.to_dict(), indent=2, sort_keys=True).encode()
        folder = key.rpartition("/")[0]
        name = versioned_name(sha256(body)[:16])
        self._store().put_new(bucket, f"{folder}/{GATES}/{name}", body, "application/json")
        local = self._scratch(bucket, key) / GATE_JSON
        local.write_bytes(body)
        return local

    def read_gate(self, location: str) -> GateDecision | None:
        bucket, key = split_url(location)
        body = self._latest_gate(bucket, key.rpartition("/")[0])
        return GateDecision.from_dict(json.loads(body)) if body else None

    def _latest_gate(self, bucket: str, folder: str) -> bytes | None:
        store = self._store()
        gates = store.keys(bucket, f"{folder}/{GATES}")
        return store.get(bucket, gates[-1]) if gates else None


class S3PredictionLogStore(PredictionLogStore):
    """The prediction log as the serving tasks ship it to S3: the same ``date=*/part-*``
    layout (and journals) as the local folder, under ``location``, read as one log."""

    location: str = Field(description="the predictions bucket, s3://bucket[/prefix]")
    prefix: str = Field("predictions", description="the log: <location>/<prefix>")
    kms_key_id: str = Field(description="the KMS key every shipped part is encrypted with")
    s3: S3Resource
    root: str = ""

    def _where(self) -> S3Url:
        return S3Url.parse(self.location, "the prediction log location").child(self.prefix)

    def read(self) -> pl.DataFrame:
        where = self._where()
        reader = S3Reader(self.s3.get_client())
        with tempfile.TemporaryDirectory(prefix="tradeops-predictions-") as tmp:
            for key in reader.keys(where.bucket, where.prefix):
                rel = key[len(where.prefix) :].lstrip("/") if where.prefix else key
                if _is_log_file(rel):
                    local = Path(tmp) / rel
                    local.parent.mkdir(parents=True, exist_ok=True)
                    local.write_bytes(reader.require(where.bucket, key, "prediction log part"))
            return read_log(tmp)

    def ship(self, local_root: Path | str) -> list[str]:
        """Copies the rolled parts under ``local_root`` that S3 lacks; returns their keys.

        A part is written once by its segment's owner, so the same name is the same bytes.
        """
        where, store = self._where(), object_store(self.s3, self.kms_key_id)
        shipped = []
        for path in sorted(Path(local_root).glob("date=*/part-*.parquet")):
            key = where.key(str(path.relative_to(local_root)))
            if store.put_new(where.bucket, key, path.read_bytes()):
                shipped.append(key)
        return shipped


def _is_log_file(rel: str) -> bool:
    parts = rel.split("/")
    if len(parts) != 2:
        return False
    folder, name = parts
    return (
        folder.startswith("date=") and name.startswith("part-") and name.endswith(".parquet")
    ) or (folder == JOURNAL_DIR and name.endswith(JOURNAL_SUFFIX))


class _Where(str):
    """A location that prints as itself in ``AuditLog``'s messages ("<where>:<line>")."""


class S3AuditLog(AuditLog):
    """The hash-chained audit log in an S3 bucket with Object Lock (COMPLIANCE mode).

    Record ``n`` is ``records/<n, 12 digits>.json`` and the head after it is
    ``heads/<n>.json``; each is written once, under SSE-KMS, locked until its retention
    ends. The chain, the head and the anchors are checked by ``AuditLog.verify``
    unchanged; on S3 a second version of any record or head key is reported too (it can
    only come from a writer outside tradeops; the first version is still retained). Two
    writers racing for the same sequence number cannot both win: the put refuses the
    second, which reads the chain again and appends after the winner.
    """

    def __init__(self, store: ObjectStore, location: S3Url) -> None:
        self.store = store
        self.location = location
        self.root = _Where(str(location))  # type: ignore[assignment]
        self.path = _Where(location.url(RECORDS))  # type: ignore[assignment]
        self.head_path = _Where(location.url(HEADS))  # type: ignore[assignment]

    def _key(self, folder: str, seq: int) -> str:
        return self.location.key(folder, f"{seq:012d}.json")

    def append(self, action: str, actor: str, details: dict) -> dict:
        for _ in range(10):
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
            line = json.dumps(record, sort_keys=True, default=str).encode()
            try:
                self.store.put_new(
                    self.location.bucket,
                    self._key(RECORDS, record["seq"]),
                    line,
                    "application/json",
                )
            except OverwriteRefusedError:
                continue  # another writer appended this sequence number first
            head = json.dumps({"seq": record["seq"], "hash": record["hash"]}).encode()
            self.store.put_new(
                self.location.bucket, self._key(HEADS, record["seq"]), head, "application/json"
            )
            return record
        raise AuditError(f"audit log {self.path}: gave up appending after 10 concurrent writers")

    def records(self) -> list[dict]:
        out = []
        bucket = self.location.bucket
        for key in self.store.keys(bucket, self.location.key(RECORDS)):
            body = self.store.require(bucket, key, "audit record")
            try:
                record = json.loads(body)
            except json.JSONDecodeError as exc:
                raise AuditError(f"s3://{bucket}/{key} is not a JSON record: {exc}") from exc
            if not isinstance(record, dict):
                raise AuditError(
                    f"s3://{bucket}/{key} is not a JSON object (a {type(record).__name__})"
                )
            out.append(record)
        return out

    def _head(self) -> tuple[dict | None, str | None]:
        pinned = getattr(self, "_pinned", None)
        return pinned if pinned is not None else self._read_head()

    def _read_head(self) -> tuple[dict | None, str | None]:
        bucket = self.location.bucket
        heads = self.store.keys(bucket, self.location.key(HEADS))
        if not heads:
            return None, None
        body = self.store.require(bucket, heads[-1], "audit head")
        try:
            head = json.loads(body)
        except json.JSONDecodeError as exc:
            return None, f"s3://{bucket}/{heads[-1]} is not JSON: {exc}"
        if (
            not isinstance(head, dict)
            or type(head.get("seq")) is not int
            or not _HASH.fullmatch(str(head.get("hash")))
        ):
            return None, f's3://{bucket}/{heads[-1]} is not {{"seq": <int>, "hash": <64 hex>}}'
        if heads[-1] != self._key(HEADS, head["seq"]):
            return None, f"s3://{bucket}/{heads[-1]} holds the head of record {head['seq']}"
        return head, None

    def verify(self, anchors: Sequence[Anchor] = ()) -> Verification:
        """``AuditLog.verify`` on a consistent view: the head is read before the records (a
        record is written before its head), and a view caught between another writer's
        record and its head is read again; only what persists is a problem."""
        for attempt in range(VERIFY_ATTEMPTS):
            self._pinned = self._read_head()
            try:
                check = super().verify(anchors)
            finally:
                self._pinned = None
            if check.ok:
                break
            if attempt < VERIFY_ATTEMPTS - 1:
                time.sleep(0.2 * (attempt + 1))
        bucket = self.location.bucket
        rewritten = sorted(
            key
            for key, versions in self.store.versions(bucket, self.location.prefix).items()
            if len(versions) > 1
        )
        if not rewritten:
            return check
        problem = (
            f"s3://{bucket}/{rewritten[0]} has {len(rewritten)} rewritten key(s) after it was "
            "written once (the first version is retained under Object Lock)"
        )
        return Verification(
            check.records, check.head, (*check.problems, problem), check.notes, check.anchors
        )

    def history(self, action: str | None = None) -> list[dict]:
        return [r for r in self.records() if action is None or r["action"] == action]


class S3AuditTrail(AuditTrail):
    """The prod ``audit`` resource: the trail in the audit bucket, every head also anchored
    in the Dagster event log and on the registered model in MLflow, as locally."""

    root: str = ""
    location: str = Field(description="the audit log, s3://bucket/prefix (Object Lock bucket)")
    kms_key_id: str = Field(description="the audit KMS key every record is encrypted with")
    retention_days: int = Field(
        AUDIT_RETENTION_DAYS, description="Object Lock COMPLIANCE retention of every object"
    )
    s3: S3Resource

    def _log(self) -> AuditLog:
        store = object_store(self.s3, self.kms_key_id, lock_days=self.retention_days)
        return S3AuditLog(store, S3Url.parse(self.location, "the audit log location"))


class S3MarketData(MarketDataResource):
    """The market-data resource whose ``s3://bucket/prefix`` source is read with ``s3``.

    Set up for a run or a sensor, it registers its client as this process's reader of
    s3:// sources, so everything that reads the source (``core.sources``) reads it the
    same way.
    """

    s3: S3Resource

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        client = self.s3.get_client()
        sources.register_object_reader("s3", lambda: S3Reader(client))


class S3TrainingWorkspace(TrainingWorkspace):
    """Training folders whose checkpoints outlive the task: the prod ``training`` resource.

    Training runs on GPU Spot capacity; a reclaimed instance takes the task's scratch
    folder (``root``) with it and the retry starts in a new task. So each checkpoint,
    once whole, is copied to ``<location>/training/<run>/<folder>/checkpoint.zip`` under
    SSE-KMS, and handing out a run's folder first brings back what S3 holds for it: the
    retry resumes from the newest copy. A file already in the local folder is kept, as it
    is at least as new as its copy (a copy follows each save).
    """

    location: str = Field(description="s3://bucket/prefix; checkpoints under <location>/training")
    kms_key_id: str = Field(description="the KMS key every checkpoint is encrypted with")
    s3: S3Resource

    def _where(self) -> S3Url:
        return S3Url.parse(self.location, "the training checkpoints location").child(
            TRAINING_PREFIX
        )

    def run_dir(self, run_id: str, seed: int) -> Path:
        folder = super().run_dir(run_id, seed)
        self._restore(run_id, folder)
        return folder

    def walk_forward_dir(self, run_id: str) -> Path:
        folder = super().walk_forward_dir(run_id)
        self._restore(run_id, folder)
        return folder

    def checkpoint_hook(self, run_id: str) -> Callable[[Path], None]:
        store, where = object_store(self.s3, self.kms_key_id), self._where()

        def keep(path: Path) -> None:
            key = where.key(run_id, self._under_run(run_id, path))
            store.put_replacing(where.bucket, key, Path(path).read_bytes())

        return keep

    def _under_run(self, run_id: str, path: Path) -> str:
        run_root = Path(self.root).resolve() / run_id
        try:
            return Path(path).resolve().relative_to(run_root).as_posix()
        except ValueError:
            raise ConfigError(
                f"checkpoint {path} is outside run {run_id}'s training folder {run_root}"
            ) from None

    def _restore(self, run_id: str, folder: Path) -> None:
        """Each file S3 holds under ``folder`` that the folder lacks, written whole or not at all.

        A half-written file would be read as a corrupt checkpoint by the next attempt.
        """
        store, where = object_store(self.s3, self.kms_key_id), self._where()
        prefix = where.key(run_id, self._under_run(run_id, folder))
        for key in store.keys(where.bucket, prefix):
            local = folder / key[len(prefix) :].lstrip("/")
            if local.exists():
                continue
            body = store.require(where.bucket, key, "training checkpoint")
            local.parent.mkdir(parents=True, exist_ok=True)
            tmp = local.with_name(f".{local.name}.tmp")
            tmp.write_bytes(body)
            os.replace(tmp, local)
