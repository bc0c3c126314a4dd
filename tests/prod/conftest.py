"""The prod deployment against real stand-ins on loopback, started here and stopped by PID.

One moto server (S3, KMS, ECS, EC2) and one PostgreSQL cluster serve the whole session;
the MLflow tracking server (PostgreSQL backend, S3 artifacts) starts only for the test
that needs it. ``World`` is what Terraform would have created: the buckets (versioned,
the audit one with Object Lock in COMPLIANCE mode), the KMS keys, the ECS cluster with
its run, training and serving task definitions and the serving service. Each test gets
its own S3 prefixes and its own Dagster database, so tests never see each other's objects.
"""

import json
import os
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from resources.deployment import PROD_INSTANCE_YAML
from tests.prod.standins import REGION as REGION
from tests.prod.standins import MlflowServer, Moto, Postgres
from tradeops_assets.core.signing import DevKeypair

BUCKETS = {
    "raw": "tradeops-raw",
    "features": "tradeops-features",
    "artifacts": "tradeops-artifacts",
    "predictions": "tradeops-predictions",
    "audit": "tradeops-audit",
    "landing": "tradeops-landing",
}
CLUSTER = "tradeops"
RUN_FAMILY, TRAINING_FAMILY, SERVING_FAMILY = (
    "tradeops-run",
    "tradeops-training",
    "tradeops-serving",
)
SERVING_SERVICE = "tradeops-serving"
GPU_PROVIDER = "tradeops-gpu-spot"


@dataclass
class World:
    """The stand-in AWS account and database server, as Terraform would leave them."""

    moto: Moto
    postgres: Postgres
    data_key: str = ""
    audit_key: str = ""
    subnets: list[str] = field(default_factory=list)
    run_group: str = ""
    training_group: str = ""
    keypair: DevKeypair = field(default_factory=DevKeypair.generate)

    def s3(self):
        return self.moto.client("s3")

    def build(self) -> "World":
        kms = self.moto.client("kms")
        self.data_key = kms.create_key(Description="tradeops data")["KeyMetadata"]["KeyId"]
        self.audit_key = kms.create_key(Description="tradeops audit")["KeyMetadata"]["KeyId"]
        s3 = self.s3()
        for role, bucket in BUCKETS.items():
            if role == "audit":
                s3.create_bucket(Bucket=bucket, ObjectLockEnabledForBucket=True)
                s3.put_object_lock_configuration(
                    Bucket=bucket,
                    ObjectLockConfiguration={
                        "ObjectLockEnabled": "Enabled",
                        "Rule": {"DefaultRetention": {"Mode": "COMPLIANCE", "Days": 1}},
                    },
                )
            else:
                s3.create_bucket(Bucket=bucket)
            s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
        ec2 = self.moto.client("ec2")
        vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
        ec2.modify_vpc_attribute(VpcId=vpc, EnableDnsHostnames={"Value": True})
        self.subnets = [
            ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.0.{i}.0/24")["Subnet"]["SubnetId"]
            for i in (1, 2)
        ]
        self.run_group, self.training_group, serving_group = (
            ec2.create_security_group(GroupName=name, Description=name, VpcId=vpc)["GroupId"]
            for name in ("platform", "training", "serving")
        )
        ecs = self.moto.client("ecs")
        ecs.create_cluster(clusterName=CLUSTER)
        # The GPU capacity provider is EC2-backed: a container instance to place tasks on.
        image = ec2.describe_images()["Images"][0]["ImageId"]
        instance = ec2.run_instances(ImageId=image, MinCount=1, MaxCount=1)["Instances"][0]
        ecs.register_container_instance(
            cluster=CLUSTER,
            instanceIdentityDocument=json.dumps({"instanceId": instance["InstanceId"]}),
        )
        ecs.register_task_definition(
            family=RUN_FAMILY,
            requiresCompatibilities=["FARGATE"],
            networkMode="awsvpc",
            cpu="1024",
            memory="4096",
            containerDefinitions=[{"name": "run", "image": "tradeops/platform", "memory": 4096}],
        )
        ecs.register_task_definition(
            family=TRAINING_FAMILY,
            requiresCompatibilities=["EC2"],
            networkMode="awsvpc",
            containerDefinitions=[
                {
                    "name": "training",
                    "image": "tradeops/training",
                    "memory": 512,
                    "resourceRequirements": [{"type": "GPU", "value": "1"}],
                }
            ],
        )
        serving = ecs.register_task_definition(
            family=SERVING_FAMILY,
            requiresCompatibilities=["FARGATE"],
            networkMode="awsvpc",
            cpu="512",
            memory="1024",
            containerDefinitions=[
                {
                    "name": "policy",
                    "image": "tradeops/trading-policy",
                    "memory": 1024,
                    "environment": [{"name": "TRADEOPS_SERVE_WORKERS", "value": "2"}],
                }
            ],
        )["taskDefinition"]["taskDefinitionArn"]
        ecs.create_service(
            cluster=CLUSTER,
            serviceName=SERVING_SERVICE,
            taskDefinition=serving,
            desiredCount=2,
            launchType="FARGATE",
            networkConfiguration={
                "awsvpcConfiguration": {"subnets": self.subnets, "securityGroups": [serving_group]}
            },
        )
        return self

    def env(self, tmp: Path, name: str, mlflow_url: str = "") -> dict[str, str]:
        """A pipeline task's environment (what Terraform sets), with prefixes and a
        Dagster database of its own under ``name``."""
        database = f"dagster_{name}"
        self.postgres.create_database(database)
        home = tmp / "dagster"
        home.mkdir(parents=True, exist_ok=True)
        shutil.copy(PROD_INSTANCE_YAML, home / "dagster.yaml")
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("TRADEOPS_", "AWS_", "DAGSTER_HOME", "BENTOML_HOME"))
        }
        return {
            **env,
            **self.moto.env,
            "TRADEOPS_ENV": "prod",
            "TRADEOPS_HOME": str(tmp / "scratch"),
            "DAGSTER_HOME": str(home),
            "DAGSTER_DISABLE_TELEMETRY": "1",
            "TRADEOPS_DB_HOST": "127.0.0.1",
            "TRADEOPS_DB_PORT": str(self.postgres.port),
            "TRADEOPS_DB_NAME": database,
            "TRADEOPS_DB_USER": self.postgres.user,
            "TRADEOPS_DB_PASSWORD": self.postgres.password,
            "TRADEOPS_S3_RAW": f"s3://{BUCKETS['raw']}/{name}",
            "TRADEOPS_S3_FEATURES": f"s3://{BUCKETS['features']}/{name}",
            "TRADEOPS_S3_ARTIFACTS": f"s3://{BUCKETS['artifacts']}/{name}",
            "TRADEOPS_S3_PREDICTIONS": f"s3://{BUCKETS['predictions']}/{name}",
            "TRADEOPS_S3_AUDIT": f"s3://{BUCKETS['audit']}/{name}",
            "TRADEOPS_DATA_KMS_KEY_ID": self.data_key,
            "TRADEOPS_AUDIT_KMS_KEY_ID": self.audit_key,
            "TRADEOPS_MLFLOW_TRACKING_URI": mlflow_url or "http://127.0.0.1:9/no-mlflow-here",
            "TRADEOPS_ECS_CLUSTER": CLUSTER,
            "TRADEOPS_RUN_TASK_FAMILY": RUN_FAMILY,
            "TRADEOPS_TRAINING_TASK_FAMILY": TRAINING_FAMILY,
            "TRADEOPS_TRAINING_CAPACITY_PROVIDER": GPU_PROVIDER,
            "TRADEOPS_RUN_SUBNETS": ",".join(self.subnets),
            "TRADEOPS_RUN_SECURITY_GROUP": self.run_group,
            "TRADEOPS_TRAINING_SECURITY_GROUP": self.training_group,
            "TRADEOPS_SERVING_SERVICE": SERVING_SERVICE,
            "TRADEOPS_SERVING_URL": "http://internal-tradeops-serving.elb.local",
            "TRADEOPS_SIGNING_KEY": self.keypair.private_pem.decode(),
            "TRADEOPS_SIGNING_PUBLIC_KEY": self.keypair.public_b64,
            "TRADEOPS_ROLLOUT_TIMEOUT_S": "0",  # moto never finishes a rollout
        }


@pytest.fixture(scope="session")
def moto_server(tmp_path_factory) -> Iterator[Moto]:
    server = Moto(tmp_path_factory.mktemp("moto"))
    try:
        yield server.start()
    finally:
        server.stop()


@pytest.fixture(scope="session")
def postgres(tmp_path_factory) -> Iterator[Postgres]:
    server = Postgres(tmp_path_factory.mktemp("postgres"))
    try:
        yield server.start()
    finally:
        server.stop()


@pytest.fixture(scope="session")
def world(moto_server, postgres) -> World:
    return World(moto_server, postgres).build()


@pytest.fixture(scope="session")
def mlflow_server(world, tmp_path_factory) -> Iterator[MlflowServer]:
    world.postgres.create_database("mlflow")
    server = MlflowServer(
        tmp_path_factory.mktemp("mlflow"),
        backend=world.postgres.url("mlflow"),
        artifacts=f"s3://{BUCKETS['artifacts']}/mlflow",
        env={
            **world.moto.env,
            "MLFLOW_S3_ENDPOINT_URL": world.moto.url,
            "MLFLOW_S3_UPLOAD_EXTRA_ARGS": json.dumps(
                {"ServerSideEncryption": "aws:kms", "SSEKMSKeyId": world.data_key}
            ),
        },
    )
    try:
        yield server.start()
    finally:
        server.stop()


@pytest.fixture
def prefix() -> str:
    """A prefix of this test's own in every bucket."""
    return f"t{uuid.uuid4().hex[:10]}"


@contextmanager
def environment(env: dict[str, str]) -> Iterator[None]:
    """This process's environment replaced by ``env`` for the block (for dg.EnvVar and
    the instance's {env: ...}), then restored exactly."""
    saved = dict(os.environ)
    os.environ.clear()
    os.environ.update(env)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)
