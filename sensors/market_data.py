"""market_data_sensor: new or changed vendor files become partition runs of market_bars.

A file counts once it has stopped changing: seen with the same size and modification
time on two ticks, and untouched for ``SETTLE_SECONDS``, so a file still being written
is never read half-way. Which months to run is ``plan_months``' answer (a digest of each
month's bars against the digest last ingested), the same planner ``tradeops demo``
uses; each run's key is the month and its digest, so the same bytes never run twice.
"""

import json
import time

import dagster as dg

from resources.market_data import MarketDataResource
from tradeops_assets.core.sources import parse_source
from tradeops_assets.defs.market_data.partitions import plan_months
from tradeops_assets.keys import MARKET_BARS, MARKET_MONTHS

SETTLE_SECONDS = 5.0


@dg.sensor(
    name="market_data_sensor",
    target=dg.AssetSelection.assets(MARKET_BARS),
    minimum_interval_seconds=10,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="New or changed files in the market-data folder become runs of their months.",
)
def market_data_sensor(context: dg.SensorEvaluationContext, market_data: MarketDataResource):
    files = {path: list(stat) for path, stat in parse_source(market_data.source).files().items()}
    if not files:
        return dg.SkipReason(f"source {market_data.source!r} is not a folder of files")
    cursor = json.loads(context.cursor) if context.cursor else {"ingested": {}, "seen": {}}
    changed = {p: s for p, s in files.items() if cursor["ingested"].get(p) != s}
    if not changed:
        return dg.SkipReason(f"{len(files)} file(s), none new or changed")
    now_ns = time.time_ns()
    settling = [
        p
        for p, (size, mtime) in changed.items()
        if cursor["seen"].get(p) != [size, mtime] or now_ns - mtime < SETTLE_SECONDS * 1e9
    ]
    if settling:
        context.update_cursor(json.dumps({**cursor, "seen": files}))
        return dg.SkipReason(f"{len(settling)} file(s) still changing, e.g. {settling[0]}")
    digests = market_data.month_digests()
    plan = plan_months(context.instance, digests)
    context.log.info(f"{len(changed)} new or changed file(s): months {plan.todo or 'none'}")
    return dg.SensorResult(
        run_requests=[
            dg.RunRequest(partition_key=month, run_key=f"{month}:{digests[month][:16]}")
            for month in plan.todo
        ],
        dynamic_partitions_requests=[dg.AddDynamicPartitionsRequest(MARKET_MONTHS, plan.new)]
        if plan.new
        else [],
        cursor=json.dumps({"ingested": files, "seen": files}),
    )
