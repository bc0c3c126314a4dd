"""Monitoring: is the live policy still trading the market it learned, and earning?"""

import dagster as dg

from tradeops_assets.defs.code_versions import versioned
from tradeops_assets.defs.monitoring.assets import feature_drift, live_performance, serving_health

defs = dg.Definitions(assets=versioned(feature_drift, live_performance, serving_health))
