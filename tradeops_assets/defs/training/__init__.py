"""Training: the trained_policy asset, tracked in MLflow through dagster-mlflow."""

import dagster as dg

from tradeops_assets.defs.training.assets import trained_policy

defs = dg.Definitions(assets=[trained_policy])
