"""The nightly refresh of the monitoring assets, and an opt-in nightly retrain.

Both run in UTC, after the day's bars have arrived. The retrain schedule is off by
default: drift_sensor retrains when the market moves, and on unchanged data a retrain
gives the same weights, which the gate rightly refuses to call better. Its budget:
``make bench`` measures the default PPO recipe at about 13,400 steps a second on two
cores, so the 6-hour nightly window buys about 288M steps; the default retrain
(65,536 steps, plus three walk-forward folds of the same) uses about 262,000 of
them. The drift drill's retrain, from the request to the gate's verdict, took 27 s on
an idle machine and 240 s on a loaded one: the window holds hundreds
(docs/monitoring.md).
"""

import dagster as dg

from tradeops_assets.keys import MONITORING_GROUP, RETRAIN_CHAIN

monitoring_job = dg.define_asset_job(
    "monitoring_job",
    selection=dg.AssetSelection.groups(MONITORING_GROUP),
)

nightly_monitoring_schedule = dg.build_schedule_from_partitioned_job(
    monitoring_job,
    name="nightly_monitoring_schedule",
    hour_of_day=2,
    minute_of_hour=0,
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Refreshes feature_drift, live_performance and serving_health for the day "
    "just ended, at 02:00 UTC.",
)

nightly_retrain_schedule = dg.ScheduleDefinition(
    name="nightly_retrain_schedule",
    target=dg.AssetSelection.assets(*RETRAIN_CHAIN),
    cron_schedule="0 3 * * *",
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.STOPPED,
    description="Opt-in: retrains and re-gates the champion's recipe at 03:00 UTC.",
)
