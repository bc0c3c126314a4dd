import dagster as dg

MONITORING_START = "2025-01-01"
"""The first day monitored; a day's partition judges what was known by its end (UTC)."""

monitoring_days = dg.DailyPartitionsDefinition(
    start_date=MONITORING_START, end_offset=1, timezone="UTC"
)
