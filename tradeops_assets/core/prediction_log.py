"""The prediction log: every served decision, appended as Parquet for monitoring to read.

Layout: ``<root>/date=YYYY-MM-DD/part-<uuid>.parquet`` (hive-style, so
``pl.scan_parquet(root / "**/*.parquet", hive_partitioning=True)`` reads it all),
one row per decision with the raw features of the decision bar under the same
names as ``market_features``, so drift is a comparison of two like tables.

Writing never sits on the request path: ``append`` puts one record on a queue
(well under a microsecond) and a daemon thread turns records into files every
``flush_rows`` rows or ``flush_seconds`` seconds, and on ``close``. Part files
are written to a temporary name and renamed, so a reader never sees half a file.
"""

import os
import queue
import threading
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import polars as pl

from tradeops_assets.core.features import FEATURE_COLUMNS

LOG_SCHEMA: dict[str, pl.DataType] = {
    "request_id": pl.String(),
    "predicted_at": pl.Datetime("us", "UTC"),
    "bar_timestamp": pl.Datetime("us", "UTC"),
    "symbol": pl.String(),
    "position": pl.Float64(),
    "target_position": pl.Float64(),
    "policy_version": pl.String(),
    "bento_tag": pl.String(),
    "latency_ms": pl.Float64(),
    **{name: pl.Float64() for name in FEATURE_COLUMNS},
}


@dataclass(frozen=True)
class LogBatch:
    """Decisions answered by one call: arrays, so a batch of 100 is one queue item."""

    request_ids: Sequence[str]
    predicted_at_us: int
    bar_timestamps_us: np.ndarray
    symbols: Sequence[str]
    positions: np.ndarray
    targets: np.ndarray
    features: np.ndarray  # [n, len(FEATURE_COLUMNS)]
    policy_version: str
    bento_tag: str
    latency_ms: float

    def frame(self) -> pl.DataFrame:
        n = len(self.symbols)
        columns = {
            "request_id": list(self.request_ids),
            "predicted_at": np.full(n, self.predicted_at_us, np.int64),
            "bar_timestamp": np.asarray(self.bar_timestamps_us, np.int64),
            "symbol": list(self.symbols),
            "position": np.asarray(self.positions, np.float64),
            "target_position": np.asarray(self.targets, np.float64),
            "policy_version": [self.policy_version] * n,
            "bento_tag": [self.bento_tag] * n,
            "latency_ms": np.full(n, self.latency_ms),
            **{name: self.features[:, i] for i, name in enumerate(FEATURE_COLUMNS)},
        }
        frame = pl.DataFrame(columns)
        return frame.with_columns(
            pl.from_epoch(pl.col(c), time_unit="us").dt.replace_time_zone("UTC")
            for c in ("predicted_at", "bar_timestamp")
        ).cast(LOG_SCHEMA)


def now_us() -> int:
    return time.time_ns() // 1000


class PredictionLog:
    """Asynchronous, batched Parquet writer; one per serving process."""

    def __init__(self, root: Path | str, flush_rows: int = 10_000, flush_seconds: float = 5.0):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.flush_rows = flush_rows
        self.flush_seconds = flush_seconds
        self._queue: queue.SimpleQueue[LogBatch | None] = queue.SimpleQueue()
        self._closed = threading.Event()
        self.errors: list[str] = []
        self.rows_written = 0
        self._thread = threading.Thread(target=self._run, name="prediction-log", daemon=True)
        self._thread.start()

    def append(self, batch: LogBatch) -> None:
        if not self._closed.is_set():
            self._queue.put(batch)

    def close(self, timeout: float = 30.0) -> None:
        """Writes what is queued and stops; appends after this are dropped."""
        if self._closed.is_set():
            return
        self._closed.set()
        self._queue.put(None)
        self._thread.join(timeout)

    def _run(self) -> None:
        pending: list[LogBatch] = []
        rows = 0
        deadline = time.monotonic() + self.flush_seconds
        while True:
            try:
                item = self._queue.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                item = ...
            if isinstance(item, LogBatch):
                pending.append(item)
                rows += len(item.symbols)
            if item is None or rows >= self.flush_rows or time.monotonic() >= deadline:
                self._write(pending)
                pending, rows = [], 0
                deadline = time.monotonic() + self.flush_seconds
            if item is None:
                return

    def _write(self, batches: list[LogBatch]) -> None:
        if not batches:
            return
        try:
            frame = pl.concat([b.frame() for b in batches])
            days = frame["predicted_at"].dt.date()
            for (day,), part in frame.group_by(days, maintain_order=True):
                folder = self.root / f"date={day.isoformat()}"
                folder.mkdir(parents=True, exist_ok=True)
                name = f"part-{uuid.uuid4().hex}.parquet"
                tmp = folder / f".{name}.tmp"
                part.write_parquet(tmp)
                os.replace(tmp, folder / name)
            self.rows_written += frame.height
        except Exception as exc:  # a full disk must not take the endpoint down with it
            self.errors.append(f"{datetime.now(UTC).isoformat()} {type(exc).__name__}: {exc}")
            del self.errors[:-100]


def read_log(root: Path | str) -> pl.DataFrame:
    """Every logged decision under ``root`` (empty frame with the log's schema if none)."""
    files = sorted(Path(root).glob("date=*/part-*.parquet"))
    if not files:
        return pl.DataFrame(schema=LOG_SCHEMA)
    return pl.concat([pl.read_parquet(f) for f in files], how="vertical")
