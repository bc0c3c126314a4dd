"""The local deployment's resources: everything under TRADEOPS_HOME, no server to start."""

import dagster as dg

from resources.audit import AuditTrail
from resources.datasets import DatasetStore
from resources.deployment import ALERT_WEBHOOK_ENV, Deployment
from resources.market_data import MarketDataResource
from resources.mlflow_policy import PolicyRegistry
from resources.notifier import Notifier
from resources.prediction_log import PredictionLogStore
from resources.reports import ReportStore
from resources.secrets import DevSecrets
from resources.serving import BentoBuilder, LocalServing
from resources.tracking import TrainingWorkspace, mlflow_resource


def local_resources(deployment: Deployment) -> dict:
    secrets = DevSecrets(root=str(deployment.keys_root))
    predictions = PredictionLogStore(root=str(deployment.prediction_log))
    return {
        "market_data": MarketDataResource(
            source=deployment.market_source,
            calendar=deployment.calendar,
            symbol_calendars=dict(deployment.symbol_calendars),
        ),
        "datasets": DatasetStore(root=str(deployment.datasets_root), remote=deployment.dvc_remote),
        "mlflow": mlflow_resource(deployment.mlflow_uri, deployment.mlflow_artifacts),
        "registry": PolicyRegistry(
            tracking_uri=deployment.mlflow_uri,
            ui_url=deployment.mlflow_ui,
            dagster_ui_url=deployment.dagster_ui,
        ),
        "training": TrainingWorkspace(root=str(deployment.home / "training")),
        "reports": ReportStore(root=str(deployment.home / "reports")),
        "audit": AuditTrail(
            root=str(deployment.home / "audit"), tracking_uri=deployment.mlflow_uri
        ),
        "secrets": secrets,
        "notifier": Notifier(
            webhook_url=dg.EnvVar(ALERT_WEBHOOK_ENV) if deployment.alert_webhook else ""
        ),
        "predictions": predictions,
        "bentos": BentoBuilder(secrets=secrets, bentoml_home=str(deployment.bentoml_home)),
        "serving": LocalServing(
            root=str(deployment.serving_root),
            port=deployment.serve_port,
            secrets=secrets,
            prediction_log=predictions.root,
            bentoml_home=str(deployment.bentoml_home),
            spare=deployment.serve_spare,
        ),
    }
