"""The closed loop with the real dagster-daemon and webserver, as `make drift-demo` runs it.

One home, one demo: a month of the old regime sets nothing off; a month of turmoil
is picked up, judged, retrained once, gated, built, signed and served, with the
sensor named in the audit trail and every alert at the loopback receiver. Nothing
after each drop is run by the test: the daemon's sensors do it all.
"""

import json

import dagster as dg
import pytest

from resources import for_deployment
from resources.serving import alive
from tradeops_assets.drill import DriftDrill
from tradeops_assets.keys import FEATURE_DRIFT, FEATURE_DRIFT_CHECK, TRIGGER_TAG

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("drift_loop"), pytest.mark.timeout(2400)]


def test_the_daemon_retrains_on_drift_only_and_names_the_sensor_in_the_audit(tmp_path):
    lines: list[str] = []
    drill = DriftDrill(tmp_path / "home", out=lines.append)
    try:
        drill.prepare()
        drill.run_demo()
        drill.start_services()
        started = dict(drill.pids)
        assert drill.served_version() == "1"

        drill.drop(drill.calm_month(), "the old regime")
        calm = drill.watch_quiet()
        assert calm.passed or calm.severity == dg.AssetCheckSeverity.WARN  # not an error

        drill.drop(drill.shifted_month(), "turmoil")
        seconds = drill.watch_loop()
        assert seconds > 0
        assert drill.served_version() == "2"
        kinds = drill.receiver.kinds()
        receiver = drill.receiver
    finally:
        drill.stop()
    # read once nothing runs: the daemon may still be posting alerts when the loop is done
    alerts = receiver.posts
    on_disk = [json.loads(line) for line in (drill.home / "alerts.jsonl").read_text().splitlines()]
    assert not any(alive(pid) for pid in started.values())  # stopped by PID

    with dg.DagsterInstance.from_config(str(drill.deployment.dagster_home)) as instance:
        retrains = instance.get_runs(dg.RunsFilter(tags={TRIGGER_TAG: "drift_sensor"}))
        key = dg.AssetCheckKey(dg.AssetKey(FEATURE_DRIFT), FEATURE_DRIFT_CHECK)
        history = instance.event_log_storage.get_asset_check_execution_history(key, 20)
    assert len(retrains) == 1, [r.run_id for r in retrains]  # one breach, one retrain
    (retrain,) = retrains
    assert retrain.status == dg.DagsterRunStatus.SUCCESS
    assert retrain.tags["tradeops/breach"] == FEATURE_DRIFT_CHECK
    assert json.loads(retrain.tags["tradeops/figures"])["worst_psi"] >= 0.25
    breaches = [
        r
        for r in history
        if r.event
        and isinstance(r.event.dagster_event.event_specific_data, dg.AssetCheckEvaluation)
        and r.event.dagster_event.event_specific_data.severity == dg.AssetCheckSeverity.ERROR
        and not r.event.dagster_event.event_specific_data.passed
    ]
    assert breaches  # the turmoil month was judged an error-level drift

    # The audit trail names the sensor as the actor of the promotion and the deployment.
    records = for_deployment(drill.deployment)["audit"].records()
    caused = [r for r in records if r["details"]["dagster_run_id"] == retrain.run_id]
    actions = {r["action"]: r for r in caused}
    assert {"promotion_gate", "alias_move", "deploy"} <= set(actions)
    assert {r["actor"] for r in caused} == {"sensor:drift_sensor"}
    moved = actions["alias_move"]["details"]
    assert (moved["from_version"], moved["to_version"]) == ("1", "2")
    assert moved["trigger"]["breach"] == FEATURE_DRIFT_CHECK  # and why, from the run's tags

    # Alerts, in the order the desk would read them, and the same on disk.
    assert kinds[0] == "deployment_done"  # the demo's v1
    assert kinds.index("drift_breach") < kinds.index("retrain_requested")
    assert kinds.index("retrain_requested") < len(kinds) - 1 - kinds[::-1].index("deployment_done")
    assert on_disk == alerts
    breach = next(a for a in alerts if a["tradeops"]["kind"] == "drift_breach")
    assert "PSI" in breach["text"]

    steps = (
        "old-regime month judged",
        "new data picked up",
        "rebuilt",
        "drift detected",
        "retrain requested",
        "gate verdict: promoted",
        "new bento built and signed",
        "new bento serving",
        "alerts delivered",
    )
    seen = [next(i for i, line in enumerate(lines) if step in line) for step in steps]
    assert seen == sorted(seen), lines  # each step told once it happened, in order
