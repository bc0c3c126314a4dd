"""MLflow tracking through dagster-mlflow, wrapped thinly (docs/decisions/0004-mlflow-wrapper.md).

dagster-mlflow creates the experiment on first use with MLflow's default artifact
root, ``./mlruns`` under whatever directory the run process started in; the
wrapper creates it first, with its artifacts under TRADEOPS_HOME (or S3 in prod),
then hands over to dagster-mlflow's own ``MlFlow`` run handling.
"""

from pathlib import Path

import dagster as dg
import mlflow
from dagster_mlflow.resources import CONFIG_SCHEMA, MlFlow

EXPERIMENT = "tradeops"


def ensure_experiment(tracking_uri: str, name: str, artifact_root: str) -> None:
    client = mlflow.MlflowClient(tracking_uri=tracking_uri)
    if client.get_experiment_by_name(name) is None:
        client.create_experiment(name, artifact_location=artifact_root)


def mlflow_resource(tracking_uri: str, artifact_root: Path) -> dg.ResourceDefinition:
    @dg.resource(config_schema=CONFIG_SCHEMA, description="MLflow run tied to the Dagster run")
    def tradeops_mlflow(init_context):
        config = init_context.resource_config
        Path(artifact_root).mkdir(parents=True, exist_ok=True)
        ensure_experiment(
            config["mlflow_tracking_uri"], config["experiment_name"], Path(artifact_root).as_uri()
        )
        mlf = MlFlow(init_context)
        yield mlf
        mlf.cleanup_on_error()

    return tradeops_mlflow.configured(
        {"experiment_name": EXPERIMENT, "mlflow_tracking_uri": tracking_uri}
    )


class TrainingWorkspace(dg.ConfigurableResource):
    """Where training runs keep checkpoints; a retried run resumes from its own folder."""

    root: str

    def run_dir(self, run_id: str, seed: int) -> Path:
        return Path(self.root) / run_id / f"seed-{seed}"
