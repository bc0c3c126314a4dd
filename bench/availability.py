"""Availability under faults: the path traders take, with processes killed mid-traffic.

A real deployment (``LocalServing``: the front door, its supervisor and a two-worker
bento) serves ``/predict`` to 16 connections for 60 s. At 15 s one bento worker gets
SIGKILL (BentoML replaces it; the door retries what failed before any response byte);
at 35 s the whole bento does, arbiter and workers (the supervisor starts it again from
the deploy's spec and switches the door). Reported: the share of requests that failed
over the run, and for each fault the time from the kill until the last request it
hurt (failed, or held past ``HURT_S``) was answered, with what ``serving_health``
reads (the supervisor's events).

The peer is the same deployment without the supervisor's spare bento: the
dead bento is then started cold, which takes longer than the goal allows.
"""

import os
import signal
import tempfile
import time
from pathlib import Path

import psutil

from bench.load import HURT_S
from bench.serving import TOKEN, LoadRun, _bento, _policy, _requests
from resources.secrets import DevSecrets
from resources.serving import LocalServing, free_port
from tradeops_assets.core import signing


def _recovery(hurt: list, killed: float, until: float) -> float:
    """Seconds from the kill until the last request it hurt was answered (failed, or held
    past ``HURT_S``: a door waiting for a bento fails nothing, but answers nobody), among
    those answered before ``until``, the next fault."""
    done = [d for sent, d, _ in hurt if killed <= d < until]
    return max(done) - killed if done else 0.0


def _faulted_run(
    tmp: Path, tag: str, key, body: list, spare: bool, duration: float, connections: int
) -> dict:
    """One deployment under load with both faults; what each fault hurt."""
    worker_at, bento_at = duration / 4, duration * 7 / 12
    serving = LocalServing(
        root=str(tmp / f"serving-{spare}"),
        port=free_port(),
        secrets=DevSecrets.holding(tmp / "keys", key, TOKEN),
        prediction_log=str(tmp / "predictions"),
        bentoml_home=str(tmp / "bentoml"),
        spare=spare,
    )
    try:
        deployed = serving.deploy(tag, "champion", {})
        auth = {"Authorization": f"Bearer {TOKEN}"}
        url = f"{serving.url}/predict"
        load = LoadRun(url, body, connections, duration, auth, warmup=0, track_hurt=True)
        started = time.time()
        time.sleep(worker_at)
        worker = psutil.Process(deployed["bento_pid"]).children()[0]
        worker_killed = time.time()
        os.kill(worker.pid, signal.SIGKILL)
        time.sleep(max(0.0, started + bento_at - time.time()))
        arbiter = psutil.Process(deployed["bento_pid"])
        whole = [*arbiter.children(recursive=True), arbiter]  # workers leave its group
        bento_killed = time.time()
        for process in whole:
            os.kill(process.pid, signal.SIGKILL)
        run = load.result()
        events = serving.events()
    finally:
        serving.stop()
    hurt, end = run["hurt"], started + duration + 1
    restarts = [e for e in events if e["event"] == "bento_restarted"]
    return {
        "run": run,
        "failed_pct": 100 * run["failures"] / max(1, run["requests"]),
        "worker_s": _recovery(hurt, worker_killed, bento_killed),
        "worker_hurt": _count(hurt, worker_killed, bento_killed),
        "bento_s": _recovery(hurt, bento_killed, end),
        "bento_hurt": _count(hurt, bento_killed, end),
        "restarts": restarts,
        "restart": _restart_s(restarts, bento_killed),
    }


def bench_availability(duration: float = 60.0, connections: int = 16) -> dict:
    """Faults at a quarter and at seven twelfths of the run (15 s and 35 s of 60); the
    peer is the same deployment without a spare bento, so a dead bento starts cold."""
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        bars, recipe, result = _policy(tmp)
        key = signing.DevKeypair.generate()
        tag = _bento(tmp, recipe, result, key)
        body = _requests(bars, recipe.env.window)
        ours, cold = (
            _faulted_run(tmp, tag, key, body, spare, duration, connections)
            for spare in (True, False)
        )
    run = ours["run"]

    def against_cold(key: str, unit: str, detail: str) -> dict:
        return {
            "value": round(ours[key], 2),
            "unit": unit,
            "peer": "the same deployment without a spare (a cold restart)",
            "peer_value": round(cold[key], 2),
            "detail": detail,
        }

    recovery = "s from SIGKILL to the last hurt request answered"
    return {
        "serve_faults_failed_pct": against_cold(
            "failed_pct",
            "% of requests failed",
            f"{run['requests']:,} requests over {duration:.0f} s at {connections} connections "
            f"through the front door, {run['failures']} failed ({run['shed']} shed with 503); "
            f"a worker SIGKILLed at {duration / 4:.0f} s, the whole bento at "
            f"{duration * 7 / 12:.0f} s; serving_health saw {len(ours['restarts'])} bento "
            f"restart(s) in the supervisor's events; failures by kind {run['failure_kinds']} "
            f"(peer: {cold['run']['failures']} of {cold['run']['requests']:,} failed, "
            f"{cold['run']['failure_kinds']})",
        ),
        "serve_worker_kill_recovery_s": against_cold(
            "worker_s",
            recovery,
            f"{ours['worker_hurt']} after the worker's kill (peer: {cold['worker_hurt']}); "
            "BentoML replaces the worker, the door retries",
        ),
        "serve_bento_kill_recovery_s": against_cold(
            "bento_s",
            recovery,
            f"{ours['bento_hurt']} after the whole bento's kill; the supervisor switched to "
            f"its spare in {ours['restart']} (peer: {cold['bento_hurt']}, restarted cold in "
            f"{cold['restart']})",
        ),
    }


def _count(hurt: list, killed: float, until: float) -> str:
    hit = [ok for sent, done, ok in hurt if killed <= done < until]
    return f"{hit.count(False)} requests failed and {hit.count(True)} waited over {HURT_S} s"


def _restart_s(restarts: list[dict], killed: float) -> str:
    from datetime import datetime

    after = [datetime.fromisoformat(e["time"]).timestamp() - killed for e in restarts]
    if not after:
        return "no logged restart"
    first = min(after)
    took = f"{first * 1e3:.0f} ms" if first < 1 else f"{first:.1f} s"
    return f"{took} (event logged)"
