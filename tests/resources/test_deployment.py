"""The deployment is resolved from the environment alone, and bad settings are named."""

import pytest

from resources.deployment import Deployment
from tradeops_assets.core.errors import ConfigError


def test_symbol_calendars_are_pairs_and_travel_to_child_processes(tmp_path):
    env = {"TRADEOPS_HOME": str(tmp_path), "TRADEOPS_SYMBOL_CALENDARS": "AAPL=XNYS, EURUSD=24x5"}
    deployment = Deployment.from_env(env)
    assert deployment.symbol_calendars == (("AAPL", "XNYS"), ("EURUSD", "24x5"))
    child = deployment.child_env({})
    assert child["DAGSTER_HOME"] == str(tmp_path / "dagster")
    assert Deployment.from_env(child) == deployment
    with pytest.raises(ConfigError, match="TRADEOPS_SYMBOL_CALENDARS='AAPL'"):
        Deployment.from_env({"TRADEOPS_SYMBOL_CALENDARS": "AAPL"})
