"""Least privilege, read from the parsed IAM policy documents and key policies."""

import re

import pytest

from tests.infra.terraform import (
    TERRAFORM,
    all_policy_statements,
    config,
    configs,
    expressions,
    literal_strings,
    module_config,
    policy_statements,
    strings,
)

ALLOWS = [st for st in all_policy_statements() if st.effect == "Allow"]
SERVICE_WILDCARD = re.compile(r"^[a-z0-9-]+:\*$")
DOC_JSON = r"\$\{data\.aws_iam_policy_document\.[\w-]+(\[[^\]]+\])?\.json\}"
WRITE = re.compile(r"^s3:(Put|Delete|Restore|Replicate|AbortMultipartUpload|PutObject)")


def test_there_are_policies_to_check():
    assert len(ALLOWS) > 50


@pytest.mark.parametrize("st", ALLOWS, ids=lambda s: s.where)
def test_no_allow_of_everything_on_everything(st):
    assert "*" not in st.actions, "Action * is never allowed"
    if "*" in st.resources:
        assert not any(SERVICE_WILDCARD.match(a) for a in st.actions), "a service wildcard on *"
        assert not any(a.endswith(":*") for a in st.actions)


@pytest.mark.parametrize("st", ALLOWS, ids=lambda s: s.where)
def test_no_service_wildcards_or_negations_in_allows(st):
    assert not any(SERVICE_WILDCARD.match(a) for a in st.actions), f"{st.actions}"
    assert not st.not_actions, "NotAction in an Allow grants everything else"
    assert not st.not_resources, "NotResource in an Allow grants everything else"
    assert st.actions, "an Allow with no literal actions cannot be checked"


@pytest.mark.parametrize("st", ALLOWS, ids=lambda s: s.where)
def test_star_resources_only_for_actions_aws_cannot_scope(st):
    """Where Resource is "*", the actions are reads, logins, creations or tag-conditioned."""
    if "*" not in st.resources:
        return
    scoped_by_condition = any(
        c.get("variable")
        in {"aws:RequestedRegion", "aws:RequestTag/project", "cloudwatch:namespace"}
        for c in st.conditions
    )
    unscopable = {
        "ecr:GetAuthorizationToken",
        "ecs:DescribeTaskDefinition",
        "ecs:RegisterTaskDefinition",  # no resource type in the Service Authorization Reference
        "ecs:DiscoverPollEndpoint",
        "logs:DescribeLogGroups",
    }
    assert scoped_by_condition or st.actions <= unscopable, f"{st.actions} on * without a condition"


def test_kms_key_policies_enumerate_their_actions():
    key_policies = [
        (cfg.name, name, body["policy"])
        for cfg in configs()
        for name, body in cfg.of_type("aws_kms_key").items()
    ]
    assert len(key_policies) >= 2
    for where, name, policy in key_policies:
        text = " ".join(strings(policy))
        assert "jsonencode" in text, f"{where} {name}: a key policy is written out"
        assert '"kms:*"' not in text, f"{where} {name}: kms:*"
        assert not re.search(r"Action\s*=\s*\"\*\"", text), f"{where} {name}: Action *"
        assert not re.search(r"Principal\s*=\s*\"\*\"|AWS\s*=\s*\"\*\"", text), (
            f"{where} {name}: any principal"
        )


def test_every_role_is_assumable_only_by_its_service_or_github():
    for cfg in configs():
        for _name, role in cfg.of_type("aws_iam_role").items():
            source = role["assume_role_policy"]
            if source == "${each.value.json}":
                source = role["for_each"]
            (doc,) = re.findall(r"data\.aws_iam_policy_document\.([\w-]+)", source)
            for st in policy_statements(cfg, doc):
                assert st.effect == "Allow"
                assert st.actions <= {"sts:AssumeRole", "sts:AssumeRoleWithWebIdentity"}, st.where
                (principal,) = st.principals
                assert principal["type"] in {"Service", "Federated"}, f"{st.where}: {principal}"
                assert "*" not in strings(principal["identifiers"]), st.where


def test_workload_roles_carry_the_permissions_boundary():
    for module in ["iam", "network", "rds", "monitoring"]:
        cfg = module_config(module)
        for name, role in cfg.of_type("aws_iam_role").items():
            assert role.get("permissions_boundary") == "${var.permissions_boundary_arn}", (
                f"{module}: {name}"
            )


def _serving():
    return policy_statements(module_config("iam"), "serving")


def test_serving_cannot_write_the_model_registry_or_artifacts():
    iam = module_config("iam")
    assert iam.locals["artifacts"] == '${var.bucket_arns["artifacts"]}'
    for st in _serving():
        touches_artifacts = any("local.artifacts" in r or '"artifacts"' in r for r in st.resources)
        if st.effect == "Allow":
            assert not touches_artifacts, f"{st.where}: serving may not touch the artifacts bucket"
            if any(a.startswith("s3:") for a in st.actions):
                assert all("local.predictions" in r for r in st.resources), st.where
                assert all(r.endswith("/predictions/*") for r in st.resources), st.where
    denies = [st for st in _serving() if st.effect == "Deny"]
    assert any(
        "s3:PutObject" in st.actions and any("local.artifacts" in r for r in st.resources)
        for st in denies
    ), "an explicit deny keeps serving off the registry"


def test_serving_reads_only_the_tokens_secret_and_never_the_signing_key():
    for st in _serving():
        secrets = {a for a in st.actions if a.startswith("secretsmanager:")}
        if st.effect == "Allow" and secrets:
            assert st.resources == ("${aws_secretsmanager_secret.serving_tokens.arn}",)
    assert any(
        st.effect == "Deny" and st.resources == ("${aws_secretsmanager_secret.signing_key.arn}",)
        for st in _serving()
    )


def test_serving_and_training_get_no_database_or_task_launch():
    for doc in ["serving", "training"]:
        for st in policy_statements(module_config("iam"), doc):
            if st.effect == "Allow":
                assert not {a for a in st.actions if a.startswith(("rds-db:", "ecs:", "iam:"))}, (
                    st.where
                )


def test_only_the_daemon_launches_tasks_and_each_role_passes_only_its_own_roles():
    """The daemon passes the run and training roles (RunTask); the pipeline passes only the
    serving roles (the endpoint's task definition revisions); nobody else passes any."""
    iam = module_config("iam")
    passes = {
        "daemon": {
            '${aws_iam_role.task["pipeline"].arn}',
            '${aws_iam_role.task["training"].arn}',
            "${aws_iam_role.platform_execution.arn}",
        },
        "pipeline": {'${aws_iam_role.task["serving"].arn}', "${aws_iam_role.execution.arn}"},
    }
    for doc in iam.data_of_type("aws_iam_policy_document"):
        for st in policy_statements(iam, doc):
            if st.effect != "Allow":
                continue
            if "ecs:RunTask" in st.actions:
                assert doc == "daemon", f"{st.where} launches tasks"
                assert any(c["variable"] == "ecs:cluster" for c in st.conditions)
            if "iam:PassRole" in st.actions:
                assert doc in passes, f"{st.where} passes roles"
                assert set(st.resources) == passes[doc], st.where
                assert {c["variable"] for c in st.conditions} == {"iam:PassedToService"}
                (condition,) = st.conditions
                assert condition["values"] == ["ecs-tasks.amazonaws.com"]


CI = module_config("ci_iam")


def test_ci_roles_are_assumable_only_through_github_oidc_for_this_repo_and_environment():
    roles = CI.of_type("aws_iam_role")
    assert set(roles) == {"ci"}
    assert roles["ci"]["for_each"] == "${data.aws_iam_policy_document.github_assume}"
    assert CI.data[("aws_iam_policy_document", "github_assume")]["for_each"] == {
        "release": "${var.release_environment}",
        "deployer": "${var.deploy_environment}",
    }
    (st,) = policy_statements(CI, "github_assume")
    assert st.effect == "Allow"
    assert st.actions == {"sts:AssumeRoleWithWebIdentity"}
    (principal,) = st.principals
    assert principal["type"] == "Federated"
    assert principal["identifiers"] == ["${local.oidc_provider_arn}"]
    conditions = {(c["test"], c["variable"]): c["values"] for c in st.conditions}
    assert conditions == {
        ("StringEquals", "${local.oidc_host}:aud"): ["sts.amazonaws.com"],
        ("StringEquals", "${local.oidc_host}:sub"): [
            "repo:${var.github_repository}:environment:${each.value}"
        ],
    }, "exact match on this repository and one environment: no StringLike, no wildcard"
    assert CI.locals["oidc_host"] == "token.actions.githubusercontent.com"
    provider = CI.of_type("aws_iam_openid_connect_provider")["github"]
    assert provider["url"] == "https://${local.oidc_host}"
    assert provider["client_id_list"] == ["sts.amazonaws.com"]
    assert "aws_iam_access_key" not in {kind for cfg in configs() for kind, _ in cfg.resources}
    assert "aws_iam_user" not in {kind for cfg in configs() for kind, _ in cfg.resources}


def test_prod_ci_environments_are_release_and_production_on_this_repository():
    boot = config(TERRAFORM / "bootstrap")
    call = boot.modules["ci"]
    assert call["github_repository"] == "${var.github_repository}"
    assert "production" in call["deploy_environment"]
    assert "release" in call["release_environment"]
    assert CI.variables["deploy_environment"]["default"] == "production"
    assert CI.variables["release_environment"]["default"] == "release"


def test_deployer_creates_roles_only_inside_the_boundary_and_never_touches_ci():
    statements = policy_statements(CI, "deployer")
    role_writers = {
        "iam:CreateRole",
        "iam:PutRolePolicy",
        "iam:AttachRolePolicy",
        "iam:PutRolePermissionsBoundary",
    }
    for st in statements:
        if st.effect == "Allow" and st.actions & role_writers:
            assert any(
                c["variable"] == "iam:PermissionsBoundary"
                and c["values"] == ["${local.arn.boundary}"]
                for c in st.conditions
            ), st.where
    denies = [st for st in statements if st.effect == "Deny"]
    assert any("iam:*" in st.actions and "${local.arn.ci_roles}" in st.resources for st in denies)
    assert any("cloudtrail:StopLogging" in st.actions for st in denies)
    for st in statements:
        if st.effect == "Allow":
            assert not st.actions & {
                "secretsmanager:GetSecretValue",
                "s3:GetObject",
                "logs:GetLogEvents",
            }, st.where


def test_release_role_reads_the_signing_key_and_pushes_only_this_stacks_images():
    statements = policy_statements(CI, "release")
    for st in statements:
        if "ecr:PutImage" in st.actions:
            assert st.resources == ("${local.arn.repositories}",)
        if "secretsmanager:GetSecretValue" in st.actions:
            assert st.resources == ("${local.arn.signing_key}",)


def test_plan_reads_configuration_never_data():
    iam_read = literal_strings(CI.locals["plan_read_actions"], CI)
    assert iam_read, "plan_read_actions is a literal list"
    assert not {
        a
        for a in iam_read
        if a in {"s3:GetObject", "secretsmanager:GetSecretValue", "logs:GetLogEvents"}
    }
    assert not {a for a in iam_read if a.endswith("*")}


def test_writes_to_buckets_are_scoped_to_prefixes():
    """No component may write anywhere in a bucket except the pipeline's own buckets."""
    iam = module_config("iam")
    for doc in ["training", "mlflow", "serving", "webserver"]:
        for st in policy_statements(iam, doc):
            if st.effect == "Allow" and any(WRITE.match(a) for a in st.actions):
                for resource in st.resources:
                    assert re.search(r"}/[a-z-]+/\*$", resource), f"{st.where}: {resource}"


def test_audit_log_is_append_only_for_the_pipeline():
    for st in policy_statements(module_config("iam"), "pipeline"):
        if st.effect == "Allow" and any("local.audit" in r for r in st.resources):
            assert not {a for a in st.actions if a.startswith("s3:Delete")}, st.where


def test_no_inline_json_policies_bypass_these_checks():
    """Identity policies are aws_iam_policy_document data sources (parsed here); only key
    policies and the ECR lifecycle policy are jsonencode'd."""
    for cfg in configs():
        for kind in [
            "aws_iam_role_policy",
            "aws_iam_policy",
            "aws_s3_bucket_policy",
            "aws_sns_topic_policy",
        ]:
            for name, body in cfg.of_type(kind).items():
                (text,) = expressions(body["policy"])
                sources = [text]
                if text == "${each.value}":  # for_each over a local map of documents
                    (local,) = re.findall(r"^\$\{local\.([\w-]+)\}$", body["for_each"])
                    sources = list(cfg.locals[local].values())
                for source in sources:
                    assert re.fullmatch(DOC_JSON, source), f"{cfg.name}: {kind}.{name}: {source}"
