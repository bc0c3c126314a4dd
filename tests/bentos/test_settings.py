"""The serving process reads its settings once, names any bad one, and loads no torch."""

import subprocess
import sys
from pathlib import Path

import pytest

from bentos.trading_policy.settings import (
    ServeSettings,
    private_key_exposure,
    serving_environment,
)
from tradeops_assets.core.errors import ConfigError

REPO = Path(__file__).resolve().parents[2]
GOOD = {
    "TRADEOPS_API_TOKEN": "t" * 43,
    "TRADEOPS_SIGNING_PUBLIC_KEY": "key",
    "TRADEOPS_PREDICTION_LOG": "/var/log/predictions",
}


def test_settings_round_trip_through_the_environment_the_deployer_writes():
    settings = ServeSettings.from_env({**GOOD, "TRADEOPS_MAX_BATCH": "50"})
    assert ServeSettings.from_env(
        {**GOOD, "TRADEOPS_API_TOKEN": " " + "t" * 32 + "\n"}
    ).api_token == ("t" * 32)  # exactly the minimum, read stripped
    assert settings.max_batch == 50
    assert settings.max_bars == ServeSettings.max_bars  # a default from one place
    assert ServeSettings.from_env(settings.to_env()) == settings
    assert "TRADEOPS_SIGNING_KEY" not in settings.to_env()
    named = ServeSettings.from_env(
        {**GOOD, "TRADEOPS_API_TOKEN": "", "TRADEOPS_API_TOKENS_FILE": "/etc/tradeops/tokens.json"}
    )
    assert named.api_token is None
    assert ServeSettings.from_env(named.to_env()) == named


def test_a_serving_environment_passes_only_what_serving_reads():
    deployer = {
        **GOOD,
        "PATH": "/usr/bin",
        "TRADEOPS_SIGNING_KEY": "-----BEGIN PRIVATE KEY-----x",
        "TRADEOPS_SIGNING_KEY_FILE": "/keys/signing.pem",
        "AWS_SECRET_ACCESS_KEY": "secret",
        "DAGSTER_HOME": "/dagster",
        "TRADEOPS_MAX_BATCH": "10",
    }
    env = serving_environment(deployer, BENTOML_HOME="/store")
    assert env == {
        **GOOD,
        "PATH": "/usr/bin",
        "TRADEOPS_MAX_BATCH": "10",
        "BENTOML_HOME": "/store",
    }
    assert private_key_exposure(env) == []
    assert private_key_exposure(deployer) == ["TRADEOPS_SIGNING_KEY", "TRADEOPS_SIGNING_KEY_FILE"]
    assert private_key_exposure({"X": "...-----BEGIN OPENSSH PRIVATE KEY-----..."}) == ["X"]


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"TRADEOPS_API_TOKEN": "  "}, "neither TRADEOPS_API_TOKEN nor TRADEOPS_API_TOKENS_FILE"),
        ({"TRADEOPS_API_TOKEN": "t" * 20 + " " + "t" * 20}, "TRADEOPS_API_TOKEN holds whitespace"),
        (
            {"TRADEOPS_API_TOKEN": "  " + "t" * 31 + "\n"},
            "TRADEOPS_API_TOKEN is 31 bytes; a bearer",
        ),
        ({"TRADEOPS_SIGNING_PUBLIC_KEY": ""}, "TRADEOPS_SIGNING_PUBLIC_KEY is not set"),
        ({"TRADEOPS_SIGNING_KEY": "x"}, "TRADEOPS_SIGNING_KEY in the serving environment"),
        ({"TRADEOPS_PREDICTION_LOG": ""}, "TRADEOPS_PREDICTION_LOG is not set"),
        ({"TRADEOPS_MAX_BARS": "lots"}, "TRADEOPS_MAX_BARS='lots' is not a int"),
        ({"TRADEOPS_MAX_BATCH": "0"}, "TRADEOPS_MAX_BATCH='0' must be >= 1"),
        ({"TRADEOPS_PREDICTION_LOG_FLUSH_SECONDS": "soon"}, "FLUSH_SECONDS='soon'"),
        ({"TRADEOPS_SERVE_WORKERS": "-2"}, "TRADEOPS_SERVE_WORKERS='-2' must be >= 1"),
    ],
)
def test_a_bad_setting_is_refused_naming_the_variable(env, message):
    with pytest.raises(ConfigError, match=message):
        ServeSettings.from_env({**GOOD, **env})


def test_importing_the_service_loads_neither_torch_nor_stable_baselines3():
    probe = (
        "import sys\n"
        "import bentos.trading_policy.service\n"
        "heavy = sorted({m.split('.')[0] for m in sys.modules} & {'torch', 'stable_baselines3',"
        " 'gymnasium', 'mlflow', 'dagster'})\n"
        "print('LOADED', heavy)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], cwd=REPO, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "LOADED []" in done.stdout
