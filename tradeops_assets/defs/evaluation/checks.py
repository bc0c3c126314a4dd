import dagster as dg

from resources.audit import AuditTrail
from resources.mlflow_policy import PolicyRegistry
from resources.notifier import REFUSED, Notifier
from resources.reports import ReportStore
from tradeops_assets.core import promotion
from tradeops_assets.core.display import figure
from tradeops_assets.core.promotion import GateDecision
from tradeops_assets.defs.evaluation.config import GateConfig
from tradeops_assets.defs.lineage import latest_report
from tradeops_assets.keys import BACKTEST_REPORT, PROMOTION_GATE


@dg.asset_check(
    asset=BACKTEST_REPORT,
    name=PROMOTION_GATE,
    blocking=True,
    required_resource_keys={"audit", "reports", "notifier", "registry"},
    description="The challenger beats the champion and every baseline on the held-out "
    "window, its recipe beats the best baseline in enough walk-forward folds (each of the "
    "recipe's seeds, one by default), and it stays inside drawdown and turnover limits.",
)
def promotion_gate(
    context: dg.AssetCheckExecutionContext, config: GateConfig
) -> dg.AssetCheckResult:
    store: ReportStore = context.resources.reports
    audit: AuditTrail = context.resources.audit
    location = latest_report(context)
    report, sha256 = store.read(location)
    decision = GateDecision(
        verdict=promotion.judge(report, config.criteria()),
        report_sha256=sha256,
        challenger_version=report.challenger_version,
        champion_version=report.champion_version,
        criteria=config.criteria(),
    )
    recorded = decision.to_dict()
    audit.record(
        context.op_execution_context,
        PROMOTION_GATE,
        {k: v for k, v in recorded.items() if k != "criteria"},
    )
    gate_file = store.write_gate(location, decision)
    registry: PolicyRegistry = context.resources.registry
    verdict = "passed" if decision.passed else "refused"
    registry.log_gate(report.challenger_run_id, gate_file, report.challenger_version, verdict)
    context.log.info(decision.reason)
    if not decision.passed:
        notifier: Notifier = context.resources.notifier
        notifier.alert(
            REFUSED,
            f"promotion gate refused tradeops-policy v{report.challenger_version}",
            {c.name: c.why for c in decision.verdict.failed},
        )
    return dg.AssetCheckResult(
        passed=decision.passed,
        severity=dg.AssetCheckSeverity.ERROR,
        description=decision.reason,
        metadata={
            "verdict": "passed" if decision.passed else "refused",
            "reason": decision.reason,
            "criteria": dg.MetadataValue.md(decision.verdict.markdown()),
            **{
                c.name: dg.MetadataValue.json(
                    {
                        "value": figure(c.name, c.value),
                        "threshold": figure(c.name, c.threshold),
                        "verdict": c.verdict,
                    }
                )
                for c in decision.verdict.criteria
            },
            "challenger_version": report.challenger_version,
            "champion_version": report.champion_version or "none",
        },
    )
