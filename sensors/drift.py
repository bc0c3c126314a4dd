"""drift_sensor: an error-level drift or performance breach asks for exactly one retrain.

The retrain is one run of trained_policy through policy_deployment, tagged with what
triggered it; the gate still decides, so a retrained policy that is not better changes
nothing. A breach is identified by the check, the champion it judged and the feature
data it judged it on: its run key, so the same breach never runs twice however many
ticks see it. A cooldown spaces retrains, and no new one is asked for while one is in
flight.
"""

import json
import time

import dagster as dg

from resources.notifier import RETRAIN, Notifier
from tradeops_assets.keys import BREACH_CHECKS, RETRAIN_CHAIN, TRIGGER_TAG

SENSOR = "drift_sensor"
COOLDOWN_SECONDS = 600
IN_FLIGHT = [
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
]


def latest_breach(instance: dg.DagsterInstance) -> tuple[str, int, dict] | None:
    """The newest failed error-level evaluation of a breach check: (check, record id, figures).

    A check still running has a planned record and no verdict yet; the newest one
    that finished is what counts.
    """
    newest = None
    for asset, check in BREACH_CHECKS:
        key = dg.AssetCheckKey(dg.AssetKey(asset), check)
        history = instance.event_log_storage.get_asset_check_execution_history(key, 5)
        finished = ((r, finished_evaluation(r)) for r in history)
        record, evaluation = next(((r, e) for r, e in finished if e is not None), (None, None))
        if evaluation is None or evaluation.passed:
            continue
        if evaluation.severity != dg.AssetCheckSeverity.ERROR:
            continue
        figures = {k: v.value for k, v in evaluation.metadata.items()}
        if newest is None or record.id > newest[1]:
            newest = (check, record.id, figures)
    return newest


def finished_evaluation(record) -> dg.AssetCheckEvaluation | None:
    """A check execution record's verdict, or None while it is only planned."""
    if record is None or record.event is None or record.event.dagster_event is None:
        return None
    data = record.event.dagster_event.event_specific_data
    return data if isinstance(data, dg.AssetCheckEvaluation) else None


@dg.sensor(
    name=SENSOR,
    target=dg.AssetSelection.assets(*RETRAIN_CHAIN),
    minimum_interval_seconds=15,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="A feature_drift or live_performance check failing at error level requests "
    "one retrain of trained_policy through policy_deployment.",
)
def drift_sensor(context: dg.SensorEvaluationContext, notifier: Notifier):
    breach = latest_breach(context.instance)
    cursor = json.loads(context.cursor) if context.cursor else {"handled": 0, "requested_at": 0}
    if breach is None or breach[1] <= cursor["handled"]:
        return dg.SkipReason("no new error-level breach")
    check, record_id, figures = breach
    in_flight = context.instance.get_runs(
        dg.RunsFilter(tags={TRIGGER_TAG: SENSOR}, statuses=IN_FLIGHT), limit=1
    )
    waited = time.time() - cursor["requested_at"]
    if in_flight or waited < COOLDOWN_SECONDS:
        why = "a retrain is in flight" if in_flight else f"cooling down ({waited:.0f} s)"
        context.update_cursor(json.dumps({**cursor, "handled": record_id}))
        return dg.SkipReason(f"breach of {check} noted; {why}")
    champion = figures.get("champion_version", "none")
    data = figures.get("features_data_version", "")
    run_key = f"retrain:{check}:v{champion}:{str(data)[:16]}"
    context.update_cursor(json.dumps({"handled": record_id, "requested_at": time.time()}))
    notifier.alert(RETRAIN, f"retrain requested: {check} breached", figures)
    return dg.RunRequest(
        run_key=run_key,
        tags={
            TRIGGER_TAG: SENSOR,
            "tradeops/breach": check,
            "tradeops/figures": json.dumps(figures, default=str)[:1000],
        },
    )
