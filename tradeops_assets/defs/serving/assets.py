import dagster as dg

from resources.audit import AuditTrail, who
from resources.mlflow_policy import CHAMPION, PolicyRegistry
from resources.notifier import BYPASS, DEPLOYED, Notifier
from resources.reports import ReportStore
from resources.serving import BentoBuilder, DeployError, ServingTarget
from tradeops_assets.core.errors import GateBypassError
from tradeops_assets.core.governance import Authority
from tradeops_assets.defs.lineage import (
    git_commit,
    latest_metadata,
    latest_report,
    lineage_metadata,
)
from tradeops_assets.defs.retries import IO_RETRY
from tradeops_assets.keys import CHAMPION_POLICY, POLICY_BENTO, POLICY_DEPLOYMENT, SERVING_GROUP


def authorised(context: dg.AssetExecutionContext, version: str | None, stage: str) -> Authority:
    """The audit trail's authority for ``version``; without it, a recorded, alerted refusal.

    The live alias is only a pointer: a version moved there by hand in the MLflow UI has
    no gate verdict behind it and is refused here, at packaging and again at deployment.
    """
    audit: AuditTrail = context.resources.audit
    try:
        return audit.authority(version)
    except GateBypassError as exc:
        audit.record(context, f"{stage}_refused", {"policy_version": version, "reason": str(exc)})
        notifier: Notifier = context.resources.notifier
        notifier.alert(BYPASS, f"{stage} of tradeops-policy v{version} refused", {"why": str(exc)})
        raise dg.Failure(
            f"refusing to {stage} v{version}: {exc}. To put it live anyway, a person records "
            f"an override: tradeops override --version {version} --reason '...'",
            allow_retries=False,  # a refusal is a verdict, not a flaky I/O call
        ) from exc


@dg.asset(
    name=POLICY_BENTO,
    group_name=SERVING_GROUP,
    retry_policy=IO_RETRY,
    deps=[CHAMPION_POLICY],
    required_resource_keys={"bentos", "registry", "reports", "audit", "notifier"},
    kinds={"bentoml"},
    backfill_policy=dg.BackfillPolicy.single_run(),
    owners=["team:mlops"],
)
def policy_bento(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
    """The champion policy packaged as a BentoML bento, signed by the pipeline's key.

    The bento holds the policy's numpy weights, its feature scaling and training
    recipe, the service code and its lineage (model version, data version, code
    version, backtest summary). Its bundle carries a SHA-256 digest and an Ed25519
    signature: the service refuses to start, and policy_deployment refuses to deploy,
    if they do not verify against the trusted public key.
    """
    builder: BentoBuilder = context.resources.bentos
    registry: PolicyRegistry = context.resources.registry
    reports: ReportStore = context.resources.reports
    version = registry.version_for(CHAMPION)
    if version is None:
        raise dg.Failure("no champion policy to package: champion_policy has not promoted one")
    authority = authorised(context, version, "package")
    champion = registry.fetch(version)
    report, _ = reports.read(latest_report(context))
    lineage = {
        "model_version": version,
        "mlflow_run_id": champion.run_id,
        "data_version": champion.recipe.data_version,
        "code_version": context.assets_def.code_versions_by_key[context.asset_key],
        "git_commit": git_commit(),
        "backtest": {
            "report_version": report.challenger_version,
            "held_out_window": str(report.held_out),
            **{k: report.challenger[k] for k in ("sharpe", "max_drawdown", "turnover")},
        },
        "authority": authority.to_dict(),
    }
    labels = {
        "policy_version": version,
        "data_version": champion.recipe.data_version,
        "code_version": lineage["code_version"],
        "git_commit": lineage["git_commit"],
    }
    built = builder.build(champion, lineage, labels)
    context.log.info(f"built {built['bento_tag']} from tradeops-policy v{version}")
    return dg.MaterializeResult(
        data_version=dg.DataVersion(built["digest"][:32]),
        metadata={
            **built,
            "policy_version": version,
            "mlflow_model_version": registry.version_link(version),
            "mlflow_run": registry.run_link(champion.run_id),
            "authority": authority.describe(),
            **who(context),
            "lineage": dg.MetadataValue.json(lineage),
            **lineage_metadata(config={}, upstream={CHAMPION_POLICY: f"v{version}"}),
        },
    )


@dg.asset(
    name=POLICY_DEPLOYMENT,
    group_name=SERVING_GROUP,
    deps=[POLICY_BENTO],
    required_resource_keys={"serving", "audit", "notifier", "registry"},
    kinds={"bentoml"},
    backfill_policy=dg.BackfillPolicy.single_run(),
    owners=["team:mlops"],
)
def policy_deployment(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
    """The bento traders are calling, since when and why.

    A deploy starts the new bento beside the old one, waits for its health check,
    switches traffic to it, lets requests in flight on the old bento finish, then
    stops the old one: no request is dropped. A bento that is unsigned or fails its
    health check is not switched to; the old one keeps serving. The intent to deploy
    is in the audit log before anything starts.
    """
    target: ServingTarget = context.resources.serving
    audit: AuditTrail = context.resources.audit
    built = latest_metadata(context, POLICY_BENTO)
    tag = built["bento_tag"]
    registry: PolicyRegistry = context.resources.registry
    live = registry.version_for(CHAMPION)
    authority = authorised(context, live, "deploy")
    if str(built["policy_version"]) != authority.version:
        stale = f"the latest bento {tag} holds v{built['policy_version']}, the champion is v{live}"
        audit.record(context, "deploy_refused", {"bento_tag": tag, "reason": stale})
        raise dg.Failure(f"refusing to deploy: {stale}; materialise policy_bento first")
    why = f"champion tradeops-policy v{built['policy_version']} packaged as {tag}"
    if target.is_serving(tag):
        context.log.info(f"{tag} is deployed already; swapping in a fresh process")
    previous = (target.current() or {}).get("bento_tag")
    audit.record(
        context,
        "deploy_requested",
        {
            "bento_tag": tag,
            "previous_bento_tag": previous,
            "why": why,
            "authority": authority.to_dict(),
        },
    )
    try:
        record = target.deploy(tag, why, {"policy_version": built["policy_version"]})
    except DeployError as exc:
        audit.record(context, "deploy_refused", {"bento_tag": tag, "reason": str(exc)[:2000]})
        raise dg.Failure(str(exc)) from exc
    audit.record(
        context,
        "deploy",
        {
            k: record[k]
            for k in ("bento_tag", "previous_bento_tag", "url", "since", "why", "signature_digest")
        },
    )
    notifier: Notifier = context.resources.notifier
    notifier.alert(
        DEPLOYED,
        f"{tag} serving on {record['url']}",
        {"why": why, "previous_bento_tag": record["previous_bento_tag"]},
    )
    return dg.MaterializeResult(
        data_version=dg.DataVersion(record["bento_tag"]),
        metadata={
            "bento_tag": record["bento_tag"],
            "url": record["url"],
            "since": record["since"],
            "why": record["why"],
            "previous_bento_tag": record["previous_bento_tag"] or "first deployment",
            "bento_pid": record["bento_pid"],
            "front_door_pid": record["front_door_pid"],
            "signing_key_id": record["signing_key_id"],
            "policy_version": str(built["policy_version"]),
            "mlflow_model_version": registry.version_link(authority.version),
            "authority": authority.describe(),
            **who(context),
            **lineage_metadata(config={}, upstream={POLICY_BENTO: built["bento_tag"]}),
        },
    )
