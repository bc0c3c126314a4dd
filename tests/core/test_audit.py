import hashlib
import json
from datetime import UTC, datetime

import pytest

from tradeops_assets.core.audit import AuditError, AuditLog


@pytest.fixture
def log(tmp_path) -> AuditLog:
    trail = AuditLog(tmp_path / "audit")
    for version in ("1", "2", "3"):
        trail.append("alias_move", "user:alice", {"to_version": version})
    return trail


def rewrite(log: AuditLog, lines: list[str]) -> None:
    log.path.write_text("".join(line + "\n" for line in lines))


def test_an_untouched_log_verifies(log):
    check = log.verify()
    assert check.ok
    assert check.records == 3
    assert [r["details"]["to_version"] for r in log.history("alias_move")] == ["1", "2", "3"]


def test_an_edited_record_is_detected(log):
    lines = log.path.read_text().splitlines()
    record = json.loads(lines[1])
    record["details"]["to_version"] = "9"
    lines[1] = json.dumps(record, sort_keys=True)
    rewrite(log, lines)
    assert any("audit.jsonl:2: contents edited" in p for p in log.verify().problems)


def test_a_deleted_record_is_detected(log):
    lines = log.path.read_text().splitlines()
    rewrite(log, [lines[0], lines[2]])
    assert any("chain broken" in p for p in log.verify().problems)


def test_a_deleted_tail_is_detected(log):
    rewrite(log, log.path.read_text().splitlines()[:2])
    assert any("records were deleted" in p for p in log.verify().problems)


def test_a_broken_log_is_not_extended(log):
    rewrite(log, log.path.read_text().splitlines()[:2])
    with pytest.raises(AuditError, match="fails verification"):
        log.append("alias_move", "user:mallory", {"to_version": "4"})
    assert len(log.records()) == 2


@pytest.mark.parametrize(
    ("field", "forged"),
    [("actor", "user:mallory"), ("action", "deploy"), ("time", "2020-01-01T00:00:00+00:00")],
)
def test_every_field_of_a_record_is_under_its_hash(log, field, forged):
    lines = log.path.read_text().splitlines()
    record = json.loads(lines[1])
    record[field] = forged
    rewrite(log, [lines[0], json.dumps(record), lines[2]])
    check = log.verify()
    assert not check.ok
    assert any(":2: contents edited" in p for p in check.problems)


def test_records_follow_the_documented_canonical_form(log):
    """What an auditor's own tool recomputes: SHA-256 of the record without its hash, as JSON
    with sorted keys and no spaces; the first record's predecessor is 64 zeros."""
    first = log.records()[0]
    assert first["prev"] == "0" * 64
    assert first["seq"] == 0
    assert first["actor"] == "user:alice"
    assert first["time"].endswith("+00:00")  # UTC, with its offset
    canonical = (
        '{"action":"alias_move","actor":"user:alice","details":{"to_version":"1"},'
        f'"prev":"{"0" * 64}","seq":0,"time":"{first["time"]}"}}'
    )
    assert first["hash"] == hashlib.sha256(canonical.encode()).hexdigest()
    line = log.path.read_text().splitlines()[0]
    assert line == json.dumps(first, sort_keys=True)  # one canonical record per line


def test_details_that_are_not_json_are_kept_as_text(tmp_path):
    trail = AuditLog(tmp_path / "audit")
    record = trail.append("deploy", "user:bob", {"since": datetime(2026, 1, 2, tzinfo=UTC)})
    assert trail.records()[0]["details"]["since"] == "2026-01-02 00:00:00+00:00"
    assert record["hash"] == trail.verify().head
    assert trail.verify().ok


def test_a_record_that_is_not_json_is_named_by_its_line(log):
    lines = log.path.read_text().splitlines()
    rewrite(log, [lines[0], "{not json", lines[2]])
    check = log.verify()
    assert (check.records, check.head) == (0, "0" * 64)
    assert len(check.problems) == 1
    assert f"{log.path}:2 is not a JSON record" in check.problems[0]
    with pytest.raises(AuditError, match=r"audit.jsonl:2 is not a JSON record"):
        log.records()


def test_a_rebuilt_last_record_disagrees_with_the_head(log):
    """An edit re-hashed consistently keeps the chain whole; only the head still knows."""
    lines = log.path.read_text().splitlines()
    last = json.loads(lines[2])
    last["details"]["to_version"] = "9"
    last["hash"] = hashlib.sha256(
        json.dumps(
            {k: v for k, v in last.items() if k != "hash"}, sort_keys=True, separators=(",", ":")
        ).encode()
    ).hexdigest()
    rewrite(log, [lines[0], lines[1], json.dumps(last, sort_keys=True)])
    (problem,) = log.verify().problems
    head = json.loads(log.head_path.read_text())["hash"]
    assert problem == (
        f"{log.head_path} says 3 records ending {head[:12]}, the log has 3 ending "
        f"{last['hash'][:12]}: records were deleted"
    )


def test_a_record_out_of_sequence_says_which_number_it_carries(log):
    lines = log.path.read_text().splitlines()
    record = json.loads(lines[1])
    record["seq"] = 5
    rewrite(log, [lines[0], json.dumps(record), lines[2]])
    assert f"{log.path}:2: seq 5 where 1 was expected" in log.verify().problems


def test_records_without_a_head_are_refused_and_history_filters_by_action(log):
    assert len(log.history()) == 3
    assert log.history("deploy") == []
    log.head_path.unlink()
    assert log.verify().problems == (f"{log.head_path} is missing",)


def test_a_record_stripped_of_its_hash_is_reported_not_a_crash(log):
    """Without its hash the last record cannot be chained to the head: both are said."""
    lines = log.path.read_text().splitlines()
    record = json.loads(lines[-1])
    del record["hash"]
    rewrite(log, [*lines[:-1], json.dumps(record, sort_keys=True)])
    check = log.verify()
    assert not check.ok
    assert any("audit.jsonl:3: contents edited" in p for p in check.problems)
    assert any("the log has 3 ending " in p for p in check.problems)
