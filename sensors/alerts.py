"""run_failure_sensor: every failed run is an alert, except a gate refusal, which the gate
itself announced with its failed criteria (so it is told once, with or without a daemon)."""

import dagster as dg

from resources.notifier import RUN_FAILED, Notifier
from tradeops_assets.keys import PROMOTION_GATE


def refusal(instance: dg.DagsterInstance, run_id: str) -> str | None:
    """The promotion gate's reason, if its refusal is why this run stopped."""
    for entry in instance.all_logs(run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION):
        evaluation = entry.dagster_event.event_specific_data
        if evaluation.check_name == PROMOTION_GATE and not evaluation.passed:
            return str(evaluation.description)
    return None


@dg.run_failure_sensor(
    name="run_failure_sensor",
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Alerts on every failed run, with the gate's verdict when it refused.",
)
def run_failure_sensor(context: dg.RunFailureSensorContext, notifier: Notifier):
    run = context.dagster_run
    details = {"run_id": run.run_id, "job": run.job_name, "tags": dict(run.tags)}
    if refusal(context.instance, run.run_id) is not None:
        context.log.info(f"run {run.run_id} stopped at the promotion gate, already announced")
        return
    message = context.failure_event.message or "run failed"
    notifier.alert(RUN_FAILED, f"run failed: {message[:300]}", details)
