"""The promotion path through the real Dagster CLI, MLflow registry and audit log."""

import json

import mlflow
import pytest

from tradeops_assets import drill
from tradeops_assets.cli import downstream
from tradeops_assets.core.sources import DEFAULT_SOURCE
from tradeops_assets.keys import TRAINED_POLICY
from tradeops_assets.receiver import Receiver

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("promotion")]
SELECT = downstream(TRAINED_POLICY)  # the retrain chain; monitoring runs on its own days


def run_config(timesteps: int) -> dict:
    return {
        "ops": {
            "trained_policy": {"config": {"timesteps": timesteps}},
            "backtest_report": {"config": {"folds": 2, "fold_timesteps": 16_384}},
        }
    }


def served_version(pipe) -> str:
    """Asks the endpoint on the pipeline's serving port, as a trader would."""
    return drill.served_version(pipe.deployment)


def aliases(pipe) -> dict[str, str]:
    mlflow.set_tracking_uri(f"sqlite:///{pipe.home / 'mlflow' / 'mlflow.db'}")
    model = mlflow.MlflowClient().get_registered_model("tradeops-policy")
    return {alias: str(version) for alias, version in model.aliases.items()}


def test_worse_is_refused_better_is_promoted_and_the_audit_log_shows_it(make_pipeline):
    with Receiver() as receiver:
        pipe = make_pipeline(DEFAULT_SOURCE)
        pipe.extra_env["TRADEOPS_ALERT_WEBHOOK"] = receiver.url
        promote_refuse_promote(pipe, receiver)


def promote_refuse_promote(pipe, receiver) -> None:
    first = pipe.tradeops("demo")  # the first policy: judged against the baselines only
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    assert aliases(pipe) == {"challenger": "1", "champion": "1"}
    assert f"The endpoint answers on {pipe.url}" in first.stdout
    assert "curl -s" in first.stdout
    assert served_version(pipe) == "1"
    again = pipe.tradeops("demo")  # no new data: nothing retrained, the endpoint still serves
    assert again.returncode == 0, again.stderr[-3000:]
    assert "the champion's bento is already serving" in again.stdout
    assert len(pipe.materializations("trained_policy")) == 1
    pipe.stop_serving()  # the machine restarted: a rerun brings the same bento back
    restarted = pipe.tradeops("demo")
    assert restarted.returncode == 0, restarted.stderr[-3000:]
    assert served_version(pipe) == "1"
    assert len(pipe.materializations("policy_bento")) == 1
    (report,) = pipe.materializations("backtest_report")
    meta = report.asset_materialization.metadata
    assert "data:image/png;base64," in meta["plots"].value
    assert "| challenger |" in meta["metrics"].value
    html = (pipe.home / "reports" / report.run_id / "report.html").read_text()
    assert html.count("<img") == 3

    # The same recipe again: identical weights, so it does not *beat* the champion.
    same = pipe.materialize(SELECT, config=run_config(65_536))
    assert same.returncode != 0
    gate = pipe.check_evaluations()["promotion_gate"]
    assert not gate.passed
    reason = gate.metadata["reason"].value
    assert "does not beat champion v1" in reason, reason
    assert aliases(pipe) == {"challenger": "2", "champion": "1"}
    refusal = [a["tradeops"] for a in receiver.posts if a["tradeops"]["kind"] == "gate_refused"]
    assert len(refusal) == 1  # told once, with the failed criteria and why
    assert "v2" in refusal[0]["title"]
    assert "does not beat champion v1" in json.dumps(refusal[0]["details"])
    assert len(pipe.materializations("champion_policy")) == 1  # nothing downstream moved
    assert len(pipe.materializations("policy_bento")) == 1
    assert served_version(pipe) == "1"

    # A longer-trained recipe is better out of sample and across folds: promoted.
    better = pipe.materialize(SELECT, config=run_config(131_072))
    assert better.returncode == 0, better.stderr[-3000:]
    assert aliases(pipe) == {"challenger": "3", "champion": "3"}
    assert served_version(pipe) == "3"  # rebuilt, signed and swapped in by the same run
    assert receiver.kinds().count("deployment_done") == 3  # first demo, restart, v3
    assert receiver.kinds().count("gate_refused") == 1
    deployed = pipe.materializations("policy_deployment")[0].asset_materialization.metadata
    first_bento = pipe.materializations("policy_bento")[-1].asset_materialization.metadata
    assert deployed["previous_bento_tag"].value == first_bento["bento_tag"].value

    verified = pipe.tradeops("audit", "verify")
    assert verified.returncode == 0, verified.stderr
    # gate, move, deploy intent + deploy; the restart's intent + deploy; gate (refused);
    # gate, move, deploy intent + deploy
    assert "11 records" in verified.stdout
    exported = [json.loads(line) for line in pipe.tradeops("audit", "export").stdout.splitlines()]
    moves = [r["details"] for r in exported if r["action"] == "alias_move"]
    assert [(m["from_version"], m["to_version"]) for m in moves] == [(None, "1"), ("1", "3")]
    assert all(r["actor"].startswith("user:") for r in exported)
    refused = [r["details"] for r in exported if r["action"] == "promotion_gate"][1]
    assert refused["passed"] is False
    assert refused["challenger_version"] == "2"

    log = pipe.home / "audit" / "audit.jsonl"
    lines = log.read_text().splitlines()
    tampered = json.loads(lines[1])
    tampered["details"]["to_version"] = "2"
    log.write_text("\n".join([lines[0], json.dumps(tampered), *lines[2:]]) + "\n")
    broken = pipe.tradeops("audit", "verify")
    assert broken.returncode == 1
    assert "audit.jsonl:2: contents edited" in broken.stderr
