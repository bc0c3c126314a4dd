"""The prod deployment's resources (``TRADEOPS_ENV=prod``): S3, PostgreSQL, ECS.

The same resource keys as ``local.py``, so no asset knows which deployment it runs in.
Every location, endpoint and secret is a ``dg.EnvVar`` resolved when a run (or a
sensor) starts: the Dagster UI and the run config show the variable's name, never its
value, and importing the code location reads nothing. AWS credentials are not
configuration at all: boto3 takes the ECS task role's. The Dagster instance itself
(PostgreSQL storage, the ECS run launcher) is ``deploy/prod/dagster.yaml``.

What each task's environment carries (Terraform's ``modules/ecs`` sets them):

==================================  =====================================================
TRADEOPS_S3_RAW                     s3://bucket[/prefix] of market_bars
TRADEOPS_S3_FEATURES                s3://bucket[/prefix] of every other dataset
TRADEOPS_S3_ARTIFACTS               reports/, dvc/ (the DVC remote), bentos/, training/
TRADEOPS_S3_PREDICTIONS             the prediction log under predictions/
TRADEOPS_S3_AUDIT                   s3://bucket/prefix of the audit log (Object Lock)
TRADEOPS_DATA_KMS_KEY_ID            the data key: SSE-KMS on every write
TRADEOPS_AUDIT_KMS_KEY_ID           the audit key: SSE-KMS on every audit record
TRADEOPS_MLFLOW_TRACKING_URI        the MLflow tracking server (http://...)
TRADEOPS_ECS_CLUSTER                the cluster of runs and of the endpoint
TRADEOPS_SERVING_SERVICE            the endpoint's ECS service
TRADEOPS_SERVING_URL                the endpoint's URL (the internal load balancer)
TRADEOPS_SIGNING_KEY                the bento signing key (run tasks only; an ECS secret)
TRADEOPS_SIGNING_PUBLIC_KEY         the key bentos are verified with
AWS_ENDPOINT_URL_S3 / _ECS          optional: endpoints other than AWS's own
==================================  =====================================================
"""

import dagster as dg
from dagster_aws.s3 import S3Resource

from resources.deployment import ALERT_WEBHOOK_ENV, ECS_ENDPOINT_ENV, S3_ENDPOINT_ENV, Deployment
from resources.ecs import EcsServing, S3BentoBuilder
from resources.mlflow_policy import PolicyRegistry
from resources.notifier import Notifier
from resources.s3_stores import (
    S3AuditTrail,
    S3DatasetStore,
    S3MarketData,
    S3PredictionLogStore,
    S3ReportStore,
    S3TrainingWorkspace,
)
from resources.secrets import PUBLIC_KEY_ENV, SIGNING_KEY_ENV, EnvSecrets
from resources.tracking import mlflow_server_resource

S3_RAW = "TRADEOPS_S3_RAW"
S3_FEATURES = "TRADEOPS_S3_FEATURES"
S3_ARTIFACTS = "TRADEOPS_S3_ARTIFACTS"
S3_PREDICTIONS = "TRADEOPS_S3_PREDICTIONS"
S3_AUDIT = "TRADEOPS_S3_AUDIT"
KMS_KEY = "TRADEOPS_DATA_KMS_KEY_ID"
AUDIT_KMS_KEY = "TRADEOPS_AUDIT_KMS_KEY_ID"
MLFLOW_URI = "TRADEOPS_MLFLOW_TRACKING_URI"
ECS_CLUSTER = "TRADEOPS_ECS_CLUSTER"
SERVING_SERVICE = "TRADEOPS_SERVING_SERVICE"
SERVING_URL = "TRADEOPS_SERVING_URL"
REQUIRED = (
    S3_RAW,
    S3_FEATURES,
    S3_ARTIFACTS,
    S3_PREDICTIONS,
    S3_AUDIT,
    KMS_KEY,
    AUDIT_KMS_KEY,
    MLFLOW_URI,
    ECS_CLUSTER,
    SERVING_SERVICE,
    SERVING_URL,
    SIGNING_KEY_ENV,
    PUBLIC_KEY_ENV,
)
"""Every variable a pipeline task needs; docs, Terraform and the tests read this list."""


def prod_resources(deployment: Deployment) -> dict:
    s3 = S3Resource(endpoint_url=dg.EnvVar(S3_ENDPOINT_ENV) if deployment.s3_endpoint else None)
    kms = dg.EnvVar(KMS_KEY)
    mlflow_uri = dg.EnvVar(MLFLOW_URI)
    scratch = deployment.home
    secrets = EnvSecrets(
        signing_key_pem=dg.EnvVar(SIGNING_KEY_ENV), public_key_b64=dg.EnvVar(PUBLIC_KEY_ENV)
    )
    return {
        "market_data": S3MarketData(
            source=deployment.market_source,
            calendar=deployment.calendar,
            symbol_calendars=dict(deployment.symbol_calendars),
            s3=s3,
        ),
        "datasets": S3DatasetStore(
            root=str(scratch / "datasets"),
            remote=dg.EnvVar(S3_ARTIFACTS),
            raw=dg.EnvVar(S3_RAW),
            features=dg.EnvVar(S3_FEATURES),
            kms_key_id=kms,
            s3=s3,
        ),
        "mlflow": mlflow_server_resource(MLFLOW_URI),
        "registry": PolicyRegistry(
            tracking_uri=mlflow_uri,
            ui_url=deployment.mlflow_ui,
            dagster_ui_url=deployment.dagster_ui,
        ),
        "training": S3TrainingWorkspace(
            root=str(scratch / "training"),
            location=dg.EnvVar(S3_ARTIFACTS),
            kms_key_id=kms,
            s3=s3,
        ),
        "reports": S3ReportStore(
            root=str(scratch / "reports"), location=dg.EnvVar(S3_ARTIFACTS), kms_key_id=kms, s3=s3
        ),
        "audit": S3AuditTrail(
            location=dg.EnvVar(S3_AUDIT),
            kms_key_id=dg.EnvVar(AUDIT_KMS_KEY),
            tracking_uri=mlflow_uri,
            s3=s3,
        ),
        "secrets": secrets,
        "notifier": Notifier(
            webhook_url=dg.EnvVar(ALERT_WEBHOOK_ENV) if deployment.alert_webhook else ""
        ),
        "predictions": S3PredictionLogStore(
            location=dg.EnvVar(S3_PREDICTIONS), kms_key_id=kms, s3=s3
        ),
        "bentos": S3BentoBuilder(
            secrets=secrets,
            bentoml_home=str(scratch / "bentoml"),
            location=dg.EnvVar(S3_ARTIFACTS),
            kms_key_id=kms,
            s3=s3,
        ),
        "serving": EcsServing(
            cluster=dg.EnvVar(ECS_CLUSTER),
            service=dg.EnvVar(SERVING_SERVICE),
            url=dg.EnvVar(SERVING_URL),
            bentos=dg.EnvVar(S3_ARTIFACTS),
            secrets=secrets,
            s3=s3,
            scratch=str(scratch / "serving"),
            endpoint_url=dg.EnvVar(ECS_ENDPOINT_ENV) if deployment.ecs_endpoint else None,
            rollout_timeout_s=deployment.rollout_timeout_s,
        ),
    }
