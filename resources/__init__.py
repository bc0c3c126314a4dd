"""Per-deployment resources: the only place that turns a Deployment into live connections."""

import dagster as dg

from resources.audit import AuditTrail
from resources.datasets import DatasetStore
from resources.market_data import MarketDataResource
from resources.mlflow_policy import PolicyRegistry
from resources.reports import ReportStore
from resources.serving import BentoBuilder, LocalServing
from resources.tracking import TrainingWorkspace, mlflow_resource
from tradeops_assets.deployment import Deployment


def for_deployment(deployment: Deployment) -> dict:
    return {
        "market_data": MarketDataResource(source=deployment.market_source),
        "datasets": DatasetStore(root=str(deployment.datasets_root), remote=deployment.dvc_remote),
        "mlflow": mlflow_resource(deployment.mlflow_uri, deployment.home / "mlflow" / "artifacts"),
        "registry": PolicyRegistry(tracking_uri=deployment.mlflow_uri),
        "training": TrainingWorkspace(root=str(deployment.home / "training")),
        "reports": ReportStore(root=str(deployment.home / "reports")),
        "audit": AuditTrail(root=str(deployment.home / "audit")),
        "bentos": BentoBuilder(
            signing_key=dg.EnvVar("TRADEOPS_SIGNING_KEY"),
            bentoml_home=str(deployment.bentoml_home),
        ),
        "serving": LocalServing(
            root=str(deployment.serving_root),
            port=deployment.serve_port,
            api_token=dg.EnvVar("TRADEOPS_API_TOKEN"),
            public_key=dg.EnvVar("TRADEOPS_SIGNING_PUBLIC_KEY"),
            prediction_log=str(deployment.prediction_log),
            bentoml_home=str(deployment.bentoml_home),
        ),
    }
