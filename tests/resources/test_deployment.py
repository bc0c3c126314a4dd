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


@pytest.mark.parametrize(
    ("value", "spare"), [(None, True), ("1", True), ("on", True), ("0", False), ("false", False)]
)
def test_the_spare_bento_is_on_unless_switched_off(tmp_path, value, spare):
    env = {"TRADEOPS_HOME": str(tmp_path)}
    if value is not None:
        env["TRADEOPS_SERVE_SPARE"] = value
    deployment = Deployment.from_env(env)
    assert deployment.serve_spare is spare
    assert Deployment.from_env(deployment.child_env({})) == deployment


def test_a_spare_switch_that_is_neither_on_nor_off_is_named():
    with pytest.raises(ConfigError, match="TRADEOPS_SERVE_SPARE='maybe': use 1 or 0"):
        Deployment.from_env({"TRADEOPS_SERVE_SPARE": "maybe"})
