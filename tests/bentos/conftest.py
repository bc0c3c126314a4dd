"""A real trained policy, signed into a real BentoML store, served by a real ``bentoml serve``.

Built once per session: training (~5 s), the store entry and the bento (~7 s) and
the server start (~5 s). Servers run with ``BENTOML_CONTAINERIZED`` so that a
worker that refuses to start ends ``bentoml serve`` instead of being respawned.
"""

import subprocess
from dataclasses import dataclass
from pathlib import Path

import httpx
import polars as pl
import pytest

from bentos.trading_policy.settings import ServeSettings
from resources.secrets import DevSecrets
from resources.serving import BentoProcess, bento_env, free_port, package_elsewhere
from tradeops_assets.core import features, signing, synthetic, tokens
from tradeops_assets.core.bundle import write_bundle
from tradeops_assets.core.market import EnvConfig
from tradeops_assets.core.recipe import PolicyRecipe, TrainConfig
from tradeops_assets.core.request import request_for as request_body
from tradeops_assets.core.training import train

REPO = Path(__file__).resolve().parents[2]
TOKEN = "test-token-0123456789abcdef0123456789"  # 37 bytes: over the 32 minimum
DESK_TOKEN = "desk-a-token-0123456789abcdef01234567"


@dataclass
class Served:
    url: str
    token: str
    log_dir: Path
    bento_tag: str
    model_tag: str
    bars: pl.DataFrame
    tokens_file: Path
    server: "Server"

    def client(self, token: str | None = None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {token or self.token}"}
        return httpx.Client(base_url=self.url, headers=headers, timeout=30)


def request_for(bars: pl.DataFrame, symbol: str, n: int, position: float = 0.0) -> dict:
    return request_body(bars.filter(pl.col("symbol") == symbol).head(n), position)


@pytest.fixture(scope="session")
def policy_bundle(tmp_path_factory) -> tuple[Path, pl.DataFrame]:
    root = tmp_path_factory.mktemp("policy")
    bars = synthetic.generate(synthetic.SyntheticSpec(symbols=3, bars=400, seed=11))
    frame = features.compute_features(bars)
    config = TrainConfig(
        timesteps=4096, n_envs=8, n_steps=128, batch_size=256, env=EnvConfig(episode_bars=64)
    )
    recipe = PolicyRecipe.by_fraction(config, frame, "md5:test")
    result = train(frame, config, recipe.train_window, root / "work")
    bundle = write_bundle(
        root / "bundle",
        config.spec.export(result.model),
        result.normaliser,
        recipe,
        {"model_version": "7", "data_version": "md5:test", "weights_hash": result.weights_hash},
        symbols=bars["symbol"].unique().to_list(),
    )
    return bundle, bars


@pytest.fixture(scope="session")
def keypair() -> signing.DevKeypair:
    return signing.DevKeypair.generate()


@pytest.fixture(scope="session")
def bento_home(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("bentoml")


def server_env(
    bento_home: Path, public_key: str, log_dir: Path, tokens_file: Path | None = None, **extra: str
) -> dict:
    settings = ServeSettings(
        TOKEN, public_key, log_dir, tokens_file=tokens_file, log_flush_seconds=0.2
    )
    return bento_env(bento_home, settings, PYTHONPATH=str(REPO), **extra)


def secrets_of(keypair: signing.DevKeypair, root: Path) -> DevSecrets:
    """Dev secrets holding this test's key pair and token, as the deployer reads them."""
    return DevSecrets.holding(root, keypair, TOKEN)


def package(bento_home: Path, bundle: Path, key: signing.DevKeypair, tmp: Path, *args) -> dict:
    return package_elsewhere(
        bundle, key.private_pem, bento_home, tmp, "--label", "model_version=7", *args
    )


@pytest.fixture(scope="session")
def packaged(bento_home, policy_bundle, keypair, tmp_path_factory) -> dict:
    return package(bento_home, policy_bundle[0], keypair, tmp_path_factory.mktemp("pkg"))


class Server(BentoProcess):
    """``bentoml serve`` as the deployer runs it, with the log beside the prediction log."""

    def __init__(self, target: str, env: dict) -> None:
        port = free_port()
        super().__init__(
            target, env, Path(env["TRADEOPS_PREDICTION_LOG"]).parent / f"serve-{port}.log", port
        )

    def wait_exit(self, timeout: float = 120) -> int | None:
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def log_text(self) -> str:
        return self.log_tail(1_000_000)


@pytest.fixture(scope="session")
def served(packaged, bento_home, keypair, policy_bundle, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("served")
    log_dir = tmp / "predictions"
    tokens_file = tmp / "keys" / "api_tokens.json"
    tokens.write_tokens(tokens_file, {"desk-a": DESK_TOKEN})
    server = Server(
        packaged["bento_tag"], server_env(bento_home, keypair.public_b64, log_dir, tokens_file)
    )
    try:
        assert server.wait_ready(), server.log_text()[-5000:]
        yield Served(
            server.url,
            TOKEN,
            log_dir,
            packaged["bento_tag"],
            packaged["model_tag"],
            policy_bundle[1],
            tokens_file,
            server,
        )
    finally:
        server.stop()
