"""The audit trail, not MLflow's alias, decides which version may be packaged and deployed."""

import pytest

from tradeops_assets.core.audit import AuditLog
from tradeops_assets.core.errors import GateBypassError
from tradeops_assets.core.governance import ALIAS_MOVE, OVERRIDE, authority
from tradeops_assets.keys import PROMOTION_GATE

PIPELINE = "user:pipeline"


def gate(log: AuditLog, version: str, sha: str, passed: bool = True) -> dict:
    details = {"passed": passed, "report_sha256": sha, "challenger_version": version}
    return log.append(PROMOTION_GATE, PIPELINE, details)


def move(log: AuditLog, version: str, sha: str, previous: str | None = None) -> dict:
    details = {"from_version": previous, "to_version": version, "report_sha256": sha}
    return log.append(ALIAS_MOVE, PIPELINE, details)


@pytest.fixture
def log(tmp_path) -> AuditLog:
    trail = AuditLog(tmp_path)
    gate(trail, "1", "a" * 64)
    move(trail, "1", "a" * 64)
    return trail


def test_a_gated_move_authorises_exactly_the_version_it_names(log):
    granted = authority(log.records(), "1")
    _gate, move = log.records()
    assert granted.to_dict() == {
        "version": "1",
        "kind": "gate",
        "move_seq": 1,
        "move_hash": move["hash"],
        "moved_by": "user:pipeline",
        "gate_seq": 0,
        "report_sha256": "a" * 64,
    }
    assert (granted.version, granted.move["seq"], granted.gate["seq"]) == ("1", 1, 0)
    assert not granted.overridden
    assert granted.describe() == (
        "promotion_gate passed (audit record 0), champion moved by user:pipeline (audit record 1)"
    )
    with pytest.raises(GateBypassError) as err:
        authority(log.records(), "2")  # the alias moved by hand in the MLflow UI
    assert str(err.value) == (
        "MLflow's champion alias names v2, but the audit trail's last champion move "
        "(record 1, by user:pipeline) names v1: the alias was moved outside the gate"
    )


def test_no_alias_or_no_recorded_move_authorises_nothing(tmp_path):
    with pytest.raises(GateBypassError) as err:
        authority([], None)
    assert str(err.value) == "no champion alias is set: nothing has been promoted"
    with pytest.raises(GateBypassError, match="the audit trail records no champion move"):
        authority([], "1")


@pytest.mark.parametrize(
    "verdicts",
    [
        [("2", "b" * 64, False)],  # the gate refused this very report
        [("2", "c" * 64, True)],  # passed, but on another report
        [("3", "b" * 64, True)],  # passed, but for another version
        [("2", "b" * 64, True), ("2", "b" * 64, False)],  # the latest verdict refused it
        [],  # never judged
    ],
)
def test_a_move_needs_a_passed_verdict_on_the_report_it_cites(log, verdicts):
    for version, sha, passed in verdicts:
        gate(log, version, sha, passed)
    move(log, "2", "b" * 64, previous="1")
    with pytest.raises(GateBypassError) as err:
        authority(log.records(), "2")
    assert str(err.value).endswith(
        f"cites report {'b' * 12}, for which the trail holds no passed promotion_gate verdict"
    )


def test_a_verdict_recorded_after_the_move_does_not_back_it(log):
    move(log, "2", "b" * 64, previous="1")
    gate(log, "2", "b" * 64)
    with pytest.raises(GateBypassError, match="no passed promotion_gate verdict"):
        authority(log.records(), "2")


def test_an_override_names_a_person_and_a_reason(log):
    log.append(
        OVERRIDE,
        "user:alice",
        {"from_version": "1", "to_version": "2", "reason": "vendor outage, v1 misprices"},
    )
    granted = authority(log.records(), "2")
    assert granted.overridden
    assert granted.gate is None
    assert granted.version == "2"
    move = log.records()[2]
    assert granted.to_dict() == {
        "version": "2",
        "kind": "override",
        "move_seq": 2,
        "move_hash": move["hash"],
        "moved_by": "user:alice",
        "reason": "vendor outage, v1 misprices",
    }
    assert granted.describe() == (
        "manual override by user:alice (audit record 2): vendor outage, v1 misprices"
    )
    assert granted.to_dict()["kind"] == "override"
    log.append(OVERRIDE, "sensor:drift_sensor", {"to_version": "3", "reason": "automatic"})
    with pytest.raises(GateBypassError, match="names no person and reason"):
        authority(log.records(), "3")
    log.append(OVERRIDE, "user:bob", {"to_version": "3", "reason": "  "})
    with pytest.raises(GateBypassError, match="names no person and reason"):
        authority(log.records(), "3")
    log.append(OVERRIDE, "user:bob", {"to_version": "3"})
    with pytest.raises(GateBypassError, match="names no person and reason"):
        authority(log.records(), "3")


def test_an_authority_holds_only_plain_values(log):
    """It goes into a bento's metadata, which takes no None: what does not apply is left out."""
    log.append(OVERRIDE, "user:alice", {"to_version": "2", "reason": "vendor outage today"})
    granted = authority(log.records(), "2").to_dict()
    assert None not in granted.values()
    assert "gate_seq" not in granted
    assert authority(log.records()[:2], "1").to_dict()["gate_seq"] == 0
