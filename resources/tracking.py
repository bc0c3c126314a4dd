"""MLflow tracking through dagster-mlflow, wrapped thinly (docs/decisions/0004-mlflow-wrapper.md).

dagster-mlflow creates the experiment on first use with MLflow's default artifact
root, ``./mlruns`` under whatever directory the run process started in; the
wrapper creates it first, with its artifacts under TRADEOPS_HOME (or S3 in prod),
then hands over to dagster-mlflow's own ``MlFlow`` run handling. Assets see a
``TrainingRun`` and call its methods; none of them calls MLflow itself.
"""

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import dagster as dg
import mlflow
from dagster_mlflow.resources import CONFIG_SCHEMA, MlFlow

from resources.mlflow_policy import CHALLENGER, REGISTERED_MODEL, log_policy
from tradeops_assets.core.drift import PolicyReference
from tradeops_assets.core.recipe import PolicyRecipe

if TYPE_CHECKING:  # pragma: no cover - training imports torch; the CLI need not
    from tradeops_assets.core.training import SeedSweep

EXPERIMENT = "tradeops"
CURVE_POINTS = 200


def ensure_experiment(tracking_uri: str, name: str, artifact_root: str | None) -> None:
    """``artifact_root`` None: the tracking server's own (prod: proxied to S3)."""
    client = mlflow.MlflowClient(tracking_uri=tracking_uri)
    if client.get_experiment_by_name(name) is None:
        client.create_experiment(name, artifact_location=artifact_root)


class TrainingRun:
    """The MLflow run that dagster-mlflow opened for this Dagster run."""

    def __init__(self, mlf: MlFlow, tracking_uri: str) -> None:
        self._mlf = mlf
        self._client = mlflow.MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)

    @property
    def run_id(self) -> str:
        return mlflow.active_run().info.run_id

    def log_sweep(self, sweep: "SeedSweep", params: dict, tags: dict) -> None:
        """Every seed's learning curve and validation return, the run's params and tags."""
        self._mlf.log_params({**params, "registered_seed": sweep.best.seed})
        self._mlf.set_tags(tags)
        for run in sweep.runs:
            mlflow.log_metric(f"validation_return_seed_{run.seed}", run.validation_return)
            curve = run.result.episode_returns
            for step, value in enumerate(curve[:: max(len(curve) // CURVE_POINTS, 1)]):
                mlflow.log_metric(f"reward_seed_{run.seed}", value, step=step)
        mlflow.log_metrics({f"validation_return_{k}": v for k, v in sweep.spread().items()})

    def register(
        self, sweep: "SeedSweep", recipe: PolicyRecipe, reference: PolicyReference
    ) -> tuple[str, str]:
        """Logs the best seed's policy, registers it and points 'challenger' at it.

        Refuses first if its feature scaling saw any row outside the training window.
        """
        best = sweep.best
        best.result.normaliser.check_fitted_within(recipe.train_window)
        model_uri = log_policy(
            best.workdir,
            best.checkpoint,
            recipe,
            best.result.normaliser,
            recipe.train.spec.export(best.result.model),
            reference,
        )
        version = str(mlflow.register_model(model_uri, REGISTERED_MODEL).version)
        self._client.set_registered_model_alias(REGISTERED_MODEL, CHALLENGER, version)
        return model_uri, version

    def finish(self) -> None:
        """Closes the run: CLI-launched asset jobs get no job-level hook (decision 0004)."""
        mlflow.end_run()


def mlflow_resource(tracking_uri: str, artifact_root: Path) -> dg.ResourceDefinition:
    @dg.resource(config_schema=CONFIG_SCHEMA, description="MLflow run tied to the Dagster run")
    def tradeops_mlflow(init_context):
        config = init_context.resource_config
        Path(artifact_root).mkdir(parents=True, exist_ok=True)
        ensure_experiment(
            config["mlflow_tracking_uri"], config["experiment_name"], Path(artifact_root).as_uri()
        )
        mlf = MlFlow(init_context)
        yield TrainingRun(mlf, config["mlflow_tracking_uri"])
        mlf.cleanup_on_error()

    return tradeops_mlflow.configured(
        {"experiment_name": EXPERIMENT, "mlflow_tracking_uri": tracking_uri}
    )


def mlflow_server_resource(tracking_uri_env: str) -> dg.ResourceDefinition:
    """prod: the MLflow tracking server at ``$tracking_uri_env``, reached over HTTP.

    The server keeps runs and the registry in PostgreSQL and proxies artifacts to S3
    (``mlflow server --serve-artifacts``), so the pipeline holds no database or bucket
    credential for MLflow; the experiment takes the server's artifact root.
    """

    @dg.resource(config_schema=CONFIG_SCHEMA, description="MLflow run on the tracking server")
    def tradeops_mlflow(init_context):
        config = init_context.resource_config
        ensure_experiment(config["mlflow_tracking_uri"], config["experiment_name"], None)
        mlf = MlFlow(init_context)
        yield TrainingRun(mlf, config["mlflow_tracking_uri"])
        mlf.cleanup_on_error()

    return tradeops_mlflow.configured(
        {"experiment_name": EXPERIMENT, "mlflow_tracking_uri": {"env": tracking_uri_env}}
    )


class TrainingWorkspace(dg.ConfigurableResource):
    """Where training runs keep checkpoints; a retried run resumes from its own folder.

    Locally the folder outlives any retry, so checkpoints need no copy elsewhere: the
    hook is None. The prod twin (``resources.s3_stores.S3TrainingWorkspace``) keeps them
    on S3, because a reclaimed Spot task takes its folder with it.
    """

    root: str

    def run_dir(self, run_id: str, seed: int) -> Path:
        return Path(self.root) / run_id / f"seed-{seed}"

    def walk_forward_dir(self, run_id: str) -> Path:
        return Path(self.root) / run_id / "walk-forward"

    def checkpoint_hook(self, run_id: str) -> Callable[[Path], None] | None:
        """What ``core.training.train`` calls with each checkpoint of ``run_id``'s folders."""
        return None
