"""Per-deployment resources: the only code that knows where anything is stored.

``for_deployment`` returns the resource set for a deployment by name: ``local.py``
(everything under TRADEOPS_HOME) or ``prod.py`` (S3, PostgreSQL, ECS), each an entry
in ``RESOURCE_SETS``, with no asset edited. Importing this package loads none of
them, so ``resources.deployment`` stays cheap to import and the local deployment
never loads dagster-aws.
"""

import importlib

from resources.deployment import DEPLOYMENTS, Deployment
from tradeops_assets.core.errors import ConfigError

RESOURCE_SETS = {
    "local": "resources.local:local_resources",
    "prod": "resources.prod:prod_resources",
}
assert set(RESOURCE_SETS) == set(DEPLOYMENTS)


def for_deployment(deployment: Deployment) -> dict:
    try:
        module, _, function = RESOURCE_SETS[deployment.name].partition(":")
    except KeyError:
        raise ConfigError(
            f"no resources for deployment {deployment.name!r}; known: {sorted(RESOURCE_SETS)}"
        ) from None
    return getattr(importlib.import_module(module), function)(deployment)
