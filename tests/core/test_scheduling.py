"""The serving processes' CPU policy, set in a process of its own (it is per process)."""

import subprocess
import sys

import pytest

from bentos.trading_policy.settings import SCHED_ENV as BATCH_ENV

APPLY = (
    "import sys; from tradeops_assets.core import scheduling as s; "
    "from bentos.trading_policy.settings import scheduling_policy; "
    "print(s.apply(scheduling_policy(dict(a.split('=', 1) for a in sys.argv[1:]))), "
    "s.policy_of(0))"
)


def applied(*env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", APPLY, *env], capture_output=True, text=True, timeout=60
    )


@pytest.mark.parametrize(
    ("env", "policy"), [((), "batch"), ((f"{BATCH_ENV}=batch",), "batch"),
                        ((f"{BATCH_ENV}=normal",), "normal")],
)  # fmt: skip
def test_serving_runs_batch_unless_told_normal(env, policy):
    done = applied(*env)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == [policy, policy]


def test_an_unknown_policy_is_refused_naming_the_setting():
    done = applied(f"{BATCH_ENV}=fifo")
    assert done.returncode != 0
    assert f"ConfigError: {BATCH_ENV}='fifo'" in done.stderr
