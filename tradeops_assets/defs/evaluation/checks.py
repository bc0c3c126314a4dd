import json

import dagster as dg

from resources.audit import AuditTrail
from resources.reports import ReportStore
from tradeops_assets.core import promotion
from tradeops_assets.defs.evaluation.assets import BACKTEST_REPORT, GATE_JSON, latest_report
from tradeops_assets.defs.evaluation.config import GateConfig

PROMOTION_GATE = "promotion_gate"


@dg.asset_check(
    asset=BACKTEST_REPORT,
    name=PROMOTION_GATE,
    blocking=True,
    required_resource_keys={"audit", "reports"},
    description="The challenger beats the champion and every baseline out of sample, "
    "across seeds and walk-forward folds, inside drawdown and turnover limits.",
)
def promotion_gate(
    context: dg.AssetCheckExecutionContext, config: GateConfig
) -> dg.AssetCheckResult:
    store: ReportStore = context.resources.reports
    audit: AuditTrail = context.resources.audit
    report = latest_report(context)
    summary = store.read_json(report)
    verdict = promotion.judge(summary, config.criteria())
    decision = {
        **verdict.as_dict(),
        "report_sha256": store.digest(report),
        "challenger_version": summary["challenger_version"],
        "champion_version": summary["champion_version"],
        "gate": config.model_dump(),
    }
    (report.parent / GATE_JSON).write_text(json.dumps(decision, indent=2))
    audit.record(
        context.op_execution_context,
        "promotion_gate",
        {
            k: decision[k]
            for k in (
                "passed",
                "reason",
                "challenger_version",
                "champion_version",
                "report_sha256",
                "gate",
            )
        },
    )
    context.log.info(verdict.reason)
    return dg.AssetCheckResult(
        passed=verdict.passed,
        severity=dg.AssetCheckSeverity.ERROR,
        description=verdict.reason,
        metadata={
            "verdict": "passed" if verdict.passed else "refused",
            "reason": verdict.reason,
            "criteria": dg.MetadataValue.md(verdict.markdown()),
            **{
                f"{c.name}": dg.MetadataValue.json(
                    {"value": c.value, "threshold": c.threshold, "passed": c.passed}
                )
                for c in verdict.criteria
            },
            "challenger_version": summary["challenger_version"],
            "champion_version": summary["champion_version"] or "none",
        },
    )
