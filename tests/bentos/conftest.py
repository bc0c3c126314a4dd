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

from resources.serving import BentoProcess, bento_env, free_port, package_elsewhere
from tradeops_assets.core import features, serving, signing, synthetic
from tradeops_assets.core.env import EnvConfig
from tradeops_assets.core.policy import NumpyPolicy
from tradeops_assets.core.training import TrainConfig, train

REPO = Path(__file__).resolve().parents[2]
TOKEN = "test-token-123"


@dataclass
class Served:
    url: str
    token: str
    log_dir: Path
    bento_tag: str
    model_tag: str
    bars: pl.DataFrame

    def client(self, token: str | None = None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {token or self.token}"}
        return httpx.Client(base_url=self.url, headers=headers, timeout=30)


def request_for(bars: pl.DataFrame, symbol: str, n: int, position: float = 0.0) -> dict:
    return serving.request_for(bars.filter(pl.col("symbol") == symbol).head(n), position)


@pytest.fixture(scope="session")
def policy_bundle(tmp_path_factory) -> tuple[Path, pl.DataFrame]:
    root = tmp_path_factory.mktemp("policy")
    bars = synthetic.generate(synthetic.SyntheticSpec(symbols=3, bars=400, seed=11))
    frame = features.compute_features(bars)
    config = TrainConfig(
        timesteps=4096, n_envs=8, n_steps=128, batch_size=256, env=EnvConfig(episode_bars=64)
    )
    stamps = frame["timestamp"].unique().sort()
    result = train(frame, config, (stamps[0], stamps[int(len(stamps) * 0.7)]), root / "work")
    bundle = serving.write_bundle(
        root / "bundle",
        NumpyPolicy.from_sb3(result.model),
        result.normaliser,
        config.env,
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


def server_env(bento_home: Path, public_key: str, log_dir: Path, **extra: str) -> dict:
    return bento_env(
        bento_home,
        TOKEN,
        public_key,
        log_dir,
        TRADEOPS_PREDICTION_LOG_FLUSH_SECONDS="0.2",
        PYTHONPATH=str(REPO),
        **extra,
    )


def package(bento_home: Path, bundle: Path, key: signing.DevKeypair, tmp: Path, *args) -> dict:
    env = server_env(bento_home, key.public_b64, tmp)
    return package_elsewhere(bundle, key.private_pem, env, tmp, "--label", "model_version=7", *args)


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
    server = Server(packaged["bento_tag"], server_env(bento_home, keypair.public_b64, log_dir))
    try:
        assert server.wait_ready(), server.log_text()[-5000:]
        yield Served(
            server.url,
            TOKEN,
            log_dir,
            packaged["bento_tag"],
            packaged["model_tag"],
            policy_bundle[1],
        )
    finally:
        server.stop()
