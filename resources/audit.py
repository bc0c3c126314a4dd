"""The audit trail as a resource: one place decides where it lives per deployment, and
anchors every new head outside the log's files (core/audit.py says why)."""

import getpass
from collections.abc import Iterator

import dagster as dg

from resources.mlflow_policy import AUDIT_HEAD_TAG, PolicyRegistry
from tradeops_assets.core import governance
from tradeops_assets.core.audit import Anchor, AuditLog, Verification
from tradeops_assets.keys import AUDIT_TRAIL

LATEST_SHOWN = 12


class AuditTrail(dg.ConfigurableResource):
    root: str
    tracking_uri: str = ""
    """The MLflow store whose registered model carries the head as a tag ("" for none)."""

    def _log(self) -> AuditLog:
        return AuditLog(self.root)

    def record(self, context: dg.OpExecutionContext, action: str, details: dict) -> dict:
        """Appends ``action`` with who or what triggered the run that took it, and why, and
        anchors the new head in this run's event log (the ``audit_trail`` asset in the UI)."""
        why = {
            k.removeprefix("tradeops/"): v
            for k, v in context.run.tags.items()
            if k.startswith("tradeops/")
        }
        record = self.append(
            action,
            actor_of(context),
            {"dagster_run_id": context.run_id, **({"trigger": why} if why else {}), **details},
        )
        context.log_event(self.observation(record))
        return record

    def append(self, action: str, actor: str, details: dict) -> dict:
        """Appends and tags the head in MLflow; a caller outside a run (the CLI) also reports
        ``observation(record)`` to the Dagster instance."""
        record = self._log().append(action, actor, details)
        if self.tracking_uri:
            PolicyRegistry(tracking_uri=self.tracking_uri).tag_audit_head(
                record["seq"], record["hash"]
            )
        return record

    def observation(self, record: dict) -> dg.AssetObservation:
        """The head as an anchor, and what an auditor reads without the CLI."""
        check = self.verify()
        latest = self.records()[-LATEST_SHOWN:]
        rows = "\n".join(
            f"| {r['seq']} | {r['time'][:19]}Z | {r['actor']} | {r['action']} | {r['hash'][:12]} |"
            for r in reversed(latest)
        )
        return dg.AssetObservation(
            asset_key=AUDIT_TRAIL,
            metadata={
                "seq": record["seq"],
                "hash": record["hash"],
                "action": record["action"],
                "actor": record["actor"],
                "records": check.records,
                "chain": "intact" if check.ok else f"FAILS: {check.problems[0]}",
                "latest_records": dg.MetadataValue.md(
                    "| seq | time (UTC) | actor | action | hash |\n|---|---|---|---|---|\n" + rows
                ),
            },
        )

    def anchors(self, instance: dg.DagsterInstance) -> list[Anchor]:
        """Every head anchored in the Dagster event log, and the one tagged in MLflow."""
        out = []
        for found_record in _observations(instance):
            entry = found_record.event_log_entry
            meta = entry.asset_observation.metadata if entry.asset_observation else {}
            if "seq" in meta and "hash" in meta:
                where = f"Dagster run {entry.run_id}" if entry.run_id else "the Dagster event log"
                out.append(Anchor(int(meta["seq"].value), str(meta["hash"].value), where))
        if self.tracking_uri:
            tagged = PolicyRegistry(tracking_uri=self.tracking_uri).audit_head_tag()
            if tagged is not None:
                out.append(Anchor(*tagged, f"MLflow tag {AUDIT_HEAD_TAG}"))
        return out

    def authority(self, alias_version: str | None) -> governance.Authority:
        """Raises ``GateBypassError`` unless the trail makes ``alias_version`` the champion."""
        return governance.authority(self.records(), alias_version)

    def history(self, action: str | None = None) -> list[dict]:
        return self._log().history(action)

    def verify(self, anchors: list[Anchor] | None = None) -> Verification:
        return self._log().verify(anchors or ())

    def records(self) -> list[dict]:
        return self._log().records()


def _observations(instance: dg.DagsterInstance) -> Iterator[dg.EventLogRecord]:
    cursor = None
    while True:
        page = instance.fetch_observations(dg.AssetKey(AUDIT_TRAIL), limit=10_000, cursor=cursor)
        yield from page.records
        if not page.has_more:
            return
        cursor = page.cursor


def actor_of(context: dg.OpExecutionContext) -> str:
    """A sensor, a schedule or the person whose process launched the run."""
    tags = context.run.tags
    if "dagster/sensor_name" in tags:
        return f"sensor:{tags['dagster/sensor_name']}"
    if "dagster/schedule_name" in tags:
        return f"schedule:{tags['dagster/schedule_name']}"
    return f"user:{tags['user']}" if "user" in tags else person()


def person() -> str:
    """The person at this machine (locally the OS user), as an actor."""
    return f"user:{getpass.getuser()}"


def who(context: dg.OpExecutionContext) -> dict[str, str]:
    """For an asset's metadata: who or what took this step, in which run."""
    return {"actor": actor_of(context), "dagster_run_id": context.run_id}
