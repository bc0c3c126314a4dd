"""The audit trail as a resource: one place decides where it lives per deployment."""

import getpass

import dagster as dg

from tradeops_assets.core import governance
from tradeops_assets.core.audit import AuditLog, Verification


class AuditTrail(dg.ConfigurableResource):
    root: str

    def _log(self) -> AuditLog:
        return AuditLog(self.root)

    def record(self, context: dg.OpExecutionContext, action: str, details: dict) -> dict:
        """Appends ``action`` with who or what triggered the run that took it, and why."""
        why = {
            k.removeprefix("tradeops/"): v
            for k, v in context.run.tags.items()
            if k.startswith("tradeops/")
        }
        return self.append(
            action,
            actor_of(context),
            {"dagster_run_id": context.run_id, **({"trigger": why} if why else {}), **details},
        )

    def append(self, action: str, actor: str, details: dict) -> dict:
        """A record outside any run: a person's override from the CLI."""
        return self._log().append(action, actor, details)

    def authority(self, alias_version: str | None) -> governance.Authority:
        """Raises ``GateBypassError`` unless the trail makes ``alias_version`` the champion."""
        return governance.authority(self.records(), alias_version)

    def history(self, action: str | None = None) -> list[dict]:
        return self._log().history(action)

    def verify(self) -> Verification:
        return self._log().verify()

    def records(self) -> list[dict]:
        return self._log().records()


def actor_of(context: dg.OpExecutionContext) -> str:
    """A sensor, a schedule or the person whose process launched the run."""
    tags = context.run.tags
    if "dagster/sensor_name" in tags:
        return f"sensor:{tags['dagster/sensor_name']}"
    if "dagster/schedule_name" in tags:
        return f"schedule:{tags['dagster/schedule_name']}"
    return f"user:{tags.get('user', getpass.getuser())}"


def who(context: dg.OpExecutionContext) -> dict[str, str]:
    """For an asset's metadata: who or what took this step, in which run."""
    return {"actor": actor_of(context), "dagster_run_id": context.run_id}
