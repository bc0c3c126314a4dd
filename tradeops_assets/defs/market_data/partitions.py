"""Monthly partitions that follow the source without reading it when the code loads.

``market_bars`` is partitioned by the months the source holds, as dynamic
partitions (docs/decisions/0008): loading the code location reads no market data,
and a month appears when discovery sees its bars. Discovery compares a digest of
each month's bars in the source with the digest recorded when that month was last
materialised, so a new month, or a month whose files changed (a late day, a vendor
correction), is ingested, and nothing else. ``tradeops demo`` and the
``market_data_sensor`` both plan with ``plan_months``.
"""

import itertools
from dataclasses import dataclass
from datetime import UTC, datetime

import dagster as dg

from tradeops_assets.keys import MARKET_BARS, MARKET_MONTHS

market_months = dg.DynamicPartitionsDefinition(name=MARKET_MONTHS)
SOURCE_DIGEST = "source_digest"
"""Per-partition metadata of market_bars: the digest of the month's bars as ingested."""


def month_bounds(key: str) -> tuple[datetime, datetime]:
    """[first instant, first instant of the next month) of a '%Y-%m-01' partition key, UTC."""
    start = datetime.strptime(key, "%Y-%m-%d").replace(tzinfo=UTC)
    end = start.replace(year=start.year + start.month // 12, month=start.month % 12 + 1)
    return start, end


@dataclass(frozen=True)
class MonthPlan:
    new: list[str]
    """Months the source holds that are not partitions yet."""
    changed: list[str]
    """Partitions whose bars in the source differ from what was last ingested."""

    @property
    def todo(self) -> list[str]:
        return sorted({*self.new, *self.changed})

    def __bool__(self) -> bool:
        return bool(self.new or self.changed)


def ingested_digests(instance: dg.DagsterInstance) -> dict[str, str]:
    """Per partition, the source digest its latest materialisation recorded."""
    latest: dict[str, str] = {}
    cursor = None
    while True:
        page = instance.fetch_materializations(
            dg.AssetKey(MARKET_BARS), limit=1000, cursor=cursor, ascending=True
        )
        for record in page.records:
            event = record.asset_materialization
            if event is not None and event.partition is not None:
                digest = event.metadata.get(SOURCE_DIGEST)
                latest[event.partition] = str(digest.value) if digest is not None else ""
        if not page.has_more:
            return latest
        cursor = page.cursor


def plan_months(instance: dg.DagsterInstance, digests: dict[str, str]) -> MonthPlan:
    """What to ingest, given each month's digest in the source now (``month_digests``)."""
    known = set(instance.get_dynamic_partitions(MARKET_MONTHS))
    ingested = ingested_digests(instance)
    new = sorted(m for m in digests if m not in known)
    changed = sorted(m for m in digests if m in known and ingested.get(m) != digests[m])
    return MonthPlan(new, changed)


def add_months(instance: dg.DagsterInstance, plan: MonthPlan) -> None:
    if plan.new:
        instance.add_dynamic_partitions(MARKET_MONTHS, plan.new)


def partition_ranges(instance: dg.DagsterInstance, months: list[str]) -> list[tuple[str, str]]:
    """``months`` as the fewest ranges of consecutive partitions: one run each."""
    order = {key: i for i, key in enumerate(instance.get_dynamic_partitions(MARKET_MONTHS))}
    positions = sorted(order[m] for m in months)
    keys = list(order)
    ranges = []
    for _, group in itertools.groupby(enumerate(positions), key=lambda p: p[1] - p[0]):
        run = [position for _, position in group]
        ranges.append((keys[run[0]], keys[run[-1]]))
    return ranges
