"""The code location: resolves the deployment once and merges every group's definitions.

Importing this module reads the environment and nothing else: it writes no file,
sets no environment variable and reads no market data.
"""

import dagster as dg

from resources import for_deployment
from resources.deployment import Deployment
from sensors import jobs, schedules, sensors
from tradeops_assets.defs import evaluation, features, market_data, monitoring, serving, training

DEPLOYMENT = Deployment.from_env()

defs = dg.Definitions.merge(
    market_data.defs,
    features.defs,
    training.defs,
    evaluation.defs,
    serving.defs,
    monitoring.defs,
    dg.Definitions(
        resources=for_deployment(DEPLOYMENT),
        sensors=sensors,
        schedules=schedules,
        jobs=jobs,
        executor=dg.in_process_executor,
    ),
)
