"""Training: the trained_policy asset, tracked in MLflow through dagster-mlflow."""

import dagster as dg

from tradeops_assets.defs.code_versions import versioned
from tradeops_assets.defs.training.assets import trained_policy

defs = dg.Definitions(assets=versioned(trained_policy))
