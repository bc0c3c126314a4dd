"""Every AWS action the code calls is allowed to the role that runs it.

boto3 calls are read from source with ast (``client.update_service`` is
``ecs:UpdateService``); the dagster-aws run launcher is an explicit list, checked against
its source where the app environment is installed beside this one; the serving sidecars'
``aws`` CLI calls are read from their task definition commands."""

import ast
import re
from pathlib import Path

import pytest

from tests.infra import code
from tests.infra.containers import container
from tests.infra.terraform import REPO, module_config, policy_statements

IAM = module_config("iam")
ECS_PY = REPO / "resources" / "ecs.py"
S3_PY = REPO / "resources" / "s3.py"
S3_STORES_PY = REPO / "resources" / "s3_stores.py"
LAUNCHER = REPO / ".venv/lib/python3.11/site-packages/dagster_aws/ecs/launcher.py"

# boto3 operations whose IAM action is not the CamelCase of their name.
S3_ACTIONS = {
    "list_objects_v2": "s3:ListBucket",
    "list_object_versions": "s3:ListBucketVersions",
    "head_object": "s3:GetObject",
}

# dagster-aws's EcsRunLauncher as deploy/prod/dagster.yaml configures it (a task_definition
# given, no secrets lookup, no run monitoring), from
# .venv/lib/python3.11/site-packages/dagster_aws/ecs/launcher.py:
#   __init__           ecs.describe_task_definition(taskDefinition=self.task_definition)
#   launch_run         utils.run_ecs_task -> ecs.run_task, with tags (ecs:TagResource) and
#                      the task definition's roles (iam:PassRole)
#   terminate          ecs.describe_tasks, ecs.stop_task
# register_task_definition is reached only without a task_definition; secretsmanager only
# with secrets or secrets_tag; logs.get_log_events only from run monitoring.
LAUNCH = {
    "ecs:DescribeTaskDefinition",
    "ecs:RunTask",
    "ecs:TagResource",
    "ecs:DescribeTasks",
    "ecs:StopTask",
    "iam:PassRole",
}
TERMINATE = {"ecs:DescribeTasks", "ecs:StopTask"}
LAUNCHER_UNUSED_HERE = {"register_task_definition"}


def action(service: str, operation: str) -> str:
    if service == "s3" and operation in S3_ACTIONS:
        return S3_ACTIONS[operation]
    return f"{service}:{''.join(part.capitalize() for part in operation.split('_'))}"


def _is_client(node: ast.AST, clients: set[str], attrs: set[str]) -> bool:
    """``self.client``, ``self._ecs()``, or a local bound to one of them."""
    if isinstance(node, ast.Attribute):
        return node.attr in attrs
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
        return node.func.attr in attrs
    return isinstance(node, ast.Name) and node.id in clients


def boto3_calls(path: Path, service: str, attrs: set[str], within: str | None = None) -> set[str]:
    """IAM actions of the client calls in ``path`` (in class ``within``, if given)."""
    scope: ast.AST = code.tree(path)
    if within:
        (scope,) = [n for n in ast.walk(scope) if isinstance(n, ast.ClassDef) and n.name == within]
    clients = {
        t.id
        for n in ast.walk(scope)
        if isinstance(n, ast.Assign) and _is_client(n.value, set(), attrs)
        for t in n.targets
        if isinstance(t, ast.Name)
    }
    found = set()
    for node in ast.walk(scope):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
            continue
        if not _is_client(node.func.value, clients, attrs) or node.func.attr in attrs:
            continue
        operation = node.func.attr
        if operation == "get_paginator":
            operation = node.args[0].value
        found.add(action(service, operation))
    return found


def s3_calls() -> set[str]:
    return boto3_calls(S3_PY, "s3", {"client"})


def sse_kms_actions() -> set[str]:
    """SSE-KMS puts need a data key; reading them back needs it decrypted."""
    text = S3_PY.read_text()
    assert "SSEKMSKeyId=" in text
    return {"kms:GenerateDataKey", "kms:Decrypt"}


def cli_calls(task: str, name: str) -> set[str]:
    """``aws <service> <command>`` in a container's command, as IAM actions."""
    found = set()
    for service, command in re.findall(
        r"\baws ([a-z0-9]+) ([a-z-]+)", container(task, name).command
    ):
        if service == "s3":
            found |= {"cp": {"s3:PutObject"}, "sync": {"s3:PutObject", "s3:ListBucket"}}[command]
        else:
            found.add(action(service, command.replace("-", "_")))
    return found


def allowed(role: str) -> set[str]:
    return {a for st in policy_statements(IAM, role) if st.effect == "Allow" for a in st.actions}


def denied_everywhere(role: str) -> set[str]:
    return {
        a
        for st in policy_statements(IAM, role)
        if st.effect == "Deny" and "*" in st.resources
        for a in st.actions
    }


def role_calls() -> dict[str, set[str]]:
    s3 = s3_calls() | sse_kms_actions()
    audit_only = {"s3:ListBucketVersions"}
    serving_deploy = boto3_calls(ECS_PY, "ecs", {"_ecs"}, within="EcsServing")
    # register_task_definition(tags=...) tags on create; the revision names the serving roles.
    serving_deploy |= {"ecs:TagResource", "iam:PassRole"}
    ship = cli_calls("serving", "log-ship") | {"kms:GenerateDataKey"}
    return {
        "daemon": LAUNCH,
        "webserver": TERMINATE,
        "pipeline": s3 | serving_deploy,
        "training": s3 - audit_only,
        "serving": ship | cli_calls("serving", "tokens-sync") | {"kms:Decrypt"},
    }


def test_the_calls_are_read_from_the_code():
    """A reader that found nothing would make the check below pass."""
    calls = role_calls()
    assert {"s3:GetObject", "s3:PutObject", "s3:ListBucket", "s3:ListBucketVersions"} <= s3_calls()
    assert {
        "ecs:DescribeServices",
        "ecs:DescribeTaskDefinition",
        "ecs:RegisterTaskDefinition",
        "ecs:UpdateService",
    } <= calls["pipeline"]
    assert {"s3:PutObject", "secretsmanager:GetSecretValue"} <= calls["serving"]


def test_list_object_versions_is_only_the_audit_verification():
    """Why training, which never verifies the audit log, needs no s3:ListBucketVersions."""
    callers = [
        cls.name
        for cls in ast.walk(code.tree(S3_STORES_PY))
        if isinstance(cls, ast.ClassDef)
        and any(isinstance(n, ast.Attribute) and n.attr == "versions" for n in ast.walk(cls))
    ]
    assert callers == ["S3AuditLog"]


@pytest.mark.parametrize("role", ["daemon", "webserver", "pipeline", "training", "serving"])
def test_each_role_is_allowed_every_action_its_code_calls(role):
    calls = role_calls()[role]
    missing = calls - allowed(role)
    assert not missing, f"{role} calls {sorted(missing)}, its policy does not allow them"
    assert not calls & denied_everywhere(role), role


@pytest.mark.parametrize("role", ["daemon", "webserver", "pipeline", "training", "serving"])
def test_the_permissions_boundary_leaves_every_called_action_usable(role):
    """Every workload role carries the boundary: an action it lacks is denied whatever the
    role's own policy says."""
    ceiling = {
        a
        for st in policy_statements(module_config("ci_iam"), "boundary")
        if st.effect == "Allow"
        for a in st.actions
    }
    missing = role_calls()[role] - ceiling
    assert not missing, f"{role} calls {sorted(missing)}, the permissions boundary forbids them"


def test_pipeline_deploys_only_the_serving_service_and_passes_only_serving_roles():
    for st in policy_statements(IAM, "pipeline"):
        if st.effect != "Allow":
            continue
        if st.actions & {"ecs:UpdateService", "ecs:DescribeServices"}:
            assert st.resources == ("${local.serving_service}",)
        if "ecs:TagResource" in st.actions:
            assert st.resources == ("${local.serving_family}",)
            assert {(c["variable"], tuple(c["values"])) for c in st.conditions} == {
                ("ecs:CreateAction", ("RegisterTaskDefinition",))
            }
        if "iam:PassRole" in st.actions:
            assert set(st.resources) == {
                '${aws_iam_role.task["serving"].arn}',
                "${aws_iam_role.execution.arn}",
            }
    assert IAM.locals["serving_service"].endswith(":service/${var.name}/${var.name}-serving")


def test_the_platform_execution_role_reads_exactly_the_secrets_tasks_inject():
    injected = {
        value.split(":username::")[0].split(":password::")[0]
        for task in ["webserver", "daemon", "run", "training", "mlflow"]
        for value in container(task, "mlflow" if task == "mlflow" else task).secrets.values()
    }
    assert injected == {"${var.db_secret_arn}", "${var.signing_key_secret_arn}"}
    reads = [
        st
        for st in policy_statements(IAM, "platform_execution")
        if "secretsmanager:GetSecretValue" in st.actions
    ]
    (st,) = reads
    assert set(st.resources) == {
        "${var.db_secret_arn}",
        "${aws_secretsmanager_secret.signing_key.arn}",
    }
    serving_agent = {a for st in policy_statements(IAM, "execution") for a in st.actions}
    assert not {a for a in serving_agent if a.startswith("secretsmanager:")}


@pytest.mark.skipif(not LAUNCHER.exists(), reason="the app environment (.venv) is not here")
def test_the_launcher_list_covers_what_dagster_aws_calls():
    ecs = {
        node.func.attr
        for node in ast.walk(ast.parse(LAUNCHER.read_text()))
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and isinstance(node.func.value, ast.Attribute)
        and node.func.value.attr == "ecs"
    }
    assert ecs, "no self.ecs calls found: the launcher's source moved"
    called = {action("ecs", op) for op in ecs - LAUNCHER_UNUSED_HERE}
    assert called <= LAUNCH, f"the launcher now calls {sorted(called - LAUNCH)}"
    assert "task_definition: {env: TRADEOPS_RUN_TASK_FAMILY}" in code.INSTANCE_YAML.read_text()


def test_training_reads_and_writes_the_prefix_its_checkpoints_are_kept_under():
    """A retried Spot task reads back what the reclaimed one wrote: one prefix, both ways."""
    prefix = code.constants(S3_STORES_PY)["TRAINING_PREFIX"]
    where = f"${{local.artifacts}}/{prefix}/*"
    granted = {
        a
        for st in policy_statements(IAM, "training")
        if st.effect == "Allow" and where in st.resources
        for a in st.actions
    }
    assert {"s3:GetObject", "s3:PutObject"} <= granted, where
