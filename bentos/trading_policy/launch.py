"""Verify a stored bento whole, then become its ``bentoml serve``.

Run: ``python -m bentos.trading_policy.launch TAG --host 127.0.0.1 --port 3000``,
with the serving settings in the environment. Nothing of the bento runs before
its signature, its model's tag and its model's bundle have been checked by this
code, which comes from outside the bento; the serve process then gets the
verified tag pinned in ``TRADEOPS_POLICY_MODEL`` and writes no bytecode into the
signed tree (a planted ``.pyc`` would otherwise run instead of signed source).
It runs under ``SCHED_BATCH``, as the front door does (``core.scheduling``).

Each serve process keeps its Prometheus files in a directory of its own: BentoML
would use one per ``BENTOML_HOME`` and wipe it at every start, so the new bento
of a rollout erased the live one's counters.
Exit 2 is a bad setting, 3 a bento that is not what was signed.
"""

import argparse
import os
import shutil
import sys
import tempfile
from pathlib import Path

from bentos.trading_policy.release import bento_tag_of, verify_stored
from bentos.trading_policy.settings import MODEL_ENV, ServeSettings, scheduling_policy
from tradeops_assets.core import scheduling
from tradeops_assets.core.errors import ConfigError, TradeopsError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("bento", help="bento tag in the store at BENTOML_HOME")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args(argv)
    env = dict(os.environ)
    try:
        settings = ServeSettings.from_env(env)
        home = env.get("BENTOML_HOME") or str(Path.home() / "bentoml")
        release = verify_stored(home, args.bento, settings.public_key, settings.model_tag)
        # before exec: the arbiter and its workers inherit it
        scheduling.apply(scheduling_policy(env))
    except TradeopsError as exc:
        print(f"refusing to serve {args.bento}: {exc}", file=sys.stderr)
        return 2 if isinstance(exc, ConfigError) else 3
    tag = bento_tag_of(release.bento_dir)
    print(
        f"verified {tag} (bento digest {release.digest[:16]}, model {release.model_tag}, "
        f"key {release.bento_signature['key_id']})",
        flush=True,
    )
    env |= {"PYTHONDONTWRITEBYTECODE": "1", MODEL_ENV: release.model_tag}
    metrics_dir = tempfile.mkdtemp(prefix=f"tradeops-metrics-{args.port}-")
    command = [
        sys.executable,
        "-c",
        "import sys; from bentos.trading_policy.launch import serve; sys.exit(serve())",
        metrics_dir,
        *("serve", tag, "--host", args.host, "--port", str(args.port)),
    ]
    os.execve(command[0], command, env)
    return 0  # pragma: no cover - execve does not return


def serve() -> int:
    """``bentoml serve`` with this process's own Prometheus directory, removed at exit."""
    from bentoml._internal.configuration.containers import BentoMLContainer
    from bentoml_cli.cli import cli

    metrics_dir, *args = sys.argv[1:]
    BentoMLContainer.prometheus_multiproc_dir.set(metrics_dir)
    try:
        cli.main(args=args, prog_name="bentoml")  # exits with bentoml's own status
    finally:
        shutil.rmtree(metrics_dir, ignore_errors=True)
    return 0  # pragma: no cover


if __name__ == "__main__":
    sys.exit(main())
