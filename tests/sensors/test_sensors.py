"""The sensors' decisions, tick by tick, on a real (ephemeral) Dagster instance."""

import json
import os
import time

import dagster as dg
import polars as pl
import pytest

from resources.market_data import MarketDataResource
from resources.notifier import Notifier
from sensors.drift import COOLDOWN_SECONDS, drift_sensor
from sensors.market_data import market_data_sensor
from tests.e2e.conftest import write_vendor_per_day
from tradeops_assets.core.synthetic import SyntheticSpec, generate
from tradeops_assets.keys import FEATURE_DRIFT, FEATURE_DRIFT_CHECK, MARKET_MONTHS, TRIGGER_TAG
from tradeops_assets.receiver import Receiver


def age(folder, seconds: float = 60) -> None:
    """Files as a vendor left them a while ago: stopped changing."""
    past = time.time() - seconds
    for path in folder.iterdir():
        os.utime(path, (past, past))


def tick(sensor, instance, cursor, **resources):
    context = dg.build_sensor_context(instance=instance, cursor=cursor, resources=resources)
    result = sensor(context)
    return result, context.cursor if not isinstance(result, dg.SensorResult) else result.cursor


@pytest.fixture
def vendor(tmp_path):
    bars = generate(SyntheticSpec(symbols=2, bars=60, seed=3))  # January to March 2015
    folder = write_vendor_per_day(bars.filter(pl.col("timestamp").dt.month() < 3), tmp_path / "v")
    return folder, bars


def test_new_files_become_one_run_per_month_once_they_stop_changing(vendor):
    folder, bars = vendor
    source = MarketDataResource(source=str(folder))
    with dg.DagsterInstance.ephemeral() as instance:
        fresh, _ = tick(market_data_sensor, instance, None, market_data=source)
        assert "still changing" in fresh.skip_message  # written a moment ago
        age(folder)
        result, cursor = tick(market_data_sensor, instance, None, market_data=source)
        assert "still changing" in result.skip_message  # first sight: seen once, not yet twice
        result, cursor = tick(market_data_sensor, instance, cursor, market_data=source)
        assert isinstance(result, dg.SensorResult)
        assert [r.partition_key for r in result.run_requests] == ["2015-01-01", "2015-02-01"]
        (added,) = result.dynamic_partitions_requests
        assert added.partition_keys == ["2015-01-01", "2015-02-01"]
        instance.add_dynamic_partitions(MARKET_MONTHS, added.partition_keys)
        again, cursor = tick(market_data_sensor, instance, cursor, market_data=source)
        assert isinstance(again, dg.SkipReason)
        assert "none new or changed" in again.skip_message

        write_vendor_per_day(bars.filter(pl.col("timestamp").dt.month() == 3), folder)
        writing, cursor = tick(market_data_sensor, instance, cursor, market_data=source)
        assert "still changing" in writing.skip_message  # a file half-way is not read
        age(folder)
        settled, cursor = tick(market_data_sensor, instance, cursor, market_data=source)
        assert isinstance(settled, dg.SkipReason)
        march, cursor = tick(market_data_sensor, instance, cursor, market_data=source)
        months = [r.partition_key for r in march.run_requests]
        assert "2015-03-01" in months
        keys = {r.run_key for r in march.run_requests}
        assert all(key.startswith(tuple(months)) for key in keys)  # month and its digest


def test_a_source_that_is_no_folder_is_skipped_with_the_reason():
    result, _ = tick(
        market_data_sensor,
        dg.DagsterInstance.ephemeral(),
        None,
        market_data=MarketDataResource(source="synthetic"),
    )
    assert "not a folder" in result.skip_message


def evaluate(instance, passed: bool, severity, psi: float, champion="1", data="md5a") -> None:
    instance.report_runless_asset_event(
        dg.AssetCheckEvaluation(
            asset_key=dg.AssetKey(FEATURE_DRIFT),
            check_name=FEATURE_DRIFT_CHECK,
            passed=passed,
            severity=severity,
            metadata={
                "worst_psi": psi,
                "champion_version": champion,
                "features_data_version": data,
            },
        )
    )


def test_one_error_level_breach_asks_for_one_retrain_and_alerts():
    with dg.DagsterInstance.ephemeral() as instance, Receiver() as receiver:
        notifier = Notifier(webhook_url=receiver.url)
        evaluate(instance, True, dg.AssetCheckSeverity.WARN, 0.05)
        quiet, cursor = tick(drift_sensor, instance, None, notifier=notifier)
        assert isinstance(quiet, dg.SkipReason)
        evaluate(instance, False, dg.AssetCheckSeverity.WARN, 0.15)  # moderate: a warning only
        warned, cursor = tick(drift_sensor, instance, cursor, notifier=notifier)
        assert isinstance(warned, dg.SkipReason)
        evaluate(instance, False, dg.AssetCheckSeverity.ERROR, 0.4)
        request, cursor = tick(drift_sensor, instance, cursor, notifier=notifier)
        assert isinstance(request, dg.RunRequest)
        assert request.run_key == "retrain:feature_psi:v1:md5a"
        assert request.tags[TRIGGER_TAG] == "drift_sensor"
        assert json.loads(request.tags["tradeops/figures"])["worst_psi"] == 0.4
        assert receiver.kinds() == ["retrain_requested"]
        repeat, cursor = tick(drift_sensor, instance, cursor, notifier=notifier)
        assert isinstance(repeat, dg.SkipReason)  # the same breach, seen again: nothing new
        evaluate(instance, False, dg.AssetCheckSeverity.ERROR, 0.5, data="md5b")
        cooling, cursor = tick(drift_sensor, instance, cursor, notifier=notifier)
        assert "cooling down" in cooling.skip_message  # no storm within COOLDOWN_SECONDS
        state = json.loads(cursor)
        state["requested_at"] -= COOLDOWN_SECONDS + 1
        evaluate(instance, False, dg.AssetCheckSeverity.ERROR, 0.5, data="md5c")
        later, _ = tick(drift_sensor, instance, json.dumps(state), notifier=notifier)
        assert later.run_key == "retrain:feature_psi:v1:md5c"


def test_a_check_still_running_neither_hides_the_last_verdict_nor_breaks_the_tick():
    """A new feature_drift run plans its check before judging it: the tick reads the last
    finished verdict, instead of failing on the one not given yet."""
    from dagster._core.definitions.asset_checks.asset_check_evaluation import (
        AssetCheckEvaluationPlanned,
    )

    with dg.DagsterInstance.ephemeral() as instance, Receiver() as receiver:
        evaluate(instance, False, dg.AssetCheckSeverity.ERROR, 0.4)
        planned = dg.DagsterEvent(
            event_type_value=dg.DagsterEventType.ASSET_CHECK_EVALUATION_PLANNED.value,
            job_name="monitoring_job",
            message="feature_drift's check is planned",
            event_specific_data=AssetCheckEvaluationPlanned(
                asset_key=dg.AssetKey(FEATURE_DRIFT), check_name=FEATURE_DRIFT_CHECK
            ),
        )
        instance.report_dagster_event(planned, run_id="a" * 32)
        key = dg.AssetCheckKey(dg.AssetKey(FEATURE_DRIFT), FEATURE_DRIFT_CHECK)
        (latest, *_) = instance.event_log_storage.get_asset_check_execution_history(key, 5)
        assert latest.run_id == "a" * 32  # the planned one is the newest record
        request, _ = tick(drift_sensor, instance, None, notifier=Notifier(webhook_url=receiver.url))
        assert isinstance(request, dg.RunRequest)
        assert request.run_key == "retrain:feature_psi:v1:md5a"
