import os
import sys
from pathlib import Path

import polars as pl
import pytest
from hypothesis import Phase, settings

from tradeops_assets.core import sample, synthetic

REPO = Path(__file__).resolve().parents[1]
NO_DEFAULT_MLFLOW_STORE = "tradeops-test-no-default-store://set-the-tracking-uri-explicitly"
STRAY_STORES = ("mlflow.db", "mlruns")

# `make mutate` judges thousands of mutants: a failing property need not be shrunk to its
# smallest example there, only noticed (pytest --hypothesis-profile=mutate).
settings.register_profile(
    "mutate", max_examples=60, phases=[Phase.explicit, Phase.reuse, Phase.generate]
)

# Any MLflow call that does not name the pipeline's store falls back to this URI and fails
# loudly, in this process and in every Dagster, BentoML or MLflow process the tests start.
os.environ["MLFLOW_TRACKING_URI"] = NO_DEFAULT_MLFLOW_STORE

# Deploys through the Dagster graph start no spare bento: each would cost a bento's start-up
# on a 2-core CI machine, about ten minutes over the suite. The spare itself is tested on
# LocalServing directly (tests/bentos/test_rollout.py), where it is on by default.
os.environ.setdefault("TRADEOPS_SERVE_SPARE", "0")


@pytest.fixture(autouse=True)
def _no_default_mlflow_store():
    """A test that named a store for itself (``mlflow.set_tracking_uri``) gives it back."""
    yield
    if os.environ.get("MLFLOW_TRACKING_URI") != NO_DEFAULT_MLFLOW_STORE and "mlflow" in sys.modules:
        sys.modules["mlflow"].set_tracking_uri(NO_DEFAULT_MLFLOW_STORE)


def pytest_sessionfinish(session, exitstatus):
    """A default MLflow store in the repository means some path ignored the project's URI."""
    if hasattr(session.config, "workerinput"):
        return
    stray = [name for name in STRAY_STORES if (REPO / name).exists()]
    if stray:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
        print(f"\nFAILED: an MLflow call wrote a default store into the repository: {stray}")


@pytest.fixture(scope="session")
def sample_bars() -> pl.DataFrame:
    return sample.load_sample()


@pytest.fixture(scope="session")
def synthetic_bars() -> pl.DataFrame:
    return synthetic.generate(synthetic.SyntheticSpec(symbols=3, bars=400, seed=11))
