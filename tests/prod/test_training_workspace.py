"""Training on Spot capacity: a retried run in a new task resumes from the checkpoint on S3."""

import shutil
from datetime import datetime
from pathlib import Path

import polars as pl
import pytest

from resources.s3 import ObjectStore
from resources.s3_stores import S3TrainingWorkspace
from tests.prod.conftest import BUCKETS
from tests.prod.test_stores import encryption, s3_resource, versions
from tradeops_assets.core import features
from tradeops_assets.core.errors import ConfigError
from tradeops_assets.core.market import EnvConfig
from tradeops_assets.core.recipe import TrainConfig
from tradeops_assets.core.training import CHECKPOINT, EpisodeReturns, on_checkpoints, train
from tradeops_assets.core.windows import Window

pytestmark = pytest.mark.xdist_group("prod")

SPAN = Window(datetime(2015, 4, 1), datetime(2015, 12, 31))
CONFIG = TrainConfig(
    timesteps=8192,
    n_envs=8,
    n_steps=128,
    batch_size=256,
    checkpoint_every=3000,
    env=EnvConfig(window=8, episode_bars=64),
)
RUN = "0f1e2d3c-root-run"


@pytest.fixture(scope="module")
def frame(synthetic_bars) -> pl.DataFrame:
    return features.compute_features(synthetic_bars)


def workspace(world, prefix: str, root: Path) -> S3TrainingWorkspace:
    return S3TrainingWorkspace(
        root=str(root),
        location=f"s3://{BUCKETS['artifacts']}/{prefix}",
        kms_key_id=world.data_key,
        s3=s3_resource(world),
    )


class ReclaimedError(Exception):
    """The Spot instance went away mid-training."""


def test_a_retry_in_a_new_task_resumes_from_the_checkpoint_on_s3(
    world, prefix, frame, tmp_path, monkeypatch
):
    uninterrupted = train(frame, CONFIG, SPAN, tmp_path / "uninterrupted")

    first = workspace(world, prefix, tmp_path / "task-1")
    folder = first.run_dir(RUN, 0)
    assert not (folder / CHECKPOINT).exists()

    def reclaimed_after_a_checkpoint(self) -> bool:
        if self.num_timesteps >= 4096 + 300:
            raise ReclaimedError
        return True

    with monkeypatch.context() as patch:
        patch.setattr(EpisodeReturns, "_on_step", reclaimed_after_a_checkpoint)
        with pytest.raises(ReclaimedError):
            train(frame, CONFIG, SPAN, folder, on_checkpoint=first.checkpoint_hook(RUN))
    shutil.rmtree(tmp_path / "task-1")  # the instance's disk goes with it

    retry = workspace(world, prefix, tmp_path / "task-2")
    resumed = train(
        frame, CONFIG, SPAN, retry.run_dir(RUN, 0), on_checkpoint=retry.checkpoint_hook(RUN)
    )
    assert resumed.resumed_from == 3072  # the reclaimed task's one checkpoint
    assert resumed.timesteps == uninterrupted.timesteps == CONFIG.timesteps
    assert resumed.weights_hash == uninterrupted.weights_hash

    bucket = BUCKETS["artifacts"]
    key = f"{prefix}/training/{RUN}/seed-0/{CHECKPOINT}"
    puts = versions(world, bucket, f"{prefix}/training")
    assert list(puts) == [key]
    assert len(puts[key]) == 3  # 3,072 from the first task; 6,144 and 8,192 from the retry
    for version in puts[key]:
        assert encryption(world, bucket, key, version) == ("aws:kms", world.data_key), version
    newest = world.s3().get_object(Bucket=bucket, Key=key)["Body"].read()
    assert newest == (tmp_path / "task-2" / RUN / "seed-0" / CHECKPOINT).read_bytes()


def test_walk_forward_folds_come_back_too_and_a_local_checkpoint_is_kept(
    world, prefix, frame, tmp_path
):
    quick = TrainConfig(
        timesteps=2048, n_envs=8, n_steps=128, batch_size=256, env=CONFIG.env, seed=3
    )
    first = workspace(world, prefix, tmp_path / "task-1")
    with on_checkpoints(first.checkpoint_hook(RUN)):
        done = train(frame, quick, SPAN, first.walk_forward_dir(RUN) / "fold-1" / "seed-3")
    shutil.rmtree(tmp_path / "task-1")

    retry = workspace(world, prefix, tmp_path / "task-2")
    again = train(frame, quick, SPAN, retry.walk_forward_dir(RUN) / "fold-1" / "seed-3")
    assert (again.resumed_from, again.weights_hash) == (quick.timesteps, done.weights_hash)

    # A checkpoint already on the task's disk is at least as new as its copy: kept.
    local = tmp_path / "task-2" / RUN / "walk-forward" / "fold-1" / "seed-3" / CHECKPOINT
    local.write_bytes(b"newer than the copy")
    retry.walk_forward_dir(RUN)
    assert local.read_bytes() == b"newer than the copy"


def test_checkpoints_are_refused_outside_the_run_or_in_a_locked_store(world, prefix, tmp_path):
    stray = tmp_path / "elsewhere" / CHECKPOINT
    stray.parent.mkdir()
    stray.write_bytes(b"not this run's")
    hook = workspace(world, prefix, tmp_path / "task").checkpoint_hook(RUN)
    with pytest.raises(ConfigError, match=f"outside run {RUN}"):
        hook(stray)
    assert versions(world, BUCKETS["artifacts"], prefix) == {}
    locked = ObjectStore(world.s3(), world.data_key, lock_days=1)
    with pytest.raises(ConfigError, match="Object Lock"):
        locked.put_replacing(BUCKETS["artifacts"], f"{prefix}/x", b"x")
