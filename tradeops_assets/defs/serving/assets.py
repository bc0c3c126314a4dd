import tempfile
from pathlib import Path

import dagster as dg

from resources.audit import AuditTrail
from resources.mlflow_policy import CHAMPION, PolicyRegistry
from resources.serving import BentoBuilder, DeployError, LocalServing
from tradeops_assets.core import features, policy, serving
from tradeops_assets.core.env import EnvConfig
from tradeops_assets.defs.evaluation.assets import BACKTEST_REPORT, CHAMPION_POLICY
from tradeops_assets.defs.lineage import (
    code_version,
    git_commit,
    latest_metadata,
    lineage_metadata,
)

POLICY_BENTO = "policy_bento"
POLICY_DEPLOYMENT = "policy_deployment"
BACKTEST_SUMMARY = ("sharpe", "max_drawdown", "turnover", "held_out_window")


@dg.asset(
    name=POLICY_BENTO,
    group_name="serving",
    deps=[CHAMPION_POLICY],
    code_version=code_version(serving, features, policy),
    required_resource_keys={"bentos", "registry"},
    kinds={"bentoml"},
    backfill_policy=dg.BackfillPolicy.single_run(),
    owners=["team:mlops"],
)
def policy_bento(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
    """The champion policy packaged as a BentoML bento, signed by the pipeline's key.

    The bento holds the policy's numpy weights, its feature scaling and env config,
    the service code and its lineage (model version, data version, code version,
    backtest summary). Its bundle carries a SHA-256 digest and an Ed25519 signature:
    the service refuses to start, and policy_deployment refuses to deploy, if they
    do not verify against the trusted public key.
    """
    builder: BentoBuilder = context.resources.bentos
    registry: PolicyRegistry = context.resources.registry
    version = registry.version_for(CHAMPION)
    if version is None:
        raise dg.Failure("no champion policy to package: champion_policy has not promoted one")
    report = latest_metadata(context, BACKTEST_REPORT)
    with tempfile.TemporaryDirectory() as tmp:
        champion = registry.fetch(version, Path(tmp) / "policy")
        lineage = {
            "model_version": version,
            "mlflow_run_id": champion.run_id,
            "data_version": champion.config.get("data_version"),
            "code_version": context.assets_def.code_versions_by_key[context.asset_key],
            "git_commit": git_commit(),
            "backtest": {k: report.get(k) for k in BACKTEST_SUMMARY},
        }
        bundle = serving.write_bundle(
            Path(tmp) / "bundle",
            champion.policy,
            champion.normaliser,
            EnvConfig(**champion.config["env"]),
            lineage,
        )
        labels = {
            "policy_version": version,
            "data_version": str(lineage["data_version"]),
            "code_version": lineage["code_version"],
            "git_commit": lineage["git_commit"],
        }
        built = builder.build(bundle, labels)
    context.log.info(f"built {built['bento_tag']} from tradeops-policy v{version}")
    return dg.MaterializeResult(
        data_version=dg.DataVersion(built["digest"][:32]),
        metadata={
            **built,
            "policy_version": version,
            "lineage": dg.MetadataValue.json(lineage),
            **lineage_metadata(config={}, upstream={CHAMPION_POLICY: f"v{version}"}),
        },
    )


@dg.asset(
    name=POLICY_DEPLOYMENT,
    group_name="serving",
    deps=[POLICY_BENTO],
    code_version=code_version(serving),
    required_resource_keys={"serving", "audit"},
    kinds={"bentoml"},
    backfill_policy=dg.BackfillPolicy.single_run(),
    owners=["team:mlops"],
)
def policy_deployment(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
    """The bento traders are calling on the local serving port, since when and why.

    A deploy starts the new bento beside the old one, waits for its health check,
    switches the port's front door to it, lets requests in flight on the old bento
    finish, then stops the old one: no request is dropped. A bento that is unsigned
    or fails its health check is not switched to; the old one keeps serving.
    """
    target: LocalServing = context.resources.serving
    audit: AuditTrail = context.resources.audit
    built = latest_metadata(context, POLICY_BENTO)
    why = f"champion tradeops-policy v{built['policy_version']} packaged as {built['bento_tag']}"
    current = target.current()
    if current and current["bento_tag"] == built["bento_tag"]:
        context.log.info(f"{built['bento_tag']} is deployed already; swapping in a fresh process")
    try:
        record = target.deploy(built["bento_tag"], why, {"policy_version": built["policy_version"]})
    except DeployError as exc:
        audit.record(
            context,
            "deploy_refused",
            {"bento_tag": built["bento_tag"], "reason": str(exc)[:2000]},
        )
        raise dg.Failure(str(exc)) from exc
    audit.record(
        context,
        "deploy",
        {
            k: record[k]
            for k in ("bento_tag", "previous_bento_tag", "url", "since", "why", "signature_digest")
        },
    )
    return dg.MaterializeResult(
        data_version=dg.DataVersion(record["bento_tag"]),
        metadata={
            "bento_tag": record["bento_tag"],
            "url": record["url"],
            "since": record["since"],
            "why": record["why"],
            "previous_bento_tag": record["previous_bento_tag"] or "none",
            "bento_pid": record["bento_pid"],
            "front_door_pid": record["front_door_pid"],
            "signing_key_id": record["signing_key_id"],
        },
    )
