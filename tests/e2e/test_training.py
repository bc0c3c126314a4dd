import os
import signal
import subprocess
import time
from pathlib import Path

import mlflow
import numpy as np
import pytest

from tests.e2e.conftest import BIN, REPO
from tradeops_assets.cli import materialize_command

pytestmark = pytest.mark.slow
QUICK = {"timesteps": 4096, "n_envs": 8, "episode_bars": 64}


def train_config(**extra) -> dict:
    return {"ops": {"trained_policy": {"config": {**QUICK, **extra}}}}


def latest(pipe, asset):
    return pipe.materializations(asset)[0].asset_materialization.metadata


def test_trained_policy_is_tracked_registered_and_reproducible(make_pipeline):
    pipe = make_pipeline("synthetic:symbols=3,bars=700,seed=8,reversal=0.5")
    done = pipe.tradeops("demo")  # the whole graph, training with the default config
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "steps/s, ETA" in done.stdout + done.stderr  # progress in the Dagster log

    meta = latest(pipe, "trained_policy")
    features_md5 = latest(pipe, "market_features")["dvc_md5"].value
    assert meta["data_version"].value == features_md5
    assert meta["timesteps"].value >= 65_536

    mlflow.set_tracking_uri(f"sqlite:///{pipe.home / 'mlflow' / 'mlflow.db'}")
    client = mlflow.MlflowClient()
    challenger = client.get_model_version_by_alias("tradeops-policy", "challenger")
    assert challenger.run_id == meta["mlflow_run_id"].value
    run = client.get_run(challenger.run_id)
    assert run.data.tags["data_version"] == features_md5
    assert run.data.tags["weights_hash"] == meta["weights_hash"].value
    assert {"code_version", "git_commit", "seed", "dagster_run_id"} <= set(run.data.tags)
    assert {"algorithm", "timesteps", "learning_rate", "seeds"} <= set(run.data.params)
    assert any(k.startswith("reward_seed_") for k in run.data.metrics)
    assert run.info.artifact_uri.startswith((pipe.home / "mlflow").as_uri())

    policy = mlflow.pyfunc.load_model("models:/tradeops-policy@challenger")
    width = 16 * 17 + 1  # a window of feature rows and the position
    positions = policy.predict(np.zeros((5, width), np.float32))
    assert positions.shape == (5,)
    assert np.all(np.abs(positions) <= 1.0)

    # Same data version + config + seed: the same weights, in a new registry version.
    first = pipe.materialize("trained_policy", config=train_config(seeds=[3]))
    assert first.returncode == 0, first.stderr[-3000:]
    hash_a = latest(pipe, "trained_policy")["weights_hash"].value
    assert pipe.materialize("trained_policy", config=train_config(seeds=[3])).returncode == 0
    assert latest(pipe, "trained_policy")["weights_hash"].value == hash_a
    several = pipe.materialize("trained_policy", config=train_config(seeds=[3, 4]))
    assert several.returncode == 0
    multi = latest(pipe, "trained_policy")
    assert set(multi["validation_by_seed"].value) == {"3", "4"}
    assert set(multi["seed_spread"].value) == {"mean", "min", "max", "stdev"}
    versions = client.search_model_versions("name='tradeops-policy'")
    assert len(versions) == 4

    bar = pipe.tradeops("train", "--timesteps", "8192", "--seeds", "5")
    assert bar.returncode == 0, bar.stdout[-2000:] + bar.stderr[-2000:]
    lines = [ln for ln in bar.stdout.splitlines() if ln.startswith("[")]
    assert lines, bar.stdout[-2000:]
    assert "8,192/8,192 steps" in lines[-1]
    assert len(client.search_model_versions("name='tradeops-policy'")) == 5


def test_a_run_killed_during_training_resumes_from_its_checkpoint_when_re_executed(
    make_pipeline,
):
    pipe = make_pipeline("synthetic:symbols=3,bars=700,seed=8")
    pipe.register_months()
    assert (
        pipe.materialize(
            "key:market_bars or key:market_features", "2015-01-01...2017-09-01"
        ).returncode
        == 0
    )
    config = train_config(timesteps=65_536, checkpoint_every=4096)
    cmd = materialize_command("trained_policy", config=config)
    proc = subprocess.Popen(
        cmd, cwd=REPO, env=pipe.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.monotonic() + 300
    while not list((pipe.home / "training").glob("*/seed-0/checkpoint.zip")):
        assert proc.poll() is None, "training ended before its first checkpoint"
        assert time.monotonic() < deadline
        time.sleep(0.2)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert pipe.materializations("trained_policy") == []

    again = pipe.run(str(BIN / "python"), str(Path(__file__).parent / "reexecute.py"), str(REPO))
    assert again.returncode == 0, again.stderr[-3000:]
    meta = latest(pipe, "trained_policy")
    assert 0 < meta["resumed_from_step"].value < 65_536
    assert meta["timesteps"].value == 65_536  # the same step count as an uninterrupted run
