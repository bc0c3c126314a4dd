"""Which stored months of bars passed every bar check: the only verdict features trust.

The bar checks are the one place bars are validated, with whatever thresholds their
run was given. Anything that reads stored months (market_features, its look-ahead
check, the coming sensors) asks Dagster's check records instead of judging again
with thresholds of its own, so a threshold set for the checks reaches every reader.
"""

import dagster as dg
from dagster._core.storage.asset_check_execution_record import AssetCheckExecutionRecordStatus

from tradeops_assets.core.validation import RULES
from tradeops_assets.keys import MARKET_BARS

PASSED = AssetCheckExecutionRecordStatus.SUCCEEDED


def months_not_passed(instance: dg.DagsterInstance, months: list[str]) -> dict[str, list[str]]:
    """Per month that may not be used, why: each check that failed, never ran, or judged an
    older materialisation of it."""
    keys = [dg.AssetCheckKey(dg.AssetKey(MARKET_BARS), rule.name) for rule in RULES]
    infos = instance.event_log_storage.get_asset_check_partition_info(keys, partition_keys=months)
    verdicts = {(info.check_key.name, info.partition_key): info for info in infos}
    problems: dict[str, list[str]] = {}
    for month in months:
        for rule in RULES:
            info = verdicts.get((rule.name, month))
            if info is None:
                why = "never checked"
            elif not info.is_current:
                why = "judged an earlier materialisation"
            elif info.latest_execution_status != PASSED:
                why = info.latest_execution_status.value.lower()
            else:
                continue
            problems.setdefault(month, []).append(f"{rule.name}: {why}")
    return problems
