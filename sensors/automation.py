"""automation_sensor: new bars rebuild the features, and new features or a new champion
refresh today's monitoring, without anyone running them.

It evaluates the assets' own automation conditions (market_features, feature_drift and
live_performance are eager: they follow their upstreams). Dagster would make a default
sensor for them, but stopped; this one is named, explicit and on from the start.
"""

import dagster as dg

from tradeops_assets.keys import FEATURE_DRIFT, LIVE_PERFORMANCE, MARKET_FEATURES

automation_sensor = dg.AutomationConditionSensorDefinition(
    "automation_sensor",
    target=dg.AssetSelection.assets(MARKET_FEATURES, FEATURE_DRIFT, LIVE_PERFORMANCE),
    default_status=dg.DefaultSensorStatus.RUNNING,
    minimum_interval_seconds=15,
    description="Rebuilds market_features after new bars and refreshes today's feature_drift "
    "and live_performance after new features, a new champion or a new deployment.",
)
