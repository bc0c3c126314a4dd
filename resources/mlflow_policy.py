"""The trained policy as an MLflow pyfunc model, so the registry holds a servable version.

MLflow 3 registers only logged models, not bare artifact folders. The pyfunc
wraps the SB3 policy, the feature normaliser fitted on the training window and
the env config: a model version is everything needed to act.
"""

import json
from pathlib import Path

import mlflow
import numpy as np

REGISTERED_MODEL = "tradeops-policy"
CHALLENGER = "challenger"


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


def log_and_register(workdir: Path, config: dict, normaliser: dict) -> tuple[str, str]:
    """Logs the policy in the active run, registers it and points 'challenger' at it."""
    (workdir / "config.json").write_text(json.dumps(config, indent=2, default=str))
    (workdir / "normaliser.json").write_text(json.dumps(normaliser))
    info = mlflow.pyfunc.log_model(
        name="policy",
        python_model=PolicyModel(),
        artifacts={
            "policy": str(workdir / "checkpoint.zip"),
            "config": str(workdir / "config.json"),
            "normaliser": str(workdir / "normaliser.json"),
        },
        pip_requirements=["stable-baselines3", "torch", "numpy"],
    )
    version = mlflow.register_model(info.model_uri, REGISTERED_MODEL)
    mlflow.MlflowClient().set_registered_model_alias(REGISTERED_MODEL, CHALLENGER, version.version)
    return info.model_uri, str(version.version)
