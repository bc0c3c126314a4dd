import io
import json
import os
import random
import signal
import subprocess
import sys
import textwrap
import time
import zipfile
from dataclasses import replace
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest
import torch

from tradeops_assets.core.errors import ConfigError
from tradeops_assets.core.market import EnvConfig
from tradeops_assets.core.recipe import TrainConfig
from tradeops_assets.core.training import CHECKPOINT, EpisodeReturns, on_checkpoints, train
from tradeops_assets.core.windows import Window

SPAN = Window(datetime(2015, 4, 1), datetime(2015, 12, 31))
QUICK = TrainConfig(
    timesteps=4096, n_envs=8, n_steps=128, batch_size=256, env=EnvConfig(window=8, episode_bars=64)
)


def test_same_inputs_same_weights_other_seed_other_weights(feature_frame, tmp_path):
    a = train(feature_frame, QUICK, SPAN, tmp_path / "a")
    b = train(feature_frame, QUICK, SPAN, tmp_path / "b")
    c = train(feature_frame, TrainConfig(**{**QUICK.__dict__, "seed": 1}), SPAN, tmp_path / "c")
    assert a.weights_hash == b.weights_hash
    assert a.weights_hash != c.weights_hash
    assert a.timesteps == QUICK.timesteps
    assert len(a.episode_returns) > 0


def test_normalisation_is_fitted_on_the_training_window_only(feature_frame, tmp_path):
    from tradeops_assets.core.market import fit_normaliser

    early = fit_normaliser(feature_frame, Window(datetime(2015, 4, 1), datetime(2015, 6, 1)))
    late = fit_normaliser(feature_frame, Window(datetime(2015, 4, 1), datetime(2015, 12, 1)))
    assert (early.mean != late.mean).any()


@pytest.mark.parametrize(
    ("config", "message"),
    [
        (dict(algorithm="DQN"), "discrete"),
        (dict(algorithm="SAC", env=EnvConfig(discrete=True)), "continuous"),
        (dict(algorithm="TD3"), "not in"),
    ],
)
def test_bad_algorithm_choices_are_refused(config, message):
    with pytest.raises(ConfigError, match=message):
        TrainConfig(**config)


def test_a_run_stopped_mid_rollout_resumes_to_the_same_weights(
    feature_frame, tmp_path, monkeypatch
):
    """Checkpoint interval (3,000) no multiple of the rollout (1,024): still the exact run."""
    config = replace(QUICK, timesteps=8192, checkpoint_every=3000)
    uninterrupted = train(feature_frame, config, SPAN, tmp_path / "a")

    class StoppedError(Exception):
        pass

    def stop_after_a_checkpoint(self) -> bool:
        if self.num_timesteps >= 4096 + 300:
            raise StoppedError
        return True

    with monkeypatch.context() as patch:
        patch.setattr(EpisodeReturns, "_on_step", stop_after_a_checkpoint)
        with pytest.raises(StoppedError):
            train(feature_frame, config, SPAN, tmp_path / "b")
    resumed = train(feature_frame, config, SPAN, tmp_path / "b")
    assert resumed.resumed_from == 3072  # the first rollout boundary past 3,000 steps
    assert resumed.timesteps == uninterrupted.timesteps == 8192
    assert resumed.weights_hash == uninterrupted.weights_hash


@pytest.mark.slow
def test_a_killed_default_run_resumes_to_the_uninterrupted_step_count_and_weights(
    feature_frame, tmp_path
):
    """The demo's own training config, SIGKILLed after its first checkpoint."""
    frame_path = tmp_path / "features.parquet"
    feature_frame.write_parquet(frame_path)
    workdir = tmp_path / "run"
    config = TrainConfig(env=EnvConfig(episode_bars=64))
    script = textwrap.dedent(f"""
        import polars as pl
        from datetime import datetime
        from pathlib import Path
        from tradeops_assets.core.market import EnvConfig
        from tradeops_assets.core.recipe import TrainConfig
        from tradeops_assets.core.training import train
        from tradeops_assets.core.windows import Window
        train(pl.read_parquet({str(frame_path)!r}), TrainConfig(env=EnvConfig(episode_bars=64)),
              Window(datetime(2015, 4, 1), datetime(2015, 12, 31)), Path({str(workdir)!r}))
    """)
    proc = subprocess.Popen([sys.executable, "-c", script])
    deadline = time.monotonic() + 300
    while not (workdir / CHECKPOINT).exists():
        assert proc.poll() is None, "training ended before its first checkpoint"
        assert time.monotonic() < deadline
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL

    resumed = train(feature_frame, config, SPAN, workdir)
    uninterrupted = train(feature_frame, config, SPAN, tmp_path / "again")
    assert 0 < resumed.resumed_from < config.timesteps == 65_536
    assert resumed.timesteps == uninterrupted.timesteps == config.timesteps
    assert resumed.weights_hash == uninterrupted.weights_hash


def _steps_in(checkpoint: bytes) -> int:
    """The step count a whole SB3 checkpoint holds (a partial zip fails to open)."""
    with zipfile.ZipFile(io.BytesIO(checkpoint)) as archive:
        assert archive.testzip() is None
        return json.loads(archive.read("data"))["num_timesteps"]


def test_the_checkpoint_hook_gets_each_whole_checkpoint_once_and_changes_nothing(
    feature_frame, tmp_path
):
    """A hook that draws random numbers (an S3 client's retry jitter) leaves the weights alone."""
    config = replace(QUICK, timesteps=8192, checkpoint_every=3000)
    plain = train(feature_frame, config, SPAN, tmp_path / "plain")
    seen: list[tuple[Path, int]] = []

    def hook(path: Path) -> None:
        seen.append((path, _steps_in(path.read_bytes())))
        random.random()
        np.random.rand()
        torch.rand(1)

    hooked = train(feature_frame, config, SPAN, tmp_path / "hooked", on_checkpoint=hook)
    assert seen == [(tmp_path / "hooked" / CHECKPOINT, n) for n in (3072, 6144, 8192)]
    assert hooked.weights_hash == plain.weights_hash


def test_a_run_without_a_hook_of_its_own_takes_the_ambient_one(feature_frame, tmp_path):
    """The walk-forward folds call train with no hook: on_checkpoints reaches them."""
    seen: list[Path] = []
    with on_checkpoints(seen.append):
        train(feature_frame, QUICK, SPAN, tmp_path / "fold")
    train(feature_frame, QUICK, SPAN, tmp_path / "after")
    assert seen == [tmp_path / "fold" / CHECKPOINT]
