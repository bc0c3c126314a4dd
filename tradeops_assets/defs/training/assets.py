import json
import statistics

import dagster as dg
import mlflow

from resources.datasets import DatasetStore
from resources.mlflow_policy import REGISTERED_MODEL, log_and_register
from resources.tracking import TrainingWorkspace
from tradeops_assets.core import env, policy, training
from tradeops_assets.core.policy import NumpyPolicy
from tradeops_assets.defs.features.assets import MARKET_FEATURES
from tradeops_assets.defs.lineage import code_version, git_commit, lineage_metadata
from tradeops_assets.defs.training.config import TrainingConfig

TRAINED_POLICY = "trained_policy"


@dg.asset(
    name=TRAINED_POLICY,
    group_name="training",
    deps=[MARKET_FEATURES],
    code_version=code_version(env, policy, training),
    # dagster-mlflow's resource is a legacy one, so all resources come by key here.
    required_resource_keys={"mlflow", "datasets", "training"},
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
    Reproducible: the same feature data version, config and seed give the same
    weights hash. With several seeds, every seed is trained and the spread of their
    validation returns is reported; the best validation seed is registered.
    A retried run resumes each seed from its last checkpoint.
    """
    datasets: DatasetStore = context.resources.datasets
    workspace: TrainingWorkspace = context.resources.training
    frame, md5s = datasets.read(MARKET_FEATURES)
    data_version = md5s["full"]
    stamps = frame.get_column("timestamp")
    span, validation = config.windows(stamps.min(), stamps.max())
    context.log.info(f"train {span[0]} .. {span[1]}, validation .. {validation[1]}")

    def report(steps: int, rate: float, eta: float) -> None:
        context.log.info(f"training: {steps} steps, {rate:,.0f} steps/s, ETA {eta:,.0f} s")

    runs = []
    for seed in config.seeds:
        train_config = config.train_config(seed)
        # Re-executions of a killed run share its root run id, so they resume its checkpoints.
        workdir = workspace.run_dir(context.run.root_run_id or context.run_id, seed)
        result = training.train(frame, train_config, span, workdir, report)
        score = training.evaluate(result.model, frame, result.normaliser, train_config, validation)
        context.log.info(
            f"seed {seed}: weights {result.weights_hash[:12]}, validation {score:+.4f}"
        )
        runs.append((score, seed, result, workdir, train_config))

    scores = [r[0] for r in runs]
    best_score, best_seed, best, workdir, best_config = max(runs, key=lambda r: r[0])
    tracker = context.resources.mlflow
    tracker.log_params({**config.model_dump(), "registered_seed": best_seed})
    tracker.set_tags(
        {
            "data_version": data_version,
            "code_version": context.assets_def.code_versions_by_key[context.asset_key],
            "git_commit": git_commit(),
            "seed": best_seed,
            "weights_hash": best.weights_hash,
        }
    )
    for score, seed, result, _, _ in runs:
        mlflow.log_metric(f"validation_return_seed_{seed}", score)
        for step, value in enumerate(
            result.episode_returns[:: max(len(result.episode_returns) // 200, 1)]
        ):
            mlflow.log_metric(f"reward_seed_{seed}", value, step=step)
    spread = {
        "mean": statistics.fmean(scores),
        "min": min(scores),
        "max": max(scores),
        "stdev": statistics.pstdev(scores),
    }
    mlflow.log_metrics({f"validation_return_{k}": v for k, v in spread.items()})
    registered_config = {
        **best_config.as_dict(),
        "data_version": data_version,
        "seeds": list(config.seeds),
        "train_window": [span[0].isoformat(), span[1].isoformat()],
        "validation_window": [validation[0].isoformat(), validation[1].isoformat()],
    }
    model_uri, version = log_and_register(
        workdir, registered_config, best.normaliser.to_dict(), NumpyPolicy.from_sb3(best.model)
    )
    run_id = mlflow.active_run().info.run_id
    mlflow.end_run()  # no job-level hook on asset jobs launched from the CLI; see decision 0004
    return dg.MaterializeResult(
        data_version=dg.DataVersion(best.weights_hash[:32]),
        metadata={
            "mlflow_run_id": run_id,
            "mlflow_model_uri": model_uri,
            "registered_model": f"{REGISTERED_MODEL} v{version} (alias challenger)",
            "weights_hash": best.weights_hash,
            "timesteps": best.timesteps,
            "resumed_from_step": best.resumed_from,
            "data_version": data_version,
            "validation_return": best_score,
            "seed_spread": dg.MetadataValue.json(spread),
            "validation_by_seed": dg.MetadataValue.json({str(r[1]): r[0] for r in runs}),
            **lineage_metadata(
                config=json.loads(config.model_dump_json()),
                upstream={MARKET_FEATURES: data_version},
            ),
        },
    )
