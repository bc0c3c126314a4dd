"""The code location: resolves the deployment once and merges every group's definitions."""

import dagster as dg

from resources import for_deployment
from sensors import sensors
from tradeops_assets.defs import evaluation, features, market_data, serving, training
from tradeops_assets.deployment import Deployment

DEPLOYMENT = Deployment.from_env()
DEPLOYMENT.prepare_process()

defs = dg.Definitions.merge(
    market_data.defs(DEPLOYMENT),
    features.defs,
    training.defs,
    evaluation.defs,
    serving.defs,
    dg.Definitions(
        resources=for_deployment(DEPLOYMENT),
        sensors=sensors,
        executor=dg.in_process_executor,
    ),
)
