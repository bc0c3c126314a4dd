"""serving_health reads the prediction log, the live bento's counters and the front door's
supervisor events: a bento that died and came back is said, a failed restart is a breach."""

import json
from datetime import UTC, datetime, timedelta

import dagster as dg
import numpy as np

from resources.notifier import Notifier
from resources.prediction_log import PredictionLogStore
from resources.secrets import DevSecrets
from resources.serving import EVENTS_FILE, LocalServing, free_port
from tradeops_assets.core.features import FEATURE_COLUMNS
from tradeops_assets.core.prediction_log import LogBatch, PredictionLog
from tradeops_assets.defs.monitoring.assets import serving_health
from tradeops_assets.keys import SERVING_HEALTH_CHECK
from tradeops_assets.receiver import Receiver


def _run(tmp_path, events: list[dict], day: datetime, receiver: Receiver):
    serving_root = tmp_path / "serving"
    serving_root.mkdir()
    (serving_root / EVENTS_FILE).write_text("".join(json.dumps(e) + "\n" for e in events))
    log = PredictionLog(tmp_path / "predictions", flush_seconds=3600)
    at_us = int((day + timedelta(hours=10)).timestamp() * 1e6)
    n = 50
    log.append(
        LogBatch(
            request_ids=[f"r{i}" for i in range(n)],
            predicted_at_us=at_us,
            bar_timestamps_us=np.full(n, at_us - 86_400_000_000),
            symbols=["SYN0000"] * n,
            positions=np.zeros(n),
            targets=np.full(n, 0.5),
            features=np.zeros((n, len(FEATURE_COLUMNS))),
            policy_version="7",
            bento_tag="trading_policy:x",
            latency_ms=4.0,
            client="desk-a",
        )
    )
    log.close()
    serving = LocalServing(  # nothing listens on its port: no counters, as after a crash
        root=str(serving_root),
        port=free_port(),
        secrets=DevSecrets(root=str(tmp_path / "keys")),
        prediction_log=str(tmp_path / "predictions"),
        bentoml_home=str(tmp_path / "bentoml"),
    )
    return dg.materialize(
        [serving_health],
        partition_key=day.strftime("%Y-%m-%d"),
        resources={
            "predictions": PredictionLogStore(root=str(tmp_path / "predictions")),
            "serving": serving,
            "notifier": Notifier(webhook_url=receiver.url),
        },
    )


def test_a_restart_is_counted_and_alerted_and_a_failed_one_is_a_breach(tmp_path):
    day = datetime(2026, 11, 30, tzinfo=UTC)
    events = [
        {"time": (day + timedelta(hours=9)).isoformat(), "event": "bento_restarted", "pid": 1},
        {"time": (day + timedelta(hours=11)).isoformat(), "event": "bento_restart_failed"},
        {"time": (day - timedelta(hours=1)).isoformat(), "event": "bento_restarted"},  # not today
    ]
    with Receiver() as receiver:
        result = _run(tmp_path, events, day, receiver)
        kinds = receiver.kinds()
    meta = result.asset_materializations_for_node("serving_health")[0].metadata
    assert (meta["answered"].value, meta["bento_restarts"].value) == (50, 1)
    assert meta["bento_restart_failures"].value == 1
    (check,) = result.get_asset_check_evaluations()
    assert check.check_name == SERVING_HEALTH_CHECK
    assert not check.passed
    assert "bento restarts 1 (1 failed)" in check.description
    assert kinds.count("serving_health_breach") == 2  # the restart, and the breach


def test_a_quiet_day_with_a_clean_restart_passes_but_still_says_so(tmp_path):
    day = datetime(2026, 11, 29, tzinfo=UTC)
    events = [{"time": (day + timedelta(hours=3)).isoformat(), "event": "bento_restarted"}]
    with Receiver() as receiver:
        result = _run(tmp_path, events, day, receiver)
        kinds = receiver.kinds()
    meta = result.asset_materializations_for_node("serving_health")[0].metadata
    assert meta["bento_restarts"].value == 1
    (check,) = result.get_asset_check_evaluations()
    assert check.passed
    assert kinds == ["serving_health_breach"]
