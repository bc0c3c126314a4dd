"""The trained policy as an MLflow pyfunc model, so the registry holds a servable version.

MLflow 3 registers only logged models, not bare artifact folders. The pyfunc
wraps the SB3 policy, the feature normaliser fitted on the training window and
the env config: a model version is everything needed to act.
"""

import json
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import mlflow
import numpy as np
from mlflow.exceptions import MlflowException

from tradeops_assets.core.backtest import TradedPolicy
from tradeops_assets.core.env import Normaliser
from tradeops_assets.core.policy import NumpyPolicy

REGISTERED_MODEL = "tradeops-policy"
CHALLENGER = "challenger"
CHAMPION = "champion"


class PolicyModel(mlflow.pyfunc.PythonModel):
    """Maps observations (rows of window x features + position, PnL) to target positions."""

    def load_context(self, context) -> None:
        from tradeops_assets.core.training import ALGORITHMS

        meta = json.loads(Path(context.artifacts["config"]).read_text())
        self.discrete = meta["env"]["discrete"]
        self.model = ALGORITHMS[meta["algorithm"]].load(context.artifacts["policy"], device="cpu")

    def predict(self, context, model_input, params=None):
        obs = np.asarray(model_input, dtype=np.float32)
        action, _ = self.model.predict(obs, deterministic=True)
        if self.discrete:
            from tradeops_assets.core.env import DISCRETE_POSITIONS

            return DISCRETE_POSITIONS[np.asarray(action, dtype=np.int64)]
        return np.clip(np.asarray(action, dtype=np.float64).reshape(len(obs)), -1.0, 1.0)


def log_and_register(
    workdir: Path, config: dict, normaliser: dict, exported: NumpyPolicy
) -> tuple[str, str]:
    """Logs the policy in the active run, registers it and points 'challenger' at it."""
    (workdir / "config.json").write_text(json.dumps(config, indent=2, default=str))
    (workdir / "normaliser.json").write_text(json.dumps(normaliser))
    exported.save(workdir / "policy.npz")
    info = mlflow.pyfunc.log_model(
        name="policy",
        python_model=PolicyModel(),
        artifacts={
            "policy": str(workdir / "checkpoint.zip"),
            "config": str(workdir / "config.json"),
            "normaliser": str(workdir / "normaliser.json"),
            "numpy_policy": str(workdir / "policy.npz"),
        },
        pip_requirements=["stable-baselines3", "torch", "numpy"],
    )
    version = mlflow.register_model(info.model_uri, REGISTERED_MODEL)
    mlflow.MlflowClient().set_registered_model_alias(REGISTERED_MODEL, CHALLENGER, version.version)
    return info.model_uri, str(version.version)


@dataclass(frozen=True)
class RegisteredPolicy:
    """One model version as the evaluation and serving stages need it, without torch."""

    version: str
    run_id: str
    config: dict
    normaliser: Normaliser
    policy: NumpyPolicy
    files: Path

    @property
    def traded(self) -> TradedPolicy:
        return TradedPolicy(self.policy, self.normaliser)


class PolicyRegistry(dg.ConfigurableResource):
    """The MLflow Model Registry as the evaluation and serving stages use it."""

    tracking_uri: str

    def client(self) -> mlflow.MlflowClient:
        return mlflow.MlflowClient(tracking_uri=self.tracking_uri, registry_uri=self.tracking_uri)

    def version_for(self, alias: str) -> str | None:
        try:
            return str(self.client().get_model_version_by_alias(REGISTERED_MODEL, alias).version)
        except MlflowException:
            return None

    def fetch(self, version: str, dst: Path) -> RegisteredPolicy:
        """Downloads a registered version's artifacts and loads its numpy policy."""
        meta = self.client().get_model_version(REGISTERED_MODEL, version)
        root = Path(
            mlflow.artifacts.download_artifacts(
                f"models:/{REGISTERED_MODEL}/{version}",
                dst_path=str(dst),
                tracking_uri=self.tracking_uri,
                registry_uri=self.tracking_uri,
            )
        )
        files = root / "artifacts"
        return RegisteredPolicy(
            version=str(version),
            run_id=meta.run_id,
            config=json.loads((files / "config.json").read_text()),
            normaliser=Normaliser.from_dict(json.loads((files / "normaliser.json").read_text())),
            policy=NumpyPolicy.load(files / "policy.npz"),
            files=files,
        )

    def move_alias(self, alias: str, version: str) -> None:
        self.client().set_registered_model_alias(REGISTERED_MODEL, alias, version)

    def log_artifact(self, run_id: str, path: Path, folder: str) -> None:
        self.client().log_artifact(run_id, str(path), folder)

    def log_metric(self, run_id: str, key: str, value: float) -> None:
        self.client().log_metric(run_id, key, value)
