"""Every MLflow call names the pipeline's store: a fallback to MLflow's default one fails."""

import os

import mlflow
import pytest
from mlflow.exceptions import MlflowException

from resources.mlflow_policy import CHAMPION, PolicyRegistry
from tests.conftest import NO_DEFAULT_MLFLOW_STORE
from tradeops_assets.core.errors import ConfigError


def test_a_call_without_the_pipelines_store_fails_loudly_in_tests():
    assert os.environ["MLFLOW_TRACKING_URI"] == NO_DEFAULT_MLFLOW_STORE
    with pytest.raises(MlflowException, match="unsupported URI"):
        mlflow.MlflowClient().search_registered_models()


def test_the_registry_uses_its_own_store_and_writes_nothing_where_it_runs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    store = tmp_path / "store"
    store.mkdir()
    registry = PolicyRegistry(tracking_uri=f"sqlite:///{store / 'mlflow.db'}")
    assert registry.version_for(CHAMPION) is None
    with pytest.raises(ConfigError) as err:
        registry.require("7")  # what `tradeops override` and `reproduce` check first
    assert str(err.value) == "tradeops-policy has no version '7'"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["store"]
    assert (store / "mlflow.db").exists()
