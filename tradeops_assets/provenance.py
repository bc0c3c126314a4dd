"""What was serving at a moment, and why: the record an auditor asks for.

``tradeops audit export --at TIME`` (or ``--bento TAG``) joins what each tool kept:
the audit trail (the deploy, the authority behind it, the gate verdict), the
Dagster event log (the bento's and the features' materialisations: lineage, DVC
md5s, git commit, library versions), the stored backtest report and gate record,
and the MLflow registry (the training recipe with its actual dates and seeds).
"""

import html
import json
from datetime import UTC, datetime
from typing import Any

import dagster as dg

from tradeops_assets.core.errors import ConfigError
from tradeops_assets.core.windows import as_utc
from tradeops_assets.keys import MARKET_FEATURES, POLICY_BENTO, POLICY_DEPLOYMENT, TRAINED_POLICY

DEPLOY = "deploy"


def parse_moment(text: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ConfigError(
            f"--at {text!r} is not an ISO 8601 time, e.g. 2026-12-01T14:30Z"
        ) from None
    return as_utc(moment)


def deploy_serving(records: list[dict], at: datetime | None = None, bento: str | None = None):
    """The deploy record serving at ``at`` (the last one live by then), or the one of ``bento``."""
    deploys = [r for r in records if r["action"] == DEPLOY]
    if bento is not None:
        found = [r for r in deploys if r["details"]["bento_tag"] == bento]
        if not found:
            raise ConfigError(f"no deployment of bento {bento!r} in the audit trail")
        return found[-1]
    live = [r for r in deploys if as_utc(datetime.fromisoformat(r["details"]["since"])) <= at]
    if not live:
        first = deploys[0]["details"]["since"] if deploys else "never"
        raise ConfigError(f"nothing was serving at {at.isoformat()}: the first deployment: {first}")
    return live[-1]


def _materialization(instance: dg.DagsterInstance, asset: str, key: str, value: str) -> dict:
    """The metadata of ``asset``'s latest materialisation whose ``key`` equals ``value``."""
    found = instance.fetch_materializations(dg.AssetKey(asset), limit=10_000).records
    for record in found:
        meta = record.asset_materialization.metadata
        if key in meta and str(meta[key].value) == value:
            return {k: v.value for k, v in meta.items()} | {"dagster_run_id": record.run_id}
    return {}


def live_record(
    records: list[dict], deploy: dict, instance: dg.DagsterInstance, registry, reports
) -> dict[str, Any]:
    """Everything that decided what ``deploy`` put live, from every tool that kept a part."""
    tag = deploy["details"]["bento_tag"]
    intent = next(
        r
        for r in reversed(records[: deploy["seq"]])
        if r["action"] == "deploy_requested" and r["details"]["bento_tag"] == tag
    )
    authority = intent["details"].get("authority", {})
    by_seq = {r["seq"]: r for r in records}
    move = by_seq.get(authority.get("move_seq"), {})
    gate = by_seq.get(authority.get("gate_seq"))
    bento = _materialization(instance, POLICY_BENTO, "bento_tag", tag)
    deployed = _materialization(instance, POLICY_DEPLOYMENT, "bento_tag", tag)
    lineage = bento.get("lineage", {})
    version = str(lineage.get("model_version", authority.get("version")))
    policy = registry.fetch(version)
    features = _materialization(instance, MARKET_FEATURES, "dvc_md5", policy.recipe.data_version)
    trained = _materialization(instance, TRAINED_POLICY, "mlflow_run_id", policy.run_id)
    report_location = move.get("details", {}).get("report")
    backtest: dict[str, Any] = {}
    if report_location:
        summary, sha256 = reports.read(report_location)
        decision = reports.read_gate(report_location)
        backtest = {
            "report": report_location,
            "report_sha256": sha256,
            "held_out_window": str(summary.held_out),
            "metrics": summary.metrics,
            "gate_criteria": decision.to_dict() if decision else None,
        }
    return {
        "bento_tag": tag,
        "live_since": deploy["details"]["since"],
        "replaced": deploy["details"].get("previous_bento_tag") or "first deployment",
        "deployed_by": deploy["actor"],
        "deployed_in_dagster_run": deploy["details"].get("dagster_run_id"),
        "why": deploy["details"].get("why"),
        "signature_digest": deploy["details"].get("signature_digest"),
        "signing_key_id": deployed.get("signing_key_id"),
        "model_version": version,
        "mlflow_run_id": policy.run_id,
        "authority": authority,
        "gate_verdict": gate["details"] if gate else "none: a manual override",
        "champion_move": move,
        "backtest": backtest,
        "training_recipe": policy.recipe.to_dict(),
        "weights_hash": trained.get("weights_hash"),
        "data_version": policy.recipe.data_version,
        "months_dvc_md5": features.get("upstream_versions", {}),
        "git_commit": bento.get("git_commit"),
        "code_version": lineage.get("code_version"),
        "library_versions": bento.get("library_versions", {}),
        "training_library_versions": trained.get("library_versions", {}),
        "audit_records": {"deploy": deploy["seq"], "deploy_requested": intent["seq"]},
        "exported_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def as_html(record: dict[str, Any], title: str) -> str:
    """A page an auditor can read and archive: every field, nothing to load."""

    def cell(value: Any) -> str:
        if isinstance(value, dict):
            rows = "".join(
                f"<tr><th>{html.escape(str(k))}</th><td>{cell(v)}</td></tr>"
                for k, v in value.items()
            )
            return f"<table>{rows}</table>"
        if isinstance(value, list):
            return "<br>".join(cell(v) for v in value)
        return html.escape(json.dumps(value) if not isinstance(value, str) else value)

    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
        "<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}"
        "td,th{border:1px solid #ccc;padding:3px 8px;text-align:left;vertical-align:top}"
        f"</style></head><body><h1>{html.escape(title)}</h1>{cell(record)}</body></html>\n"
    )
