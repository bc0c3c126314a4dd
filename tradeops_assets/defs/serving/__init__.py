"""Serving: the signed policy bento and its deployment behind the local serving port."""

import dagster as dg

from tradeops_assets.defs.code_versions import versioned
from tradeops_assets.defs.serving.assets import policy_bento, policy_deployment

defs = dg.Definitions(assets=versioned(policy_bento, policy_deployment))
