"""Which policy version the audit trail allows to trade, and on whose authority.

MLflow's ``champion`` alias is a pointer anyone with the MLflow UI can move; the
audit trail is the record of the gate. A version may be packaged and deployed only
if the trail's last champion move names it, and that move is either backed by a
passed ``promotion_gate`` verdict on the very report (same SHA-256) it cites, or is a
person's override, recorded with a reason. Anything else is a move around the gate.
"""

from dataclasses import dataclass

from tradeops_assets.core.errors import GateBypassError
from tradeops_assets.keys import PROMOTION_GATE

ALIAS_MOVE = "alias_move"
OVERRIDE = "override"
CHAMPION_MOVES = (ALIAS_MOVE, OVERRIDE)


@dataclass(frozen=True)
class Authority:
    """The records that make ``version`` the champion: the move and, unless it was an
    override, the gate verdict it cites."""

    version: str
    move: dict
    gate: dict | None

    @property
    def overridden(self) -> bool:
        return self.move["action"] == OVERRIDE

    def describe(self) -> str:
        move = self.move
        if self.overridden:
            return (
                f"manual override by {move['actor']} (audit record {move['seq']}): "
                f"{move['details']['reason']}"
            )
        assert self.gate is not None
        return (
            f"promotion_gate passed (audit record {self.gate['seq']}), champion moved by "
            f"{move['actor']} (audit record {move['seq']})"
        )

    def to_dict(self) -> dict:
        """Plain values only (a bento's metadata takes no None): what does not apply is left out."""
        full = {
            "version": self.version,
            "kind": "override" if self.overridden else "gate",
            "move_seq": self.move["seq"],
            "move_hash": self.move["hash"],
            "moved_by": self.move["actor"],
            "gate_seq": self.gate["seq"] if self.gate else None,
            "report_sha256": (self.gate or {}).get("details", {}).get("report_sha256"),
            "reason": self.move["details"].get("reason"),
        }
        return {k: v for k, v in full.items() if v is not None}


def authority(records: list[dict], alias_version: str | None) -> Authority:
    """The trail's authority for the version the live alias names, or why there is none."""
    if alias_version is None:
        raise GateBypassError("no champion alias is set: nothing has been promoted")
    moves = [r for r in records if r.get("action") in CHAMPION_MOVES]
    if not moves:
        raise GateBypassError(
            f"MLflow's champion alias names v{alias_version}, but the audit trail records no "
            "champion move: the alias was set outside the gate"
        )
    last = moves[-1]
    named = str(last["details"].get("to_version"))
    if named != alias_version:
        raise GateBypassError(
            f"MLflow's champion alias names v{alias_version}, but the audit trail's last "
            f"champion move (record {last['seq']}, by {last['actor']}) names v{named}: "
            "the alias was moved outside the gate"
        )
    if last["action"] == OVERRIDE:
        if not str(last["details"].get("reason") or "").strip() or not str(
            last["actor"]
        ).startswith("user:"):
            raise GateBypassError(
                f"override record {last['seq']} for v{alias_version} names no person and "
                "reason; an override must"
            )
        return Authority(alias_version, last, None)
    sha = last["details"].get("report_sha256")
    verdicts = [
        r
        for r in records
        if r.get("action") == PROMOTION_GATE
        and r["seq"] < last["seq"]
        and r["details"].get("report_sha256") == sha
        and str(r["details"].get("challenger_version")) == alias_version
    ]
    if not verdicts or verdicts[-1]["details"].get("passed") is not True:
        raise GateBypassError(
            f"the audit trail's move to v{alias_version} (record {last['seq']}) cites report "
            f"{str(sha)[:12]}, for which the trail holds no passed promotion_gate verdict"
        )
    return Authority(alias_version, last, verdicts[-1])
