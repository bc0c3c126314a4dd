"""Stopping what a deploy started, and only that: real process trees, real PIDs, real locks."""

import os
import subprocess
import sys
import textwrap
import threading

import pytest

from resources.secrets import DevSecrets
from resources.serving import (
    DeployError,
    LocalServing,
    deploy_lock,
    family,
    free_port,
    running,
    start_time,
    stop_group,
    stop_processes,
)

# A parent in its own session whose child calls setsid() and starts a grandchild: the
# child leaves the process group and session that a killpg of the parent reaches. The
# parent prints "child grandchild" and exits when its stdin closes, orphaning the child.
TREE = textwrap.dedent(
    """
    import os, subprocess, sys
    child = subprocess.Popen([sys.executable, "-c", '''
    import os, subprocess, sys, time
    os.setsid()
    grandchild = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    print(os.getpid(), grandchild.pid, flush=True)
    time.sleep(600)
    '''], stdout=subprocess.PIPE, text=True)
    print(child.stdout.readline().strip(), flush=True)
    sys.stdin.read()
    """
)


def spawn_tree() -> tuple[subprocess.Popen, int, int]:
    parent = subprocess.Popen(
        [sys.executable, "-c", TREE],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    child, grandchild = map(int, parent.stdout.readline().split())
    return parent, child, grandchild


@pytest.fixture
def tree():
    parent, child, grandchild = spawn_tree()
    starts = {p: start_time(p) for p in (parent.pid, child, grandchild)}
    yield parent, child, grandchild
    for pid, began in starts.items():  # whatever a failing test left behind
        stop_processes([(pid, began)], grace=1)
    parent.stdin.close()
    parent.wait(10)


def test_a_worker_that_left_the_session_is_stopped_with_its_bento(tree):
    parent, child, grandchild = tree
    assert os.getsid(child) == child != os.getsid(parent.pid)  # out of killpg's reach
    assert {p for p, _ in family(parent.pid)} == {parent.pid, child, grandchild}
    stopped = stop_group(parent.pid, grace=5, start=start_time(parent.pid))
    assert set(stopped) == {parent.pid, child, grandchild}
    assert not any(running(p) for p in (parent.pid, child, grandchild))


def test_an_orphaned_worker_is_stopped_from_the_processes_recorded_at_start(tree):
    parent, child, grandchild = tree
    start = start_time(parent.pid)
    recorded = family(parent.pid, start)
    parent.stdin.close()  # the parent exits: the child is re-parented, no tree leads to it
    parent.wait(10)
    assert family(parent.pid, start) == []
    assert running(child)
    assert running(grandchild)
    stopped = stop_group(parent.pid, grace=5, start=start, known=recorded)
    assert set(stopped) == {child, grandchild}
    assert not running(child)
    assert not running(grandchild)


def test_a_pid_whose_start_time_differs_is_not_signalled():
    """What a recorded PID looks like once the kernel has given it to another process."""
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    try:
        began = start_time(other.pid)
        assert stop_processes([(other.pid, began + 1)], grace=1) == []
        assert stop_group(other.pid, grace=1, start=began - 1) == []
        assert other.poll() is None
        assert running(other.pid, began)
        assert stop_processes([(other.pid, began)], grace=5) == [other.pid]
        assert other.wait(10) is not None
    finally:
        if other.poll() is None:
            other.kill()
            other.wait()


def holder(root) -> subprocess.Popen:
    """Another process holding the deploy lock until its stdin closes."""
    code = (
        "import sys; from pathlib import Path; from resources.serving import deploy_lock\n"
        f"with deploy_lock(Path({str(root)!r}), 5):\n"
        "    print('held', flush=True); sys.stdin.read()\n"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout.readline().strip() == "held"
    return proc


def test_a_deploy_waits_for_the_lock_and_names_its_holder(tmp_path):
    root = tmp_path / "serving"
    serving = LocalServing(
        root=str(root),
        port=free_port(),
        secrets=DevSecrets(root=str(tmp_path / "keys")),
        prediction_log=str(tmp_path / "predictions"),
        bentoml_home=str(tmp_path / "bentoml"),
        lock_timeout_s=0.5,
    )
    other = holder(root)
    try:
        with pytest.raises(DeployError, match=rf"another deploy \(pid {other.pid}\) still holds"):
            serving.deploy("trading_policy:nope", "blocked", {})
        assert serving.current() is None
    finally:
        other.stdin.close()
        other.wait(10)
    # Released: the deploy gets past the lock, to the signature check of a bento never built.
    with pytest.raises(DeployError, match="refusing to deploy trading_policy:nope"):
        serving.deploy("trading_policy:nope", "free", {})


def test_deploys_under_one_lock_run_one_after_another(tmp_path):
    events: list[str] = []
    inside, release = threading.Event(), threading.Event()

    def deploy(name: str) -> None:
        with deploy_lock(tmp_path, timeout=60):
            events.append(f"{name} in")
            inside.set()
            release.wait(60)
            events.append(f"{name} out")

    first = threading.Thread(target=deploy, args=("first",))
    first.start()
    assert inside.wait(10)
    second = threading.Thread(target=deploy, args=("second",))
    second.start()
    second.join(0.5)
    assert second.is_alive()
    assert events == ["first in"]
    release.set()
    first.join(30)
    second.join(30)
    assert events == ["first in", "first out", "second in", "second out"]
    assert (tmp_path / "deploy.lock").read_text().strip() == str(os.getpid())
