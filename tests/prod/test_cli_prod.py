"""The ``tradeops`` console script with ``TRADEOPS_ENV=prod`` on the stand-ins: every resource
is resolved (its ``dg.EnvVar`` read) before a command uses it, as a run would resolve it."""

import pytest

from resources.deployment import Deployment
from tests.prod.conftest import environment
from tradeops_assets import cli

pytestmark = pytest.mark.xdist_group("prod")


def test_audit_verify_in_prod_passes_on_a_fresh_trail_and_after_an_append(
    world, mlflow_server, tmp_path, capsys
):
    env = world.env(tmp_path, "cliaudit", mlflow_server.url)
    with environment(env):
        assert cli.main(["audit", "verify"]) == 0
        assert "audit log intact: 0 records" in capsys.readouterr().out

        deployment = Deployment.from_env()
        trail = cli._resources(deployment)["audit"]
        assert trail.location == env["TRADEOPS_S3_AUDIT"]  # resolved, not the variable
        record = trail.append("cli_test", "tester", {"note": "one record"})
        with cli._instance(deployment) as instance:
            instance.report_runless_asset_event(trail.observation(record))

        assert cli.main(["audit", "verify"]) == 0
        out = capsys.readouterr().out
        assert "audit log intact: 1 records" in out
        assert "anchors outside the files agree" in out


def test_prod_resources_resolve_only_what_a_command_touches(world, tmp_path):
    env = world.env(tmp_path, "cliresolve")
    with environment(env):
        found = cli._resources(Deployment.from_env())
        assert "mlflow" in found
        assert "audit" in found
        secrets = found["secrets"]
        assert secrets.public_key() == env["TRADEOPS_SIGNING_PUBLIC_KEY"]
        assert found["serving"].cluster == env["TRADEOPS_ECS_CLUSTER"]
        assert dict.keys(found) == {"secrets", "serving"}  # the MLflow run never started


def test_token_in_prod_refuses_and_names_secrets_manager(world, tmp_path, capsys):
    env = world.env(tmp_path, "clitoken")
    with environment(env):
        assert cli.main(["token", "add", "desk-a"]) == cli.EXIT_BAD_INPUT
    err = capsys.readouterr().err
    assert "Secrets Manager" in err
    assert "<name>/serving/tokens" in err
