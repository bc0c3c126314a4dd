"""The prod deployment on ECS: where runs execute, and where the policy is served.

``TradeopsEcsRunLauncher`` is dagster-aws's ``EcsRunLauncher`` (each run its own task)
that tags a run which trains for GPU capacity: the training task definition, its
container, the GPU capacity provider and the training security group, as ECS run
tags the base launcher honours; the tags stay on the run, visible in the UI.

``S3BentoBuilder`` builds and signs the bento as locally, then ships the bento and its
model (BentoML store entries) to S3 as one archive, once. ``EcsServing`` deploys a
bento: it fetches that archive, verifies the signatures against the trusted public
key, and only then registers a task definition revision for the serving service
naming the bento and rolls the service onto it; ECS's rolling deployment (100/200,
circuit breaker with rollback, Terraform) starts the new tasks before it stops the old.
"""

import io
import json
import tarfile
import tempfile
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
import dagster as dg
from dagster import Array, Field, Shape, StringSource
from dagster._core.launcher import LaunchRunContext
from dagster_aws.ecs import EcsRunLauncher
from dagster_aws.s3 import S3Resource
from pydantic import Field as PydanticField

from bentos.trading_policy.release import bento_model_tag, store_path, verify_stored
from resources.s3 import S3Reader, S3Url, object_store
from resources.secrets import Secrets
from resources.serving import BentoBuilder, DeployError, ServingTarget
from tradeops_assets.core.errors import TradeopsError
from tradeops_assets.keys import BACKTEST_REPORT, TRAINED_POLICY

CAPACITY_TAG = "tradeops/capacity"
TRAINING_ASSETS = (TRAINED_POLICY, BACKTEST_REPORT)
"""Assets whose runs train networks (the backtest retrains every walk-forward fold)."""
BENTO_TAG_ENV, BENTO_URI_ENV, BENTO_DIGEST_ENV = (
    "TRADEOPS_BENTO_TAG",
    "TRADEOPS_BENTO_URI",
    "TRADEOPS_BENTO_DIGEST",
)
BENTOS_PREFIX = "bentos"


def network_configuration(subnets: str, security_group: str | None) -> dict:
    """awsvpc settings from 'subnet-a,subnet-b' and a security group id."""
    config: dict[str, Any] = {
        "subnets": [s.strip() for s in subnets.split(",") if s.strip()],
        "assignPublicIp": "DISABLED",
    }
    if security_group:
        config["securityGroups"] = [security_group]
    return {"awsvpcConfiguration": config}


class TradeopsEcsRunLauncher(EcsRunLauncher):
    """``EcsRunLauncher`` with the run network from the environment and GPU training runs.

    ``subnets`` (comma-separated) and ``security_group`` become every task's awsvpc
    configuration. A run whose assets include one of ``training.assets`` is tagged
    ``tradeops/capacity: gpu`` and launched from ``training.task_definition`` (container
    ``training.container_name``) on ``training.capacity_provider``.
    """

    def __init__(
        self,
        inst_data=None,
        subnets: str | None = None,
        security_group: str | None = None,
        training: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        if subnets:
            kwargs["run_task_kwargs"] = {
                **(kwargs.get("run_task_kwargs") or {}),
                "networkConfiguration": network_configuration(subnets, security_group),
            }
        super().__init__(inst_data=inst_data, **kwargs)
        self.subnets = subnets
        self.training = dict(training or {})

    @classmethod
    def config_type(cls):
        return {
            **super().config_type(),
            "subnets": Field(StringSource, is_required=False, description="comma-separated"),
            "security_group": Field(StringSource, is_required=False),
            "training": Field(
                Shape(
                    {
                        "task_definition": Field(StringSource),
                        "container_name": Field(
                            StringSource, is_required=False, default_value="training"
                        ),
                        "capacity_provider": Field(StringSource),
                        "security_group": Field(StringSource, is_required=False),
                        "assets": Field(
                            Array(str), is_required=False, default_value=list(TRAINING_ASSETS)
                        ),
                    }
                ),
                is_required=False,
                description="How runs that train are launched: GPU capacity.",
            ),
        }

    def trains(self, run: dg.DagsterRun) -> bool:
        if not self.training or not run.asset_selection:
            return False
        wanted = set(self.training.get("assets") or TRAINING_ASSETS)
        return any(key.to_user_string() in wanted for key in run.asset_selection)

    def training_tags(self) -> dict[str, str]:
        """The run tags that put a run on GPU capacity (the base launcher reads ``ecs/*``)."""
        kwargs: dict[str, Any] = {
            "taskDefinition": self.training["task_definition"],
            "capacityProviderStrategy": [
                {"capacityProvider": self.training["capacity_provider"], "weight": 1}
            ],
        }
        if self.subnets:
            group = self.training.get("security_group")
            kwargs["networkConfiguration"] = network_configuration(self.subnets, group)
        return {
            CAPACITY_TAG: "gpu",
            "ecs/run_task_kwargs": json.dumps(kwargs, sort_keys=True),
            "ecs/container_overrides": json.dumps(
                {"name": self.training.get("container_name", "training")}
            ),
        }

    def launch_run(self, context: LaunchRunContext) -> None:
        run = context.dagster_run
        if self.trains(run) and run.tags.get(CAPACITY_TAG) != "gpu":
            self._instance.add_run_tags(run.run_id, self.training_tags())
            tagged = self._instance.get_run_by_id(run.run_id)
            context = LaunchRunContext(dagster_run=tagged, workspace=context.workspace)
        super().launch_run(context)


def _tar_entries(home: Path, entries: list[Path]) -> bytes:
    """The store entries as one archive, paths relative to the store, bytes reproducible."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        for entry in entries:
            for path in sorted([entry, *entry.rglob("*")]):
                info = archive.gettarinfo(str(path), arcname=str(path.relative_to(home)))
                info.mtime, info.uid, info.gid, info.uname, info.gname = 0, 0, 0, "", ""
                if path.is_file():
                    with path.open("rb") as handle:
                        archive.addfile(info, handle)
                else:
                    archive.addfile(info)
    return buffer.getvalue()


def _untar(body: bytes, home: Path) -> None:
    with tarfile.open(fileobj=io.BytesIO(body)) as archive:
        archive.extractall(home, filter="data")


class S3BentoBuilder(BentoBuilder):
    """Builds and signs the bento as ``BentoBuilder`` does, then ships it to S3, once:
    ``bentos/<name>/<version>.tar`` holds the bento and its model as store entries."""

    location: str = PydanticField(description="where bentos are shipped, s3://bucket/prefix")
    kms_key_id: str = PydanticField(description="the KMS key every object is encrypted with")
    s3: S3Resource

    def build(self, policy, lineage: dict, labels: dict) -> dict:
        built = super().build(policy, lineage, labels)
        tag = built["bento_tag"]
        home = Path(self.bentoml_home)
        bento_dir = store_path(home, tag, "bentos")
        model_dir = store_path(home, bento_model_tag(bento_dir), "models")
        name, _, version = tag.partition(":")
        where = S3Url.parse(self.location, "the bento location").child(BENTOS_PREFIX, name)
        store = object_store(self.s3, self.kms_key_id)
        store.put_new(
            where.bucket, where.key(f"{version}.tar"), _tar_entries(home, [bento_dir, model_dir])
        )
        return {**built, "bento_uri": where.url(f"{version}.tar")}


class EcsServing(ServingTarget):
    """The prod endpoint: an ECS service behind the internal load balancer.

    ``deploy`` verifies the shipped bento, registers a revision of the service's task
    definition whose ``container`` names it (``TRADEOPS_BENTO_TAG``/``_URI``/``_DIGEST``)
    and updates the service; with ``rollout_timeout_s`` it then waits for ECS to report
    that rollout COMPLETED (a FAILED one was rolled back by the circuit breaker).
    """

    cluster: str
    service: str
    container: str = "policy"
    url: str = PydanticField(description="the endpoint traders call (the internal load balancer)")
    bentos: str = PydanticField(description="where bentos are shipped, s3://bucket/prefix")
    secrets: Secrets
    s3: S3Resource
    scratch: str = PydanticField(
        default_factory=tempfile.gettempdir, description="where shipped bentos are verified"
    )
    endpoint_url: str | None = None
    """ECS's endpoint, when not AWS's own (the tests' loopback stand-in)."""
    rollout_timeout_s: float = 900.0
    poll_s: float = 10.0

    def _ecs(self):
        return boto3.client("ecs", endpoint_url=self.endpoint_url or None)

    def _service(self) -> dict:
        found = self._ecs().describe_services(cluster=self.cluster, services=[self.service])
        services = found.get("services") or []
        if not services:
            raise DeployError(f"no ECS service {self.service} in cluster {self.cluster}")
        return services[0]

    def _container_env(self, task_definition: dict) -> dict[str, str]:
        for container in task_definition.get("containerDefinitions", []):
            if container.get("name") == self.container:
                return {e["name"]: e["value"] for e in container.get("environment", [])}
        raise DeployError(
            f"task definition {task_definition.get('taskDefinitionArn')} has no container "
            f"{self.container!r}"
        )

    def current(self) -> dict | None:
        service = self._service()
        definition = self._ecs().describe_task_definition(
            taskDefinition=service["taskDefinition"], include=["TAGS"]
        )
        env = self._container_env(definition["taskDefinition"])
        if BENTO_TAG_ENV not in env:
            return None
        tags = {t["key"]: t["value"] for t in definition.get("tags", [])}
        return {
            "bento_tag": env[BENTO_TAG_ENV],
            "bento_uri": env.get(BENTO_URI_ENV),
            "task_definition": service["taskDefinition"],
            "since": tags.get("tradeops:since"),
            "url": self.url,
        }

    def is_serving(self, bento_tag: str) -> bool:
        return (self.current() or {}).get("bento_tag") == bento_tag

    def request_counts(self) -> dict[int, int]:
        """Per-status counts live in the load balancer's CloudWatch metrics, not here: the
        prediction log's answered requests are what serving_health judges in prod."""
        return {}

    def counter(self, name: str) -> float:
        """The bentos' /metrics counters are scraped into CloudWatch by each task, not read
        back by the pipeline: none is counted here (0)."""
        return 0.0

    def stop(self) -> None:
        raise DeployError(
            f"the prod endpoint ({self.service}) is not stopped by the pipeline: its desired "
            "count is Terraform's (docs/runbook.md)"
        )

    def verify(self, bento_tag: str) -> dict:
        """Fetches the shipped bento and verifies it whole against the trusted public key."""
        name, _, version = bento_tag.partition(":")
        where = S3Url.parse(self.bentos, "the bento location").child(BENTOS_PREFIX, name)
        bucket, key = where.bucket, where.key(f"{version}.tar")
        body = S3Reader(self.s3.get_client()).get(bucket, key)
        if body is None:
            raise DeployError(f"refusing to deploy {bento_tag}: s3://{bucket}/{key} is missing")
        Path(self.scratch).mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix="tradeops-verify-", dir=self.scratch) as home:
            try:
                _untar(body, Path(home))
                release = verify_stored(home, bento_tag, self.secrets.public_key())
            except (TradeopsError, tarfile.TarError) as exc:
                raise DeployError(f"refusing to deploy {bento_tag}: {exc}") from exc
        return {
            **release.bundle_signature,
            "bento_digest": release.digest,
            "bento_uri": f"s3://{bucket}/{key}",
        }

    def deploy(self, bento_tag: str, why: str, labels: dict) -> dict:
        signature = self.verify(bento_tag)
        ecs = self._ecs()
        previous = self.current()
        service = self._service()
        definition = ecs.describe_task_definition(taskDefinition=service["taskDefinition"])[
            "taskDefinition"
        ]
        since = datetime.now(UTC).isoformat()
        revision = _revision(
            definition,
            self.container,
            {
                BENTO_TAG_ENV: bento_tag,
                BENTO_URI_ENV: signature["bento_uri"],
                BENTO_DIGEST_ENV: signature["bento_digest"],
            },
        )
        registered = ecs.register_task_definition(
            **revision,
            tags=[
                {"key": "tradeops:bento_tag", "value": bento_tag.replace(":", "/")},
                {"key": "tradeops:since", "value": since},
            ],
        )["taskDefinition"]["taskDefinitionArn"]
        ecs.update_service(cluster=self.cluster, service=self.service, taskDefinition=registered)
        rollout = self._await_rollout(registered)
        return {
            "bento_tag": bento_tag,
            "bento_pid": None,
            "front_door_pid": None,
            "url": self.url,
            "since": since,
            "why": why,
            "labels": labels,
            "signature_digest": signature["digest"],
            "signing_key_id": signature["key_id"],
            "bento_digest": signature["bento_digest"],
            "bento_uri": signature["bento_uri"],
            "task_definition": registered,
            "rollout": rollout,
            "previous_bento_tag": (previous or {}).get("bento_tag"),
        }

    def _await_rollout(self, task_definition: str) -> str:
        """COMPLETED, or 'requested' without a timeout; a FAILED rollout is a DeployError."""
        if self.rollout_timeout_s <= 0:
            return "requested"
        deadline = time.monotonic() + self.rollout_timeout_s
        while True:
            for deployment in self._service().get("deployments", []):
                if deployment.get("taskDefinition") != task_definition:
                    continue
                state = deployment.get("rolloutState")
                if state == "COMPLETED":
                    return "completed"
                if state == "FAILED":
                    raise DeployError(
                        f"ECS rolled {self.service} back from {task_definition}: "
                        f"{deployment.get('rolloutStateReason', 'no reason given')}"
                    )
            if time.monotonic() > deadline:
                raise DeployError(
                    f"{self.service} did not finish rolling onto {task_definition} within "
                    f"{self.rollout_timeout_s:.0f} s; ECS keeps the old tasks serving until it does"
                )
            time.sleep(self.poll_s)


_REGISTERABLE = (
    "family",
    "taskRoleArn",
    "executionRoleArn",
    "networkMode",
    "containerDefinitions",
    "volumes",
    "placementConstraints",
    "requiresCompatibilities",
    "cpu",
    "memory",
    "pidMode",
    "ipcMode",
    "proxyConfiguration",
    "inferenceAccelerators",
    "ephemeralStorage",
    "runtimePlatform",
)


def _revision(definition: dict, container: str, env: dict[str, str]) -> dict:
    """The task definition's registerable fields with ``env`` set on ``container``."""
    out = {k: definition[k] for k in _REGISTERABLE if definition.get(k) not in (None, [], {})}
    containers = []
    for spec in definition["containerDefinitions"]:
        if spec.get("name") == container:
            kept = [e for e in spec.get("environment", []) if e["name"] not in env]
            spec = {
                **spec,
                "environment": [*kept, *({"name": k, "value": v} for k, v in env.items())],
            }
        containers.append(spec)
    out["containerDefinitions"] = containers
    return out
