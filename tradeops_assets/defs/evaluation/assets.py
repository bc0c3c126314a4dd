from pathlib import Path

import dagster as dg

from resources.audit import AuditTrail, who
from resources.datasets import DatasetStore
from resources.mlflow_policy import CHALLENGER, CHAMPION, REGISTERED_MODEL, PolicyRegistry
from resources.reports import ReportStore
from resources.tracking import TrainingWorkspace
from tradeops_assets.core import backtest, evaluation, training
from tradeops_assets.core.display import figure
from tradeops_assets.core.governance import ALIAS_MOVE, CHAMPION_MOVES
from tradeops_assets.defs import plots
from tradeops_assets.defs.evaluation import render
from tradeops_assets.defs.evaluation.config import BacktestConfig
from tradeops_assets.defs.lineage import latest_report, lineage_metadata
from tradeops_assets.defs.retries import IO_RETRY
from tradeops_assets.keys import (
    BACKTEST_REPORT,
    CHAMPION_POLICY,
    EVALUATION_GROUP,
    MARKET_FEATURES,
    REPORT_LOCATION,
    TRAINED_POLICY,
)


@dg.asset(
    name=BACKTEST_REPORT,
    group_name=EVALUATION_GROUP,
    deps=[TRAINED_POLICY, MARKET_FEATURES],
    required_resource_keys={"datasets", "registry", "reports", "training"},
    kinds={"mlflow", "html"},
    backfill_policy=dg.BackfillPolicy.single_run(),
    owners=["team:ml-engineering"],
)
def backtest_report(
    context: dg.AssetExecutionContext, config: BacktestConfig
) -> dg.MaterializeResult:
    """How the challenger policy would have traded out of sample, beside its baselines.

    The registered challenger trades the held-out window (the bars after its
    validation window, never seen in training or model selection) against
    buy-and-hold, flat, a momentum rule and the current champion, under the env's
    execution rules: fees, slippage and borrow charged exactly. Walk-forward folds
    then retrain the same recipe for every seed and test each on a later window, so
    one lucky window cannot promote a policy. Every window named is the actual first
    and last bar used. The promotion_gate check reads this report.
    """
    datasets: DatasetStore = context.resources.datasets
    store: ReportStore = context.resources.reports
    workspace: TrainingWorkspace = context.resources.training
    registry: PolicyRegistry = context.resources.registry
    frame, md5s = datasets.read(MARKET_FEATURES)
    challenger_version = registry.version_for(CHALLENGER)
    if challenger_version is None:
        raise dg.Failure(f"no '{CHALLENGER}' version of {REGISTERED_MODEL}: run trained_policy")
    champion_version = registry.version_for(CHAMPION)
    challenger = registry.fetch(challenger_version)
    champion = registry.fetch(champion_version) if champion_version else None
    against = f"champion v{champion_version}" if champion else "no champion yet"
    context.log.info(f"backtest of v{challenger_version} against {against}")
    root = context.run.root_run_id or context.run_id
    # The walk-forward folds retrain on Spot capacity too; their checkpoints go where the
    # workspace keeps them, so a retried run resumes each fold.
    with training.on_checkpoints(workspace.checkpoint_hook(root)):
        report, result = evaluation.evaluate(
            frame,
            challenger,
            champion,
            config.options(),
            workspace.walk_forward_dir(root),
            report=lambda row: context.log.info(
                f"fold {row.fold} seed {row.seed} ({row.test}): Sharpe "
                + ", ".join(f"{k} {v:+.3f}" for k, v in row.sharpe.items())
            ),
            data_version=md5s["full"],
            code_version=context.assets_def.code_versions_by_key[context.asset_key],
            run_id=context.run_id,
        )
    images = render.plots(result)
    title = f"Backtest of {REGISTERED_MODEL} v{challenger_version}"
    stored = store.write(
        context.run_id, report, render.html_report(title, report, result, images), result.ledger
    )
    registry.log_report(
        challenger.run_id,
        store.files(stored.location),
        {f"backtest_sharpe_{s}": m["sharpe"] for s, m in report.metrics.items()},
    )
    fold_sharpes = [f.sharpe[backtest.CHALLENGER] for f in report.folds]
    held = report.held_out
    independent = sum(render.independence(f, held) == "yes" for f in report.folds)
    mine = report.challenger
    return dg.MaterializeResult(
        metadata={
            "challenger_version": challenger_version,
            "champion_version": champion_version or "none yet",
            "held_out_window": str(report.held_out),
            **{k: figure(k, mine[k]) for k in ("sharpe", "max_drawdown", "turnover", "bars")},
            "walk_forward_sharpe_mean": figure("sharpe", sum(fold_sharpes) / len(fold_sharpes)),
            "walk_forward_sharpe_min": figure("sharpe", min(fold_sharpes)),
            "walk_forward_independent_folds": f"{independent} of {len(report.folds)}",
            "metrics": dg.MetadataValue.md(render.metrics_markdown(result)),
            "walk_forward": dg.MetadataValue.md(render.folds_markdown(report.folds, held)),
            "plots": dg.MetadataValue.md(plots.markdown(images)),
            REPORT_LOCATION: dg.MetadataValue.path(stored.location),
            "html_report": dg.MetadataValue.path(stored.html),
            "html_report_link": dg.MetadataValue.url(Path(stored.html).as_uri()),
            "report_sha256": stored.sha256,
            "mlflow_run_id": challenger.run_id,
            "mlflow_run": registry.run_link(challenger.run_id),
            "mlflow_model_version": registry.version_link(challenger_version),
            **lineage_metadata(
                config=config.model_dump(),
                upstream={MARKET_FEATURES: md5s["full"], TRAINED_POLICY: challenger_version},
            ),
        }
    )


@dg.asset(
    name=CHAMPION_POLICY,
    group_name=EVALUATION_GROUP,
    retry_policy=IO_RETRY,
    deps=[BACKTEST_REPORT],
    required_resource_keys={"audit", "registry", "reports"},
    kinds={"mlflow"},
    backfill_policy=dg.BackfillPolicy.single_run(),
    owners=["team:ml-engineering"],
)
def champion_policy(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
    """The policy version production trades: MLflow alias 'champion' of tradeops-policy.

    Moves only for a challenger whose promotion_gate verdict on this exact backtest
    report (same SHA-256) is 'passed'. Every move, with who or what triggered it, from
    which version, and why, is appended to the hash-chained audit log before the
    alias moves, because MLflow keeps no history of its aliases.
    """
    audit: AuditTrail = context.resources.audit
    store: ReportStore = context.resources.reports
    registry: PolicyRegistry = context.resources.registry
    location = latest_report(context)
    report, sha256 = store.read(location)
    gate = store.read_gate(location)
    if gate is None:
        raise dg.Failure(f"no promotion_gate verdict for {location}: the gate must run first")
    if gate.report_sha256 != sha256:
        raise dg.Failure(f"{location} changed after the gate judged it; refusing to promote")
    if not gate.passed:
        raise dg.Failure(f"promotion_gate refused v{report.challenger_version}: {gate.reason}")
    to_version = report.challenger_version
    from_version = registry.version_for(CHAMPION)
    if from_version == to_version:
        context.log.info(f"v{to_version} is already the champion")
    else:
        audit.record(
            context,
            ALIAS_MOVE,
            {
                "model": REGISTERED_MODEL,
                "alias": CHAMPION,
                "from_version": from_version,
                "to_version": to_version,
                "reason": gate.reason,
                "report": location,
                "report_sha256": gate.report_sha256,
                "held_out_sharpe": report.challenger["sharpe"],
            },
        )
        registry.move_alias(CHAMPION, to_version)
    moves = [r for r in audit.records() if r["action"] in CHAMPION_MOVES]
    return dg.MaterializeResult(
        data_version=dg.DataVersion(f"v{to_version}"),
        metadata={
            "champion_version": to_version,
            "mlflow_model_version": registry.version_link(to_version),
            "previous_champion": from_version or "none (first promotion)",
            **who(context),
            "reason": gate.reason,
            "alias_history": dg.MetadataValue.md(
                "| time | actor | move | from | to |\n|---|---|---|---|---|\n"
                + "\n".join(
                    f"| {m['time']} | {m['actor']} | {m['action']} "
                    f"| {m['details']['from_version'] or 'none'} | {m['details']['to_version']} |"
                    for m in moves
                )
            ),
            "audit_head": audit.verify().head,
            **lineage_metadata(config={}, upstream={BACKTEST_REPORT: gate.report_sha256}),
        },
    )
