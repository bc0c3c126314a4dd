from dataclasses import replace

import dagster as dg

from resources.audit import actor_of
from resources.datasets import DatasetStore
from resources.market_data import MarketDataResource
from resources.mlflow_policy import REGISTERED_MODEL, PolicyRegistry
from resources.tracking import TrainingRun, TrainingWorkspace
from tradeops_assets.core import drift, training, windows
from tradeops_assets.core.backtest import TradedPolicy
from tradeops_assets.core.recipe import PolicyRecipe, symbols_in
from tradeops_assets.defs.lineage import git_commit, lineage_metadata
from tradeops_assets.defs.training.config import TrainingConfig
from tradeops_assets.keys import MARKET_FEATURES, TRAINED_POLICY, TRAINING_GROUP


@dg.asset(
    name=TRAINED_POLICY,
    group_name=TRAINING_GROUP,
    deps=[MARKET_FEATURES],
    # dagster-mlflow's resource is a legacy one, so all resources come by key here.
    required_resource_keys={"mlflow", "datasets", "training", "market_data", "registry"},
    retry_policy=dg.RetryPolicy(max_retries=2),
    backfill_policy=dg.BackfillPolicy.single_run(),
    kinds={"pytorch", "mlflow"},
    owners=["team:ml-engineering"],
)
def trained_policy(
    context: dg.AssetExecutionContext, config: TrainingConfig
) -> dg.MaterializeResult:
    """A deep-RL trading policy learned on the training window of market_features.

    Registered in the MLflow Model Registry as a new version of 'tradeops-policy' with
    alias 'challenger': it competes with the champion only after the backtest gate.
    The registered recipe names the exact first and last bar of its training,
    validation and held-out windows. Reproducible: the same feature data version,
    config and seed give the same weights hash. With several seeds, every seed is
    trained and the spread of their validation returns is reported; the best
    validation seed is registered. A retried run resumes each seed from its last
    checkpoint.
    """
    datasets: DatasetStore = context.resources.datasets
    workspace: TrainingWorkspace = context.resources.training
    market_data: MarketDataResource = context.resources.market_data
    run: TrainingRun = context.resources.mlflow
    frame, md5s = datasets.read(MARKET_FEATURES)
    data_version = md5s["full"]
    train_window, validation, held_out = config.windows(windows.bar_times(frame))
    base = config.train_config(market_data.bars_per_year(frame))
    context.log.info(
        f"train {train_window}, validation {validation}, held out {held_out}; "
        f"{base.env.bars_per_year:.1f} bars a year"
    )
    # Re-executions of a killed run share its root run id, so they resume its checkpoints.
    root = context.run.root_run_id or context.run_id
    sweep = training.sweep_seeds(
        frame,
        base,
        tuple(config.seeds),
        train_window,
        validation,
        lambda seed: workspace.run_dir(root, seed),
        context.log.info,
        workspace.checkpoint_hook(root),
    )
    best = sweep.best
    registered = PolicyRecipe(
        train=replace(base, seed=best.seed),
        seeds=tuple(config.seeds),
        train_window=train_window,
        validation_window=validation,
        held_out=held_out,
        data_version=data_version,
        symbols=symbols_in(frame, train_window),
    )
    run.log_sweep(
        sweep,
        params=config.model_dump(mode="json"),
        tags={
            "data_version": data_version,
            "code_version": context.assets_def.code_versions_by_key[context.asset_key],
            "git_commit": git_commit(),
            "seed": best.seed,
            "weights_hash": best.result.weights_hash,
        },
    )
    traded = TradedPolicy(registered.train.spec.export(best.result.model), best.result.normaliser)
    reference = drift.reference_for(frame, registered, traded)
    model_uri, version = run.register(sweep, registered, reference)
    run_id = run.run_id
    run.finish()
    registry: PolicyRegistry = context.resources.registry
    actor = actor_of(context)
    recipe = (
        f"{base.algorithm.value} {best.result.timesteps:,} steps, seed {best.seed} of "
        f"{list(config.seeds)}, trained {train_window}"
    )
    registry.describe_run(
        run_id,
        name=f"trained_policy v{version} ({actor})",
        description=(
            f"Dagster asset trained_policy, run {context.run_id}, started by {actor}: {recipe}; "
            f"features {data_version}. Registered as {REGISTERED_MODEL} v{version} "
            "(alias challenger); the backtest and the gate's record land in backtest/."
        ),
        dagster_run_id=context.run_id,
    )
    registry.describe_version(
        version,
        f"Challenger from Dagster run {context.run_id} ({actor}): {recipe}.",
        {"data_version": data_version, "recipe": recipe, "gate_verdict": "not judged yet"},
    )
    return dg.MaterializeResult(
        data_version=dg.DataVersion(best.result.weights_hash[:32]),
        metadata={
            "mlflow_run_id": run_id,
            "mlflow_run": registry.run_link(run_id),
            "mlflow_model_version": registry.version_link(version),
            "mlflow_model_uri": model_uri,
            "registered_model": f"{REGISTERED_MODEL} v{version} (alias challenger)",
            "weights_hash": best.result.weights_hash,
            "timesteps": best.result.timesteps,
            "resumed_from_step": best.result.resumed_from,
            "data_version": data_version,
            "validation_return": best.validation_return,
            "seed_spread": dg.MetadataValue.json(sweep.spread()),
            "validation_by_seed": dg.MetadataValue.json(
                {str(r.seed): r.validation_return for r in sweep.runs}
            ),
            "train_window": str(train_window),
            "scaler_fitted_on": str(best.result.normaliser.fitted_on),
            "validation_window": str(validation),
            "held_out_window": str(held_out),
            "bars_per_year": base.env.bars_per_year,
            "expected_per_decision": dg.MetadataValue.json(reference.expected.to_dict()),
            "recipe": dg.MetadataValue.json(registered.to_dict()),
            **lineage_metadata(
                config=config.model_dump(mode="json"),
                upstream={MARKET_FEATURES: data_version},
            ),
        },
    )
