"""The environment each container's code reads in prod, against what modules/ecs gives it.

The code side is read from source: resources/prod.py (its dg.EnvVar names and REQUIRED),
deploy/prod/dagster.yaml ({env: ...}), bentos/trading_policy/settings.py (what
ServeSettings.from_env refuses to start without) and the serving Dockerfile. A name that
one side renames and the other does not fails here, not at the first prod start."""

import re

import pytest

from tests.infra import code
from tests.infra.containers import ECS, container, containers, text
from tests.infra.terraform import composition

PIPELINE_TASKS = ["webserver", "daemon", "run", "training"]
SIGNING_KEY = code.constants(code.SECRETS)["SIGNING_KEY_ENV"]
PIPELINE_READERS = [
    *code.python_files("resources", "tradeops_assets", "sensors"),
    code.INSTANCE_YAML,
]
SERVING_READERS = code.python_files("bentos/trading_policy", "tradeops_assets/core")


def pipeline_requires(task: str) -> set[str]:
    """Every variable a Dagster process of ``task`` resolves in prod. The private signing
    key only where bentos are packaged: run tasks (training runs only train and backtest,
    the webserver and the daemon's sensors never sign)."""
    always, _optional = code.prod_env_vars()
    needed = always | code.prod_required() | code.instance_env_vars() | {"TRADEOPS_ENV"}
    return needed if task == "run" else needed - {SIGNING_KEY}


def test_the_code_side_is_read_whole():
    """A parse that found nothing would make every check below pass."""
    always, optional = code.prod_env_vars()
    assert always == code.prod_required(), "REQUIRED lists exactly what prod_resources reads"
    assert {"TRADEOPS_S3_RAW", "TRADEOPS_DATA_KMS_KEY_ID", SIGNING_KEY} <= always
    assert {"AWS_ENDPOINT_URL_S3", "TRADEOPS_ALERT_WEBHOOK"} <= optional
    assert {"TRADEOPS_DB_HOST", "TRADEOPS_DB_PASSWORD", "TRADEOPS_RUN_SUBNETS"} <= (
        code.instance_env_vars()
    )
    assert {"TRADEOPS_SIGNING_PUBLIC_KEY"} in code.serving_requirements()
    assert len(containers()) >= 8


@pytest.mark.parametrize("task", PIPELINE_TASKS)
def test_pipeline_tasks_get_every_variable_their_code_reads(task):
    got = container(task, task)
    missing = pipeline_requires(task) - got.provided
    assert not missing, f"{task}: the code reads {sorted(missing)}, the task definition lacks them"
    assert got.environment["TRADEOPS_ENV"] == "prod"
    assert not set(got.environment) & set(got.secrets), f"{task}: a name set twice"


@pytest.mark.parametrize("task", PIPELINE_TASKS)
def test_passwords_and_keys_come_only_as_secrets(task):
    got = container(task, task)
    for name in ["TRADEOPS_DB_PASSWORD", "TRADEOPS_DB_USER", SIGNING_KEY]:
        assert name not in got.environment, f"{task}: {name} in plain environment"
    for name, value_from in got.secrets.items():
        assert value_from.startswith("${var."), (task, name, value_from)
        assert "secret_arn}" in value_from, (task, name, value_from)
    if task == "run":
        assert got.secrets[SIGNING_KEY] == "${var.signing_key_secret_arn}"
    else:
        assert SIGNING_KEY not in got.provided, f"{task} never signs, so never holds the key"


def test_the_database_credentials_are_the_rds_managed_secret():
    platform = composition()
    for task in PIPELINE_TASKS:
        got = container(task, task)
        assert got.secrets["TRADEOPS_DB_USER"] == "${var.db_secret_arn}:username::"
        assert got.secrets["TRADEOPS_DB_PASSWORD"] == "${var.db_secret_arn}:password::"
    assert platform.modules["ecs"]["db_secret_arn"] == "${module.rds.master_user_secret_arn}"
    assert platform.modules["iam"]["db_secret_arn"] == "${module.rds.master_user_secret_arn}"
    assert platform.modules["ecs"]["db_name"] == "${module.rds.database_name}"


@pytest.mark.parametrize("task", PIPELINE_TASKS)
def test_pipeline_tasks_set_no_tradeops_variable_nothing_reads(task):
    read = code.literals(PIPELINE_READERS)
    unread = {n for n in container(task, task).provided if n.startswith("TRADEOPS_")} - read
    assert not unread, f"{task}: {sorted(unread)} set by Terraform, read by no pipeline code"


def test_the_serving_container_gets_what_serve_settings_require():
    policy = container("serving", "policy")
    provided = policy.provided | code.dockerfile_env()
    for any_of in code.serving_requirements():
        assert any_of & provided, f"serving refuses to start without one of {sorted(any_of)}"
    assert not policy.secrets, "the policy container gets no injected secret"
    assert not [n for n in provided if "SIGNING_KEY" in n and "PUBLIC" not in n]


def test_the_serving_container_sets_no_tradeops_variable_nothing_reads():
    read = code.literals(SERVING_READERS)
    policy = container("serving", "policy")
    unread = {n for n in policy.provided if n.startswith("TRADEOPS_")} - read
    assert not unread, f"serving: {sorted(unread)} set by Terraform, read by no serving code"


def test_the_prediction_log_is_a_folder_on_a_writable_volume_that_is_shipped():
    """core.prediction_log writes into a local folder; an s3:// value would be a relative
    path on a read-only root filesystem."""
    policy, ship = container("serving", "policy"), container("serving", "log-ship")
    folder = text(policy.environment["TRADEOPS_PREDICTION_LOG"])
    assert folder.startswith("/")
    assert "://" not in folder
    (mount,) = [m for m in policy.mounts if folder.startswith(m["containerPath"] + "/")]
    assert mount["readOnly"] is False
    (shipped,) = [m for m in ship.mounts if m["sourceVolume"] == mount["sourceVolume"]]
    relative = folder[len(mount["containerPath"]) :]
    assert text(ship.environment["LOG_DIR"]) == shipped["containerPath"] + relative
    assert ship.environment["DESTINATION"].endswith("/predictions")
    assert ship.environment["KMS_KEY_ID"] == "${var.data_kms_key_arn}"
    assert "--sse aws:kms" in ship.command
    assert "part-*.parquet" in ship.command


@pytest.mark.parametrize("where", [(c.task, c.name) for c in containers()], ids="/".join)
def test_every_variable_a_shell_command_uses_is_set(where):
    got = container(*where)
    used = set(re.findall(r"\$\{?([A-Z][A-Z0-9_]*)", got.command))
    used -= {"MLFLOW_BACKEND_STORE_URI"}  # assigned by the command itself
    assert used <= got.provided, f"{where}: {sorted(used - got.provided)} unset"


def test_the_mlflow_server_gets_its_store_from_the_managed_secret():
    mlflow = container("mlflow", "mlflow")
    assert {"DB_USER", "DB_PASSWORD"} == set(mlflow.secrets)
    assert "MLFLOW_BACKEND_STORE_URI" in mlflow.command
    assert "u.quote(e[" in mlflow.command, "credentials are URL-quoted"
    assert "--serve-artifacts" in mlflow.command


def test_the_serving_service_the_pipeline_deploys_is_the_one_terraform_creates():
    serving = ECS.of_type("aws_ecs_service")["serving"]
    run = container("run", "run")
    assert serving["name"] == "${local.serving_service_name}"
    assert run.environment["TRADEOPS_SERVING_SERVICE"] == "${local.serving_service_name}"
    assert run.environment["TRADEOPS_ECS_CLUSTER"] == "${aws_ecs_cluster.this.name}"
    assert ECS.locals["serving_service_name"] == "${var.name}-serving"
