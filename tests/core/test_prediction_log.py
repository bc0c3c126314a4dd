"""The prediction log survives its process: SIGKILL, SIGTERM, torn journals and full disks."""

import os
import signal
import stat
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from tradeops_assets.core.errors import TradeopsError
from tradeops_assets.core.features import FEATURE_COLUMNS
from tradeops_assets.core.prediction_log import (
    JOURNAL_DIR,
    LOG_SCHEMA,
    LogBatch,
    NonFiniteDecisionError,
    PredictionLog,
    encode_record,
    frame_of,
    read_log,
    recover_journals,
)

REPO = Path(__file__).resolve().parents[2]
DAY_US = 1_700_000_000_000_000  # 2023-11-14 UTC
DAY = "date=2023-11-14"

CHILD = textwrap.dedent(
    """
    import signal, sys, time
    import numpy as np
    from tradeops_assets.core.features import FEATURE_COLUMNS
    from tradeops_assets.core.prediction_log import LogBatch, PredictionLog

    root, mode, sync = sys.argv[1], sys.argv[2], float(sys.argv[3])
    log = PredictionLog(root, flush_rows=10**9, flush_seconds=3600, sync_seconds=sync)
    if mode == "term":  # what bentoml's on_shutdown does on SIGTERM
        def stop(*_):
            log.close()
            sys.exit(0)
        signal.signal(signal.SIGTERM, stop)

    def answer(request_id):
        return LogBatch([request_id], 1_700_000_000_000_000, np.array([1]), ["SYN"],
                        np.zeros(1), np.array([0.25]), np.ones((1, len(FEATURE_COLUMNS))),
                        "7", "trading_policy:x", 0.5, client="desk-a")

    for i in range(100):
        log.append(answer(f"old-{i}"))
    if mode == "kill":
        time.sleep(1.5)  # many sync intervals
        for i in range(5):
            log.append(answer(f"new-{i}"))
    print("ready", flush=True)
    time.sleep(600)
    """
)


def batch(ids: list[str], *, targets=None, client: str | None = "desk-a", at: int = DAY_US):
    n = len(ids)
    return LogBatch(
        request_ids=ids,
        predicted_at_us=at,
        bar_timestamps_us=np.arange(n),
        symbols=["SYN"] * n,
        positions=np.zeros(n),
        targets=np.full(n, 0.25) if targets is None else np.asarray(targets),
        features=np.ones((n, len(FEATURE_COLUMNS))),
        policy_version="7",
        bento_tag="trading_policy:x",
        latency_ms=0.5,
        client=client,
    )


def wait_for(condition: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.02)


def start_child(root: Path, mode: str, sync_seconds: float) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(root), mode, str(sync_seconds)],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
        cwd=REPO,
    )
    assert child.stdout.readline().strip() == "ready"
    return child


def ids(root: Path, **kwargs) -> list[str]:
    return read_log(root, **kwargs)["request_id"].to_list()


def journals(root: Path) -> list[Path]:
    folder = root / JOURNAL_DIR
    return sorted(folder.glob("*.arrows")) if folder.is_dir() else []


def parts(root: Path) -> list[Path]:
    return sorted(root.glob("date=*/part-*.parquet"))


def test_sigkill_loses_nothing_older_than_the_sync_interval(tmp_path):
    child = start_child(tmp_path, "kill", sync_seconds=0.2)
    child.send_signal(signal.SIGKILL)
    child.wait(30)
    old = {f"old-{i}" for i in range(100)}
    assert parts(tmp_path) == []  # nothing was rolled: only the journal holds them
    assert len(journals(tmp_path)) == 1
    seen = ids(tmp_path)  # a reader sees the journal of a process that is gone
    assert old <= set(seen) <= old | {f"new-{i}" for i in range(5)}

    fresh = PredictionLog(tmp_path, flush_seconds=3600)
    fresh.close()
    assert fresh.recovered.journals == 1
    assert fresh.recovered.rows == len(seen)
    assert fresh.failures == 0
    assert journals(tmp_path) == []
    assert len(parts(tmp_path)) == 1
    after = ids(tmp_path)
    assert sorted(after) == sorted(seen)  # each decision once
    assert set(read_log(tmp_path)["client"].to_list()) == {"desk-a"}


def test_sigterm_with_close_in_the_handler_writes_everything(tmp_path):
    child = start_child(tmp_path, "term", sync_seconds=60)  # nothing journaled before SIGTERM
    child.send_signal(signal.SIGTERM)
    assert child.wait(30) == 0
    assert sorted(ids(tmp_path)) == sorted(f"old-{i}" for i in range(100))
    assert len(parts(tmp_path)) == 1
    assert not (tmp_path / JOURNAL_DIR).exists()


def test_a_live_writers_journal_is_read_but_never_recovered_by_another(tmp_path):
    log = PredictionLog(tmp_path, flush_seconds=3600, sync_seconds=0.05)
    log.append(batch(["a", "b"]))
    wait_for(lambda: ids(tmp_path) == ["a", "b"])
    assert recover_journals(tmp_path).journals == 0
    assert len(journals(tmp_path)) == 1
    assert parts(tmp_path) == []
    log.close()
    assert ids(tmp_path) == ["a", "b"]
    assert journals(tmp_path) == []


def _journal_of(root: Path, records: list[bytes], segment: str = "0" * 32) -> Path:
    folder = root / JOURNAL_DIR
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"999999-{segment}.arrows"
    path.write_bytes(b"".join(records))
    return path


@pytest.mark.parametrize("damage", ["cut", "torn"])
def test_a_damaged_journal_is_recovered_up_to_its_last_complete_record(tmp_path, damage):
    records = [encode_record(frame_of([batch([f"r{i}a", f"r{i}b"])])) for i in range(3)]
    last = bytearray(records[2])
    if damage == "cut":
        last = last[: len(last) // 2]
    else:
        last[len(last) // 2] ^= 0xFF  # a flipped byte: the checksum refuses the record
    _journal_of(tmp_path, [*records[:2], bytes(last)])
    expected = ["r0a", "r0b", "r1a", "r1b"]
    assert ids(tmp_path) == expected

    recovery = recover_journals(tmp_path)
    assert (recovery.journals, recovery.rows, recovery.dropped_bytes) == (1, 4, len(last))
    assert journals(tmp_path) == []
    assert [p.name for p in parts(tmp_path)] == [f"part-{'0' * 32}.parquet"]
    assert ids(tmp_path) == expected


def test_a_segment_whose_part_exists_is_neither_read_nor_recovered_twice(tmp_path):
    """The owner died between renaming the part and deleting the journal."""
    segment = "1" * 32
    (tmp_path / DAY).mkdir()
    frame_of([batch(["a", "b", "c"])]).write_parquet(tmp_path / DAY / f"part-{segment}.parquet")
    _journal_of(tmp_path, [encode_record(frame_of([batch(["a", "b"])]))], segment)
    assert sorted(ids(tmp_path)) == ["a", "b", "c"]
    recover_journals(tmp_path)
    assert journals(tmp_path) == []
    assert sorted(ids(tmp_path)) == ["a", "b", "c"]  # the part, not the shorter journal


def test_write_failures_are_counted_reported_and_retried_within_a_memory_bound(tmp_path):
    (tmp_path / DAY).write_text("a file where the day's folder goes")
    (tmp_path / JOURNAL_DIR).write_text("and where the journal goes")
    reported: list[str] = []
    log = PredictionLog(
        tmp_path,
        flush_seconds=0.05,
        sync_seconds=0.05,
        on_failure=reported.append,
        max_pending_rows=5,
    )
    for i in range(3):
        log.append(batch([f"b{i}-0", f"b{i}-1"]))
    wait_for(
        lambda: (
            log.dropped == 1
            and any("Parquet" in m for m in reported)
            and any("journalling" in m for m in reported)
        )
    )
    assert read_log(tmp_path).height == 0
    (tmp_path / DAY).unlink()
    (tmp_path / JOURNAL_DIR).unlink()
    wait_for(lambda: log.rows_written == 5)
    log.close()
    assert sorted(ids(tmp_path)) == ["b0-1", "b1-0", "b1-1", "b2-0", "b2-1"]  # the oldest dropped
    assert log.failures == len(reported) >= 2
    assert log.last_failure == reported[-1]
    assert log.dropped == 1


def test_a_failing_callback_does_not_stop_the_writer(tmp_path):
    (tmp_path / DAY).write_text("blocks the first roll")

    def explode(message: str) -> None:
        raise RuntimeError("alerting is down")

    log = PredictionLog(tmp_path, flush_seconds=0.05, sync_seconds=0.05, on_failure=explode)
    log.append(batch(["a"]))
    wait_for(lambda: log.failures >= 1)
    (tmp_path / DAY).unlink()
    log.close()
    assert ids(tmp_path) == ["a"]


def test_refusals_are_logged_apart_from_served_decisions(tmp_path):
    log = PredictionLog(tmp_path, flush_seconds=3600)
    log.append(batch(["served-1"], client="desk-a"))
    log.append(
        LogBatch.refused(
            "refused-1", "desk-b", "SYN", 422, "bars.3.close: must be positive", "7", "t:1", 0.2
        )
    )
    log.append(LogBatch.refused("refused-2", None, None, 401, "unknown token", "7", "t:1", 0.1))
    log.close()

    served = read_log(tmp_path)
    assert served["request_id"].to_list() == ["served-1"]
    assert (served["client"].item(), served["status"].item()) == ("desk-a", "served")
    assert (served["http_status"].item(), served["reason"].item()) == (200, None)

    everything = read_log(tmp_path, include_refused=True).sort("request_id")
    assert everything.schema == pl.Schema(LOG_SCHEMA)
    refused = everything.filter(pl.col("status") == "refused")
    assert refused["request_id"].to_list() == ["refused-1", "refused-2"]
    assert refused["client"].to_list() == ["desk-b", None]
    assert refused["symbol"].to_list() == ["SYN", None]
    assert refused["http_status"].to_list() == [422, 401]
    assert refused["reason"].to_list() == ["bars.3.close: must be positive", "unknown token"]
    no_decision = ["bar_timestamp", "position", "target_position", *FEATURE_COLUMNS]
    assert refused.select(pl.col(no_decision).is_null().all()).row(0) == (True,) * len(no_decision)


def test_single_calls_decided_together_keep_each_ones_client_and_latency(tmp_path):
    log = PredictionLog(tmp_path, flush_seconds=3600)
    together = batch(["t-1", "t-2", "t-3"])
    log.append(replace(together, latency_ms=[0.5, 1.5, 2.5], client=["desk-a", "desk-b", None]))
    log.append(batch(["alone"], client="desk-c"))
    log.close()
    rows = read_log(tmp_path).sort("request_id")
    assert rows["request_id"].to_list() == ["alone", "t-1", "t-2", "t-3"]
    assert rows["client"].to_list() == ["desk-c", "desk-a", "desk-b", None]
    assert rows["latency_ms"].to_list() == [0.5, 0.5, 1.5, 2.5]


@pytest.mark.parametrize("field", ["latency_ms", "client", "symbols"])
def test_per_request_fields_must_match_the_request_ids(field):
    with pytest.raises(ValueError, match=f"2 {field} for 3 request ids"):
        replace(batch(["a", "b", "c"]), **{field: ["x", "y"] if field != "latency_ms" else [1, 2]})


def test_the_writer_frames_between_syncs_and_journals_only_on_a_sync(tmp_path):
    """Rows are framed every drain tick (the GIL in small pieces) but written to the
    journal on the sync clock alone."""
    log = PredictionLog(tmp_path, flush_seconds=3600, sync_seconds=3600, drain_seconds=0.05)
    try:
        log.append(batch(["a"]))
        wait_for(lambda: [f.height for f in log._pending] == [1])
        log.append(batch(["b", "c"]))
        wait_for(lambda: [f.height for f in log._pending] == [1, 2])
        assert journals(tmp_path) == []
        assert parts(tmp_path) == []
    finally:
        log.close()
    assert sorted(ids(tmp_path)) == ["a", "b", "c"]


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_a_non_finite_target_cannot_be_logged_as_served(bad):
    with pytest.raises(NonFiniteDecisionError) as refused:
        batch(["a", "b", "c"], targets=[0.1, bad, 0.2])
    assert refused.value.rows == [1]
    assert isinstance(refused.value, ValueError)
    assert isinstance(refused.value, TradeopsError)


def test_parts_written_before_status_was_logged_read_as_served(tmp_path):
    legacy = frame_of([batch(["old"])]).drop("client", "status", "http_status", "reason")
    (tmp_path / DAY).mkdir()
    legacy.write_parquet(tmp_path / DAY / "part-legacy.parquet")
    row = read_log(tmp_path).row(0, named=True)
    assert (row["request_id"], row["status"], row["http_status"]) == ("old", "served", 200)
    assert row["client"] is None


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_files_are_readable_by_the_owner_only(tmp_path):
    root = tmp_path / "log"
    log = PredictionLog(root, flush_seconds=3600, sync_seconds=0.05)
    log.append(batch(["a"]))
    wait_for(lambda: len(journals(root)) == 1 and ids(root) == ["a"])
    assert mode(root) == 0o700
    assert mode(root / JOURNAL_DIR) == 0o700
    assert mode(journals(root)[0]) == 0o600
    log.close()
    [part] = parts(root)
    assert (mode(part.parent), mode(part)) == (0o700, 0o600)
