"""The promotion path through the real Dagster CLI, MLflow registry and audit log."""

import getpass
import json
import re
from datetime import datetime, timedelta

import dagster as dg
import mlflow
import polars as pl
import pytest

from tradeops_assets import drill
from tradeops_assets.cli import downstream
from tradeops_assets.core.sources import DEFAULT_SOURCE
from tradeops_assets.keys import POLICY_BENTO, POLICY_DEPLOYMENT, TRAINED_POLICY
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


def test_worse_is_refused_better_is_promoted_and_the_audit_log_shows_it(make_pipeline, tmp_path):
    with Receiver() as receiver:
        pipe = make_pipeline(DEFAULT_SOURCE)
        pipe.extra_env["TRADEOPS_ALERT_WEBHOOK"] = receiver.url
        promote_refuse_promote(pipe, receiver, tmp_path)


def promote_refuse_promote(pipe, receiver, tmp_path) -> None:
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

    one_trail_across_tools(pipe)

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

    around_the_gate(pipe, receiver)
    named_clients(pipe)
    anchored_outside_the_files(pipe)
    what_was_live(pipe, tmp_path)
    again = pipe.tradeops("reproduce", "--policy", "1")  # the demo's policy, from DVC
    assert again.returncode == 0, again.stdout + again.stderr
    trained = pipe.materializations("trained_policy")[-1].asset_materialization.metadata
    assert f"weights hash {trained['weights_hash'].value} (equal)" in again.stdout
    assert "restored market_features" in again.stdout

    log = pipe.home / "audit" / "audit.jsonl"
    lines = log.read_text().splitlines()
    tampered = json.loads(lines[1])
    tampered["details"]["to_version"] = "2"
    log.write_text("\n".join([lines[0], json.dumps(tampered), *lines[2:]]) + "\n")
    broken = pipe.tradeops("audit", "verify")
    assert broken.returncode == 1
    assert "audit.jsonl:2: contents edited" in broken.stderr


def around_the_gate(pipe, receiver) -> None:
    """The champion alias moved by hand (as MLflow's UI allows) to v2, which the gate
    refused: packaging and deployment refuse, record and alert it, and v3 keeps serving.
    A person's recorded override then puts v2 live, named in the chain with the reason."""
    store = f"sqlite:///{pipe.home / 'mlflow' / 'mlflow.db'}"
    by_hand = mlflow.MlflowClient(tracking_uri=store, registry_uri=store)
    by_hand.set_registered_model_alias("tradeops-policy", "champion", "2")
    packaged = pipe.materialize(f"key:{POLICY_BENTO}")
    assert packaged.returncode != 0
    deployed = pipe.materialize(f"key:{POLICY_DEPLOYMENT}")
    assert deployed.returncode != 0
    assert served_version(pipe) == "3"
    assert receiver.kinds().count("gate_bypass_refused") == 2
    records = [json.loads(line) for line in pipe.tradeops("audit", "export").stdout.splitlines()]
    refused = [r for r in records if r["action"] in ("package_refused", "deploy_refused")]
    assert [r["action"] for r in refused] == ["package_refused", "deploy_refused"]
    for record in refused:
        assert record["details"]["policy_version"] == "2"
        assert "names v3: the alias was moved outside the gate" in record["details"]["reason"]
        assert record["details"]["dagster_run_id"]

    reason = "desk head: v2 for the close, v3 misprices the open"
    short = pipe.tradeops("override", "--version", "2", "--reason", "because")
    assert short.returncode == 2
    assert "an override needs a reason" in short.stderr
    done = pipe.tradeops("override", "--version", "2", "--reason", reason)
    assert done.returncode == 0, done.stderr
    live = pipe.materialize(downstream(POLICY_BENTO))
    assert live.returncode == 0, live.stderr[-3000:]
    assert served_version(pipe) == "2"
    assert receiver.kinds().count("manual_override") == 1
    records = [json.loads(line) for line in pipe.tradeops("audit", "export").stdout.splitlines()]
    (override,) = [r for r in records if r["action"] == "override"]
    assert override["actor"] == f"user:{getpass.getuser()}"
    assert override["details"] | {"reason": reason} == override["details"]
    assert (override["details"]["from_version"], override["details"]["to_version"]) == ("2", "2")
    deploy = [r for r in records if r["action"] == "deploy_requested"][-1]
    assert deploy["details"]["authority"]["kind"] == "override"
    assert deploy["details"]["authority"]["move_seq"] == override["seq"]
    meta = pipe.materializations(POLICY_DEPLOYMENT)[0].asset_materialization.metadata
    assert meta["authority"].value.startswith(f"manual override by user:{getpass.getuser()}")
    assert meta["actor"].value.startswith("user:")
    assert pipe.tradeops("audit", "verify").returncode == 0


def named_clients(pipe) -> None:
    """A desk's own token works at once, names the desk in the prediction log, and is
    revoked without a redeploy; issuing and revoking are audit records, the token is not."""
    import hashlib
    import time

    import httpx

    from tradeops_assets.core.prediction_log import read_log

    def until(call, status: int) -> httpx.Response:
        deadline = time.monotonic() + 30
        while (response := call()).status_code != status and time.monotonic() < deadline:
            time.sleep(0.2)
        assert response.status_code == status, response.text
        return response

    added = pipe.tradeops("token", "add", "desk-e2e")
    assert added.returncode == 0, added.stderr
    token = added.stdout.strip()
    assert len(token) >= 32
    body = json.loads((pipe.deployment.serving_root / "example-request.json").read_text())
    url = f"http://127.0.0.1:{pipe.deployment.serve_port}/predict"
    ask = lambda: httpx.post(url, json=body, headers={"Authorization": f"Bearer {token}"})  # noqa: E731
    answer = until(ask, 200).json()
    twice = pipe.tradeops("token", "add", "desk-e2e")
    assert twice.returncode == 2
    assert "already has a token" in twice.stderr
    assert "desk-e2e" in pipe.tradeops("token", "list").stdout.split()
    assert pipe.tradeops("token", "revoke", "desk-e2e").returncode == 0
    until(ask, 401)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        log = read_log(pipe.deployment.prediction_log)
        mine = log.filter(pl.col("request_id") == answer["request_id"])
        if mine.height:
            break
        time.sleep(0.3)
    assert mine["client"].to_list() == ["desk-e2e"]
    records = [json.loads(line) for line in pipe.tradeops("audit", "export").stdout.splitlines()]
    issued = [r for r in records if r["action"] in ("token_issued", "token_revoked")]
    fingerprint = hashlib.sha256(token.encode()).hexdigest()[:12]
    assert [(r["action"], r["details"]["token_sha256_prefix"]) for r in issued] == [
        ("token_issued", fingerprint),
        ("token_revoked", fingerprint),
    ]
    assert token not in (pipe.home / "audit" / "audit.jsonl").read_text()


def anchored_outside_the_files(pipe) -> None:
    """Every record's head is in the Dagster event log (the audit_trail asset) and the
    latest in MLflow, so a tail cut with its head rewritten to match is caught."""
    intact = pipe.tradeops("audit", "verify")
    assert intact.returncode == 0, intact.stderr
    found = re.search(r"intact: (\d+) records, head \w+, (\d+) anchors", intact.stdout)
    records, anchors = int(found[1]), int(found[2])
    assert anchors == records + 1  # one observation per record, and the MLflow tag
    with pipe.instance() as instance:
        (latest,) = instance.fetch_observations(dg.AssetKey("audit_trail"), limit=1).records
    shown = latest.event_log_entry.asset_observation.metadata
    assert (shown["seq"].value, shown["chain"].value) == (records - 1, "intact")
    assert "| override |" in shown["latest_records"].value

    audit = pipe.home / "audit"
    kept = {name: (audit / name).read_bytes() for name in ("audit.jsonl", "audit.head.json")}
    lines = kept["audit.jsonl"].decode().splitlines()[:-2]
    (audit / "audit.jsonl").write_text("".join(line + "\n" for line in lines))
    last = json.loads(lines[-1])
    (audit / "audit.head.json").write_text(json.dumps({"seq": last["seq"], "hash": last["hash"]}))
    cut = pipe.tradeops("audit", "verify")
    assert cut.returncode == 1
    assert "records were deleted" in cut.stderr
    assert "anchored record" in cut.stderr
    for name, content in kept.items():
        (audit / name).write_bytes(content)


def one_trail_across_tools(pipe) -> None:
    """Dagster links to the MLflow run and model version; MLflow names the run, links back
    to the Dagster run, and keeps the gate's record and the ledger beside the backtest."""
    store = f"sqlite:///{pipe.home / 'mlflow' / 'mlflow.db'}"
    client = mlflow.MlflowClient(tracking_uri=store, registry_uri=store)
    trained = pipe.materializations("trained_policy")[0]
    meta = trained.asset_materialization.metadata
    run_id = meta["mlflow_run_id"].value
    assert isinstance(meta["mlflow_run"], dg.UrlMetadataValue)
    assert meta["mlflow_run"].value.endswith(f"/runs/{run_id}")
    assert meta["mlflow_model_version"].value.endswith("/#/models/tradeops-policy/versions/3")
    run = client.get_run(run_id)
    assert run.data.tags["mlflow.runName"] == f"trained_policy v3 (user:{getpass.getuser()})"
    assert run.data.tags["dagster_run_url"].endswith(f"/runs/{trained.run_id}")
    assert "PPO" in run.data.tags["mlflow.note.content"]
    shipped = {a.path for a in client.list_artifacts(run_id, "backtest")}
    assert {"backtest/gate.json", "backtest/ledger.parquet", "backtest/report.html"} <= shipped
    verdicts = {
        v: client.get_model_version("tradeops-policy", v).tags["gate_verdict"] for v in "23"
    }
    assert verdicts == {"2": "refused", "3": "passed"}
    version = client.get_model_version("tradeops-policy", "3")
    assert version.description.startswith(f"Challenger from Dagster run {trained.run_id}")
    assert version.tags["data_version"] == meta["data_version"].value
    for asset in ("backtest_report", "champion_policy", "policy_bento", "policy_deployment"):
        shown = pipe.materializations(asset)[0].asset_materialization.metadata
        assert shown["mlflow_model_version"].value.endswith("/versions/3"), asset


def what_was_live(pipe, tmp_path) -> None:
    """`audit export --at` between two deployments names the first; after, the second;
    each record complete; `--bento` finds the same one."""
    records = [json.loads(line) for line in pipe.tradeops("audit", "export").stdout.splitlines()]
    deploys = [r for r in records if r["action"] == "deploy"]
    first, third = deploys[0]["details"], deploys[-2]["details"]  # v1, then v3 (v2 is last)
    since = datetime.fromisoformat(third["since"])
    cases = {"1": since - timedelta(seconds=1), "3": since + timedelta(microseconds=1)}
    for version, moment in cases.items():
        out = tmp_path / f"live-{version}.json"
        done = pipe.tradeops("audit", "export", "--at", moment.isoformat(), "--out", str(out))
        assert done.returncode == 0, done.stderr
        live = json.loads(out.read_text())
        assert live["model_version"] == version
        assert live["bento_tag"] == (first if version == "1" else third)["bento_tag"]
        assert live["deployed_by"].startswith("user:")
        assert live["signing_key_id"]
        assert live["gate_verdict"]["passed"] is True
        assert live["gate_verdict"]["challenger_version"] == version
        assert live["backtest"]["report_sha256"] == live["gate_verdict"]["report_sha256"]
        assert live["backtest"]["gate_criteria"]["criteria"]
        assert "sharpe" in live["backtest"]["metrics"]["challenger"]
        recipe = live["training_recipe"]
        assert recipe["seeds"]
        assert recipe["train_window"]["first"] < recipe["train_window"]["last"]
        assert live["data_version"] == recipe["data_version"]
        assert live["months_dvc_md5"]
        assert all(len(md5) == 32 for md5 in live["months_dvc_md5"].values())
        assert live["weights_hash"]
        assert live["git_commit"]
        assert {"torch", "stable-baselines3", "mlflow", "bentoml"} <= set(live["library_versions"])
        assert live["audit_chain"]["intact"] is True
        assert live["bento_tag"] in out.with_suffix(".html").read_text()
    assert json.loads((tmp_path / "live-3.json").read_text())["replaced"] == first["bento_tag"]
    by_tag = pipe.tradeops("audit", "export", "--bento", third["bento_tag"])
    assert json.loads(by_tag.stdout)["model_version"] == "3"
    early = pipe.tradeops("audit", "export", "--at", "2000-01-01T00:00:00Z")
    assert early.returncode == 2
    assert "nothing was serving at 2000-01-01T00:00:00+00:00" in early.stderr
