import json

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
