"""Sensors and schedules: they target assets by key or selection, never importing asset modules."""

from sensors.alerts import run_failure_sensor
from sensors.automation import automation_sensor
from sensors.drift import drift_sensor
from sensors.market_data import market_data_sensor
from sensors.schedules import monitoring_job, nightly_monitoring_schedule, nightly_retrain_schedule

sensors = [market_data_sensor, automation_sensor, drift_sensor, run_failure_sensor]
schedules = [nightly_monitoring_schedule, nightly_retrain_schedule]
jobs = [monitoring_job]
