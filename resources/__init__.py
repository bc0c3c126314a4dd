"""Per-deployment resources: the only place that turns a Deployment into live connections."""

from resources.audit import AuditTrail
from resources.datasets import DatasetStore
from resources.market_data import MarketDataResource
from resources.reports import ReportStore
from resources.tracking import TrainingWorkspace, mlflow_resource
from tradeops_assets.deployment import Deployment


def for_deployment(deployment: Deployment) -> dict:
    return {
        "market_data": MarketDataResource(source=deployment.market_source),
        "datasets": DatasetStore(root=str(deployment.datasets_root), remote=deployment.dvc_remote),
        "mlflow": mlflow_resource(deployment.mlflow_uri, deployment.home / "mlflow" / "artifacts"),
        "training": TrainingWorkspace(root=str(deployment.home / "training")),
        "reports": ReportStore(root=str(deployment.home / "reports")),
        "audit": AuditTrail(root=str(deployment.home / "audit")),
    }
