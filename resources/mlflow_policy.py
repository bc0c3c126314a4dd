"""The MLflow Model Registry as the pipeline uses it: the only code that calls MLflow.

A registered version is a pyfunc model (servable by ``mlflow models serve``) whose
artifacts hold the SB3 checkpoint, the numpy export the backtest and the bento
trade, the feature scaling and the ``PolicyRecipe``. The recipe is written here
once and read back here once, into a typed ``RegisteredPolicy``.
"""

import json
import tempfile
from pathlib import Path

import dagster as dg
import mlflow
import numpy as np
from mlflow.exceptions import MlflowException

from tradeops_assets.core.drift import PolicyReference
from tradeops_assets.core.errors import ConfigError
from tradeops_assets.core.market import DISCRETE_POSITIONS, Normaliser
from tradeops_assets.core.policy import NumpyPolicy
from tradeops_assets.core.recipe import RECIPE_FILE, PolicyRecipe, RegisteredPolicy

REGISTERED_MODEL = "tradeops-policy"
CHALLENGER = "challenger"
CHAMPION = "champion"
NORMALISER_FILE = "normaliser.json"
REFERENCE_FILE = "reference.json"
NUMPY_POLICY_FILE = "policy.npz"
CHECKPOINT_ARTIFACT = "policy"
AUDIT_HEAD_TAG = "tradeops.audit_head"


class PolicyModel(mlflow.pyfunc.PythonModel):
    """Maps observations (rows of window x features + position) to target positions."""

    def load_context(self, context) -> None:
        recipe = PolicyRecipe.from_json(Path(context.artifacts["recipe"]).read_text())
        self.discrete = recipe.env.discrete
        self.model = recipe.train.spec.sb3_class().load(
            context.artifacts[CHECKPOINT_ARTIFACT], device="cpu"
        )

    def predict(self, context, model_input, params=None):
        obs = np.asarray(model_input, dtype=np.float32)
        action, _ = self.model.predict(obs, deterministic=True)
        if self.discrete:
            return DISCRETE_POSITIONS[np.asarray(action, dtype=np.int64)]
        return np.clip(np.asarray(action, dtype=np.float64).reshape(len(obs)), -1.0, 1.0)


def log_policy(
    workdir: Path,
    checkpoint: Path,
    recipe: PolicyRecipe,
    normaliser: Normaliser,
    exported: NumpyPolicy,
    reference: PolicyReference,
) -> str:
    """Logs the policy as a pyfunc model in the active MLflow run; returns its model URI."""
    (workdir / RECIPE_FILE).write_text(recipe.to_json())
    (workdir / NORMALISER_FILE).write_text(json.dumps(normaliser.to_dict()))
    (workdir / REFERENCE_FILE).write_text(json.dumps(reference.to_dict()))
    exported.save(workdir / NUMPY_POLICY_FILE)
    info = mlflow.pyfunc.log_model(
        name="policy",
        python_model=PolicyModel(),
        artifacts={
            CHECKPOINT_ARTIFACT: str(checkpoint),
            "recipe": str(workdir / RECIPE_FILE),
            "normaliser": str(workdir / NORMALISER_FILE),
            "numpy_policy": str(workdir / NUMPY_POLICY_FILE),
            "reference": str(workdir / REFERENCE_FILE),
        },
        pip_requirements=["stable-baselines3", "torch", "numpy"],
    )
    return info.model_uri


class PolicyRegistry(dg.ConfigurableResource):
    """The registry's versions and aliases, and the runs that made them."""

    tracking_uri: str
    ui_url: str = ""
    """The MLflow UI people open; links in the Dagster UI point into it."""
    dagster_ui_url: str = ""
    """The Dagster UI; MLflow runs carry a link back to the Dagster run that made them."""

    def describe_run(self, run_id: str, name: str, description: str, dagster_run_id: str) -> None:
        """A name and a description people can read in the MLflow UI, and the way back."""
        client = self.client()
        client.set_tag(run_id, "mlflow.runName", name)
        client.set_tag(run_id, "mlflow.note.content", description)
        client.set_tag(run_id, "dagster_run_id", dagster_run_id)
        client.set_tag(run_id, "dagster_run_url", f"{self.dagster_ui_url}/runs/{dagster_run_id}")

    def run_link(self, run_id: str) -> dg.MetadataValue:
        """The MLflow run's page, as a link the Dagster UI shows."""
        run = self.client().get_run(run_id)
        return dg.MetadataValue.url(
            f"{self.ui_url}/#/experiments/{run.info.experiment_id}/runs/{run_id}"
        )

    def version_link(self, version: str) -> dg.MetadataValue:
        return dg.MetadataValue.url(f"{self.ui_url}/#/models/{REGISTERED_MODEL}/versions/{version}")

    def describe_version(self, version: str, description: str, tags: dict[str, str]) -> None:
        """What the MLflow UI shows on the model version: why it exists and what it is."""
        client = self.client()
        client.update_model_version(REGISTERED_MODEL, version, description=description)
        for key, value in tags.items():
            client.set_model_version_tag(REGISTERED_MODEL, version, key, str(value))

    def client(self) -> mlflow.MlflowClient:
        return mlflow.MlflowClient(tracking_uri=self.tracking_uri, registry_uri=self.tracking_uri)

    def version_for(self, alias: str) -> str | None:
        try:
            return str(self.client().get_model_version_by_alias(REGISTERED_MODEL, alias).version)
        except MlflowException:
            return None

    def run_tag(self, run_id: str, key: str) -> str | None:
        return self.client().get_run(run_id).data.tags.get(key)

    def require(self, version: str) -> None:
        """Refuses, naming it, a version the registry does not hold."""
        try:
            self.client().get_model_version(REGISTERED_MODEL, version)
        except MlflowException:
            raise ConfigError(f"{REGISTERED_MODEL} has no version {version!r}") from None

    def fetch(self, version: str) -> RegisteredPolicy:
        """A registered version's recipe, scaling and numpy policy, loaded into memory."""
        client = self.client()
        meta = client.get_model_version(REGISTERED_MODEL, version)
        # The resolved location, not ``models:/``: that scheme reads the process-wide
        # registry, which a monitoring run never sets.
        source = client.get_model_version_download_uri(REGISTERED_MODEL, version)
        with tempfile.TemporaryDirectory() as tmp:
            root = Path(
                mlflow.artifacts.download_artifacts(
                    artifact_uri=source, dst_path=tmp, tracking_uri=self.tracking_uri
                )
            )
            files = root / "artifacts"
            reference = files / REFERENCE_FILE
            return RegisteredPolicy(
                version=str(version),
                run_id=meta.run_id,
                recipe=PolicyRecipe.from_json((files / RECIPE_FILE).read_text()),
                normaliser=Normaliser.from_dict(json.loads((files / NORMALISER_FILE).read_text())),
                policy=NumpyPolicy.load(files / NUMPY_POLICY_FILE),
                reference=PolicyReference.from_dict(json.loads(reference.read_text()))
                if reference.exists()
                else None,
            )

    def tag_audit_head(self, seq: int, digest: str) -> bool:
        """Anchors the audit log's head on the registered model; False before there is one."""
        try:
            self.client().set_registered_model_tag(
                REGISTERED_MODEL, AUDIT_HEAD_TAG, f"{seq}:{digest}"
            )
        except MlflowException:
            return False
        return True

    def audit_head_tag(self) -> tuple[int, str] | None:
        try:
            tags = self.client().get_registered_model(REGISTERED_MODEL).tags
        except MlflowException:
            return None
        seq, _, digest = tags.get(AUDIT_HEAD_TAG, "").partition(":")
        return (int(seq), digest) if seq.isdigit() else None

    def move_alias(self, alias: str, version: str) -> None:
        self.client().set_registered_model_alias(REGISTERED_MODEL, alias, version)

    def log_gate(self, run_id: str, gate_file: Path, version: str, verdict: str) -> None:
        """The gate's record beside the backtest in the run, its verdict on the version."""
        self.client().log_artifact(run_id, str(gate_file), "backtest")
        self.client().set_model_version_tag(REGISTERED_MODEL, version, "gate_verdict", verdict)

    def log_report(self, run_id: str, files: list[Path], metrics: dict[str, float]) -> None:
        """Keeps a backtest's files and headline figures in the run that trained the policy."""
        client = self.client()
        for path in files:
            client.log_artifact(run_id, str(path), "backtest")
        for key, value in metrics.items():
            client.log_metric(run_id, key, value)
