"""The CI/CD pipeline: OIDC only, pinned actions, and the release order
test -> bento (build, sign, verify, containerise, push) -> plan -> reviewed apply on main."""

import re

import pytest
import yaml

from tests.infra.terraform import WORKFLOWS, module_config

PINNED = re.compile(r"^[\w.-]+/[\w./-]+@[0-9a-f]{40}$")


def load(name: str) -> dict:
    with (WORKFLOWS / name).open() as handle:
        workflow = yaml.safe_load(handle)
    workflow["on"] = workflow.pop(True, workflow.get("on"))  # YAML 1.1 reads `on:` as True
    return workflow


WORKFLOW_FILES = sorted(p.name for p in WORKFLOWS.glob("*.yml"))
RELEASE = load("release.yml")


def run_text(job: dict) -> str:
    return "\n".join(step.get("run", "") for step in job["steps"])


def test_the_workflows_exist():
    assert {"ci.yml", "release.yml"} <= set(WORKFLOW_FILES)


@pytest.mark.parametrize("name", WORKFLOW_FILES)
def test_least_privilege_token_and_pinned_actions(name):
    workflow = load(name)
    assert workflow["permissions"] == {"contents": "read"}, "read-only token unless a job asks"
    for job_name, job in workflow["jobs"].items():
        for step in job["steps"]:
            if "uses" in step:
                assert PINNED.match(step["uses"]), (
                    f"{name}/{job_name}: {step['uses']} is not pinned to a commit"
                )
            if step.get("uses", "").startswith("actions/checkout@"):
                assert step["with"]["persist-credentials"] is False
        permissions = job.get("permissions", {})
        if permissions.get("id-token") == "write":
            assert "environment" in job, (
                f"{name}/{job_name}: OIDC only inside a protected environment"
            )


@pytest.mark.parametrize("name", WORKFLOW_FILES)
def test_no_long_lived_cloud_keys(name):
    text = (WORKFLOWS / name).read_text()
    assert "secrets.AWS" not in text
    assert "aws-access-key-id" not in text
    assert not re.search(r"AWS_SECRET_ACCESS_KEY:\s*\$\{\{\s*secrets", text)
    assert "pull_request_target" not in text


def test_release_runs_in_order_and_applies_only_on_main_after_review():
    jobs = RELEASE["jobs"]
    assert set(jobs) == {"test", "bento", "plan", "apply"}
    assert jobs["bento"]["needs"] == "test"
    assert jobs["plan"]["needs"] == "bento"
    assert set(jobs["apply"]["needs"]) == {"bento", "plan"}
    assert jobs["apply"]["if"] == "github.ref == 'refs/heads/main'"
    assert jobs["apply"]["environment"] == "production"
    assert jobs["bento"]["environment"] == jobs["plan"]["environment"] == "release"
    assert RELEASE["on"]["push"]["branches"] == ["main"]
    assert RELEASE["concurrency"]["cancel-in-progress"] is False
    assert "bash .ci/run" in run_text(jobs["test"])


def test_environments_match_the_roles_trust_policies():
    ci = module_config("ci_iam")
    assert RELEASE["jobs"]["bento"]["environment"] == ci.variables["release_environment"]["default"]
    assert RELEASE["jobs"]["apply"]["environment"] == ci.variables["deploy_environment"]["default"]
    assert RELEASE["jobs"]["apply"]["env"]["ROLE_ARN"] == "${{ vars.AWS_DEPLOYER_ROLE_ARN }}"
    for job in ["bento", "plan"]:
        assert RELEASE["jobs"][job]["env"]["ROLE_ARN"] == "${{ vars.AWS_RELEASE_ROLE_ARN }}"


def test_roles_are_assumed_with_the_github_oidc_token():
    for job in ["bento", "plan", "apply"]:
        text = run_text(RELEASE["jobs"][job])
        assert "ACTIONS_ID_TOKEN_REQUEST_URL" in text
        assert "audience=sts.amazonaws.com" in text
        assert "assume-role-with-web-identity" in text
        assert RELEASE["jobs"][job]["permissions"]["id-token"] == "write"
    assert "permissions" not in RELEASE["jobs"]["test"]


def test_bento_is_built_signed_verified_containerised_pushed_and_scanned():
    text = run_text(RELEASE["jobs"]["bento"])
    order = [
        "bentos.trading_policy.package",
        "verify_stored",
        "docker build",
        "docker push",
        "aws ecr wait image-scan-complete",
        "CRITICAL",
    ]
    positions = [text.index(marker) for marker in order]
    assert positions == sorted(positions)
    assert 'rm -f "$key"' in text, "the private key leaves the runner's disk"
    assert "umask 077" in text


def test_apply_applies_exactly_the_reviewed_plan():
    plan, apply = run_text(RELEASE["jobs"]["plan"]), run_text(RELEASE["jobs"]["apply"])
    assert "-out=tfplan" in plan
    assert '"s3://${TF_STATE_BUCKET}/${PLAN_KEY}"' in plan
    assert '"s3://${TF_STATE_BUCKET}/${PLAN_KEY}"' in apply
    assert re.search(r"apply -input=false -lock-timeout=5m tfplan", apply)
    assert "-auto-approve" not in apply
    for text in [plan, apply]:
        assert "-lockfile=readonly" in text
        assert "VALIDSIG" in text, "terraform's signature is verified before it runs"
        assert "sha256sum --check" in text


def test_ci_checks_format_and_validates_every_root():
    ci = load("ci.yml")
    text = run_text(ci["jobs"]["terraform"])
    assert "terraform fmt -check -recursive" in text
    for root in ["terraform/bootstrap", "terraform/envs/dev", "terraform/envs/prod"]:
        assert root in text
    assert "bash .ci/run" in run_text(ci["jobs"]["test"])
