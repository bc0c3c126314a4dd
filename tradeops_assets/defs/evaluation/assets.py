import json
import statistics
import tempfile
from dataclasses import replace
from datetime import datetime
from pathlib import Path

import dagster as dg

from resources.audit import AuditTrail
from resources.datasets import DatasetStore
from resources.mlflow_policy import CHALLENGER, CHAMPION, REGISTERED_MODEL, PolicyRegistry
from resources.reports import ReportStore
from resources.tracking import TrainingWorkspace
from tradeops_assets.core import backtest, promotion
from tradeops_assets.core.env import EnvConfig
from tradeops_assets.core.training import TrainConfig
from tradeops_assets.defs.evaluation import render
from tradeops_assets.defs.evaluation.config import BacktestConfig
from tradeops_assets.defs.features.assets import MARKET_FEATURES
from tradeops_assets.defs.lineage import code_version, latest_metadata, lineage_metadata
from tradeops_assets.defs.training.assets import TRAINED_POLICY

BACKTEST_REPORT = "backtest_report"
CHAMPION_POLICY = "champion_policy"
REPORT_JSON, REPORT_HTML, GATE_JSON, LEDGER = (
    "report.json",
    "report.html",
    "gate.json",
    "ledger.parquet",
)


def registered_train_config(config: dict, seed: int, timesteps: int | None) -> TrainConfig:
    fields = {k: v for k, v in config.items() if k in TrainConfig.__dataclass_fields__}
    fields["env"] = EnvConfig(**fields["env"])
    fields["net_arch"] = tuple(fields["net_arch"])
    base = TrainConfig(**fields)
    return replace(base, seed=seed, timesteps=timesteps or base.timesteps)


@dg.asset(
    name=BACKTEST_REPORT,
    group_name="evaluation",
    deps=[TRAINED_POLICY, MARKET_FEATURES],
    code_version=code_version(backtest, promotion, render),
    required_resource_keys={"datasets", "registry", "reports", "training"},
    kinds={"mlflow", "html"},
    backfill_policy=dg.BackfillPolicy.single_run(),
    owners=["team:ml-engineering"],
)
def backtest_report(
    context: dg.AssetExecutionContext, config: BacktestConfig
) -> dg.MaterializeResult:
    """How the challenger policy would have traded out of sample, beside its baselines.

    The registered challenger trades the held-out window (after its validation window,
    never seen in training or model selection) against buy-and-hold, flat, a momentum
    rule and the current champion, under the env's execution rules: fees, slippage and
    borrow charged exactly. Walk-forward folds then retrain the same recipe for every
    seed and test each on a later window, so one lucky window cannot promote a policy.
    The promotion_gate check reads this report.
    """
    datasets: DatasetStore = context.resources.datasets
    store: ReportStore = context.resources.reports
    workspace: TrainingWorkspace = context.resources.training
    registry: PolicyRegistry = context.resources.registry
    frame, md5s = datasets.read(MARKET_FEATURES)
    folder = store.folder(context.run_id)
    challenger_version = registry.version_for(CHALLENGER)
    if challenger_version is None:
        raise dg.Failure(f"no '{CHALLENGER}' version of {REGISTERED_MODEL}: run trained_policy")
    with tempfile.TemporaryDirectory() as tmp:
        challenger = registry.fetch(challenger_version, Path(tmp) / "challenger")
        champion_version = registry.version_for(CHAMPION)
        policies = {backtest.CHALLENGER: challenger.traded}
        if champion_version is not None:
            champion = registry.fetch(champion_version, Path(tmp) / "champion")
            policies[backtest.CHAMPION] = champion.traded
    env_config = EnvConfig(**challenger.config["env"])
    stamps = frame.get_column("timestamp")
    held_out = (datetime.fromisoformat(challenger.config["validation_window"][1]), stamps.max())
    context.log.info(f"held-out backtest {held_out[0]} .. {held_out[1]} of v{challenger_version}")
    result = backtest.backtest(frame, held_out, env_config, policies, config.momentum_lookback)

    folds = backtest.walk_forward_folds(
        stamps.min(), stamps.max(), config.folds, config.first_test_fraction, config.expanding
    )
    seeds = challenger.config.get("seeds", [challenger.config["seed"]])
    recipes = [
        registered_train_config(challenger.config, seed, config.fold_timesteps) for seed in seeds
    ]
    fold_rows = backtest.walk_forward(
        frame,
        folds,
        recipes,
        workspace.run_dir(context.run.root_run_id or context.run_id, 0).parent / "walk-forward",
        config.momentum_lookback,
        report=lambda row: context.log.info(
            f"fold {row['fold']} seed {row['seed']}: Sharpe "
            + ", ".join(f"{k} {v:+.3f}" for k, v in row["sharpe"].items())
        ),
    )
    portfolio = {s: {m: result.metric(s, m) for m in backtest.METRICS} for s in result.strategies}
    summary = {
        "challenger_version": challenger_version,
        "champion_version": champion_version,
        "challenger_run_id": challenger.run_id,
        "data_version": md5s["full"],
        "held_out_window": [str(held_out[0]), str(held_out[1])],
        "code_version": context.assets_def.code_versions_by_key[context.asset_key],
        "dagster_run_id": context.run_id,
        "held_out": portfolio,
        "folds": fold_rows,
    }
    images = render.plots(result)
    (folder / REPORT_JSON).write_text(json.dumps(summary, indent=2, default=str))
    page = render.html_report(
        f"Backtest of {REGISTERED_MODEL} v{challenger_version}", summary, result, images
    )
    (folder / REPORT_HTML).write_text(page)
    result.ledger.write_parquet(folder / LEDGER)
    for name in (REPORT_JSON, REPORT_HTML):
        registry.log_artifact(challenger.run_id, folder / name, "backtest")
    for strategy, values in portfolio.items():
        registry.log_metric(challenger.run_id, f"backtest_sharpe_{strategy}", values["sharpe"])
    fold_sharpes = [r["sharpe"][backtest.CHALLENGER] for r in fold_rows]
    mine = portfolio[backtest.CHALLENGER]
    return dg.MaterializeResult(
        metadata={
            "challenger_version": challenger_version,
            "champion_version": champion_version or "none yet",
            "held_out_window": f"{held_out[0]:%Y-%m-%d} .. {held_out[1]:%Y-%m-%d}",
            "sharpe": mine["sharpe"],
            "max_drawdown": mine["max_drawdown"],
            "turnover": mine["turnover"],
            "walk_forward_sharpe_mean": statistics.fmean(fold_sharpes),
            "walk_forward_sharpe_min": min(fold_sharpes),
            "metrics": dg.MetadataValue.md(render.metrics_markdown(result)),
            "walk_forward": dg.MetadataValue.md(render.folds_markdown(fold_rows)),
            "plots": dg.MetadataValue.md(render.plots_markdown(images)),
            "report_path": dg.MetadataValue.path(str(folder / REPORT_JSON)),
            "html_report": dg.MetadataValue.path(str(folder / REPORT_HTML)),
            "report_sha256": store.digest(folder / REPORT_JSON),
            "mlflow_run_id": challenger.run_id,
            **lineage_metadata(
                config=config.model_dump(),
                upstream={MARKET_FEATURES: md5s["full"], TRAINED_POLICY: challenger_version},
            ),
        }
    )


def latest_report(context: dg.OpExecutionContext) -> Path:
    return Path(latest_metadata(context, BACKTEST_REPORT)["report_path"])


@dg.asset(
    name=CHAMPION_POLICY,
    group_name="evaluation",
    deps=[BACKTEST_REPORT],
    code_version=code_version(promotion),
    required_resource_keys={"audit", "registry", "reports"},
    kinds={"mlflow"},
    backfill_policy=dg.BackfillPolicy.single_run(),
    owners=["team:ml-engineering"],
)
def champion_policy(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
    """The policy version production trades: MLflow alias 'champion' of tradeops-policy.

    Moves only for a challenger whose promotion_gate verdict on this exact backtest
    report (same SHA-256) is 'passed'. Every move, with who or what triggered it, from
    which version, and why, is appended to the hash-chained audit log, because MLflow
    keeps no history of its aliases.
    """
    audit: AuditTrail = context.resources.audit
    store: ReportStore = context.resources.reports
    report = latest_report(context)
    gate_file = report.parent / GATE_JSON
    if not gate_file.exists():
        raise dg.Failure(f"no promotion_gate verdict for {report}: the gate must run first")
    gate = store.read_json(gate_file)
    summary = store.read_json(report)
    if gate["report_sha256"] != store.digest(report):
        raise dg.Failure(f"{report} changed after the gate judged it; refusing to promote")
    if not gate["passed"]:
        raise dg.Failure(
            f"promotion_gate refused v{summary['challenger_version']}: {gate['reason']}"
        )
    to_version = summary["challenger_version"]
    registry: PolicyRegistry = context.resources.registry
    from_version = registry.version_for(CHAMPION)
    if from_version == to_version:
        context.log.info(f"v{to_version} is already the champion")
    else:
        registry.move_alias(CHAMPION, to_version)
        audit.record(
            context,
            "alias_move",
            {
                "model": REGISTERED_MODEL,
                "alias": CHAMPION,
                "from_version": from_version,
                "to_version": to_version,
                "reason": gate["reason"],
                "report": str(report),
                "report_sha256": gate["report_sha256"],
                "held_out_sharpe": summary["held_out"][backtest.CHALLENGER]["sharpe"],
            },
        )
    moves = audit.log().history("alias_move")
    return dg.MaterializeResult(
        data_version=dg.DataVersion(f"v{to_version}"),
        metadata={
            "champion_version": to_version,
            "previous_champion": from_version or "none",
            "reason": gate["reason"],
            "alias_history": dg.MetadataValue.md(
                "| time | actor | from | to |\n|---|---|---|---|\n"
                + "\n".join(
                    f"| {m['time']} | {m['actor']} | {m['details']['from_version']} "
                    f"| {m['details']['to_version']} |"
                    for m in moves
                )
            ),
            "audit_head": audit.log().verify().head,
        },
    )
