import hashlib
import json
from datetime import UTC, datetime

import pytest

from tradeops_assets.core.audit import Anchor, AuditError, AuditLog


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


def anchored(log: AuditLog, where: str = "Dagster run r1") -> list[Anchor]:
    """What the pipeline leaves outside the files on every append: each record's head."""
    return [Anchor(r["seq"], r["hash"], where) for r in log.records()]


def rehash(record: dict) -> dict:
    body = {k: v for k, v in record.items() if k != "hash"}
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"))
    return {**body, "hash": hashlib.sha256(canonical.encode()).hexdigest()}


def test_a_cut_tail_with_a_head_rewritten_to_match_is_caught_by_the_anchors(log):
    anchors = anchored(log)
    lines = log.path.read_text().splitlines()[:2]
    rewrite(log, lines)
    log.head_path.write_text(json.dumps({"seq": 1, "hash": json.loads(lines[1])["hash"]}))
    assert log.verify().ok  # the files alone agree with each other
    assert log.verify(anchors).anchors == 3
    (problem,) = log.verify(anchors).problems
    assert problem == (
        f"Dagster run r1 anchored record 2 ending {anchors[2].hash[:12]}, but {log.path} "
        "has 2 records: records were deleted"
    )


def test_a_whole_chain_rewritten_with_its_head_is_caught_by_the_anchors(log):
    anchors = anchored(log)
    forged, prev = [], "0" * 64
    for record in log.records():
        record = rehash({**record, "actor": "user:mallory", "prev": prev})
        forged.append(json.dumps(record, sort_keys=True))
        prev = record["hash"]
    rewrite(log, forged)
    log.head_path.write_text(json.dumps({"seq": 2, "hash": prev}))
    assert log.verify().ok
    (problem,) = log.verify(anchors).problems
    assert problem == (
        f"{log.path}:1 differs from the record Dagster run r1 anchored (hash "
        f"{anchors[0].hash[:12]}): the log was rewritten"
    )


def test_both_files_deleted_is_caught_by_the_anchors(log):
    anchors = anchored(log, "MLflow tag tradeops.audit_head")
    log.path.unlink()
    log.head_path.unlink()
    assert log.verify().ok
    (problem,) = log.verify(anchors).problems
    assert problem.startswith("MLflow tag tradeops.audit_head anchored record 2 ending ")
    assert problem.endswith(f"but {log.path} has 0 records: records were deleted")


def test_records_appended_behind_the_anchors_back_are_named(log):
    anchors = anchored(log)
    log.append("alias_move", "user:mallory", {"to_version": "4"})
    assert log.verify(anchors).ok  # one unanchored record: a run that died before anchoring
    log.append("alias_move", "user:mallory", {"to_version": "5"})
    (problem,) = log.verify(anchors).problems
    assert problem == (
        f"{log.path} records 3..4 are anchored nowhere (not in the Dagster event log, not in "
        "MLflow): written outside tradeops"
    )


@pytest.mark.parametrize(
    ("head", "why"),
    [
        ("{not json", "is not JSON"),
        ("[2, 3]", 'is not {"seq": <int>, "hash": <64 hex>}'),
        ('{"seq": "2", "hash": "abc"}', 'is not {"seq": <int>, "hash": <64 hex>}'),
        ('{"seq": 2, "hash": "abc"}', 'is not {"seq": <int>, "hash": <64 hex>}'),
        ('{"seq": "2", "hash": "' + "a" * 64 + '"}', 'is not {"seq": <int>, "hash": <64 hex>}'),
    ],
)
def test_a_malformed_head_is_named_not_a_traceback(log, head, why):
    log.head_path.write_text(head)
    (problem,) = log.verify().problems
    assert problem.startswith(f"{log.head_path} {why}")
    with pytest.raises(AuditError, match="fails verification, not appending"):
        log.append("deploy", "user:bob", {})


def test_a_record_that_is_a_json_array_is_named_not_a_traceback(log):
    lines = log.path.read_text().splitlines()
    rewrite(log, [lines[0], "[1, 2]", lines[2]])
    (problem,) = log.verify().problems
    assert problem == f"{log.path}:2 is not a JSON object (a list)"


def test_a_record_whose_head_was_never_written_is_confirmed_by_the_next_append(log):
    """The documented crash rule: a process killed between writing a record and moving the
    head leaves one record past the head. It is whole (its hash and link verify), so it
    stands, verify says so, and the next append moves the head past both."""
    log.append("deploy", "user:bob", {"bento_tag": "b:0"})
    head = log.head_path.read_text()
    log.append("deploy", "user:bob", {"bento_tag": "b:1"})
    log.head_path.write_text(head)  # as if killed before the head moved
    check = log.verify()
    assert check.ok
    assert check.notes == (
        f"{log.path}:5 is past the head (a writer stopped between the record and the head); "
        "it verifies, and the next append confirms it",
    )
    record = log.append("deploy", "user:bob", {"bento_tag": "b:2"})
    assert record["seq"] == 5
    assert json.loads(log.head_path.read_text()) == {"seq": 5, "hash": record["hash"]}
    assert log.verify().notes == ()


def test_a_crashed_first_record_without_any_head_stands(tmp_path):
    trail = AuditLog(tmp_path / "audit")
    trail.append("alias_move", "user:alice", {"to_version": "1"})
    trail.head_path.unlink()
    assert trail.verify().ok
    assert trail.append("deploy", "user:bob", {})["seq"] == 1


def test_two_records_past_the_head_are_not_a_crash(log):
    head = log.head_path.read_text()
    log.append("deploy", "user:bob", {})
    log.append("deploy", "user:bob", {})
    log.head_path.write_text(head)
    (problem,) = log.verify().problems
    assert problem.startswith(f"{log.head_path} says 3 records ending ")


def test_the_log_and_its_head_are_readable_by_their_owner_only(tmp_path):
    trail = AuditLog(tmp_path / "audit")
    trail.append("deploy", "user:bob", {})
    for path in (trail.root, trail.path, trail.head_path):
        assert path.stat().st_mode & 0o077 == 0, path
