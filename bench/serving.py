"""Load test of the policy endpoint against ``mlflow models serve`` of the same policy.

Both servers run one worker pinned to core 0; the load generator (bench/load.py)
runs in its own process on core 1. The bento answers from raw bars (it computes
the features); MLflow's pyfunc is sent ready-made observations, so it does
strictly less work per decision. Before any timing, both are asked about the
same market and must return the same target positions.

The bento is sent the same bars in both layouts of a request (``core.request``):
rows (a JSON object per bar, what the baseline measured) and columns (a list per
field); both must give the same decisions. BentoML's own ceiling on the same core,
``GET /livez``, is measured in the same run. So is the path traders take in a
deployment, through the front door (``resources/frontdoor.py``) to the same bento,
the door on the bento's core: one core serving, whatever runs on it.
"""

import base64
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import httpx
import numpy as np
import polars as pl

from bentos.trading_policy.settings import ServeSettings
from resources.frontdoor import BACKEND_FILE, proc_stat
from resources.serving import (
    BentoProcess,
    bento_env,
    free_port,
    package_elsewhere,
    stop_group,
)
from tradeops_assets.core import drift, features, request_arrow, signing, synthetic
from tradeops_assets.core.backtest import TradedPolicy
from tradeops_assets.core.bundle import required_bars, write_bundle
from tradeops_assets.core.market import EnvConfig, MarketArrays
from tradeops_assets.core.recipe import PolicyRecipe, TrainConfig
from tradeops_assets.core.request import request_for
from tradeops_assets.core.training import train

ROOT = Path(__file__).resolve().parents[1]
TOKEN = "bench-token-0123456789abcdef0123456789"
SERVER_CPU, LOAD_CPU = 0, 1
BATCH = 100
PAIRS = 3
"""Alternations of two loads compared with each other: the bento alone and through the
door, for the door's cost; /livez and /predict, for the share of BentoML's ceiling."""
CEILING_CONNECTIONS = 16
WARMUP_S = 1.0
"""Load before a run's measured span (bench.load), at the same rate."""
ARROW_HEADERS = {"Content-Type": request_arrow.MEDIA_TYPE}


def _policy(tmp: Path):
    bars = synthetic.generate(synthetic.SyntheticSpec(symbols=BATCH, bars=400, reversal=0.5))
    frame = features.compute_features(bars)
    config = TrainConfig(
        timesteps=4096, n_envs=8, n_steps=128, batch_size=256, env=EnvConfig(episode_bars=64)
    )
    recipe = PolicyRecipe.by_fraction(config, frame, "bench")
    result = train(frame, config, recipe.train_window, tmp / "work")
    return bars, recipe, result


def _register(tmp: Path, bars: pl.DataFrame, recipe: PolicyRecipe, result) -> str:
    """The same policy registered in an MLflow store of the bench's own, for its peer."""
    import mlflow

    from resources.mlflow_policy import REGISTERED_MODEL, log_policy
    from resources.tracking import ensure_experiment

    uri = f"sqlite:///{tmp / 'mlflow.db'}"
    mlflow.set_tracking_uri(uri)
    ensure_experiment(uri, "bench", (tmp / "artifacts").as_uri())
    mlflow.set_experiment("bench")
    exported = recipe.train.spec.export(result.model)
    frame = features.compute_features(bars)
    reference = drift.reference_for(frame, recipe, TradedPolicy(exported, result.normaliser))
    with mlflow.start_run():
        model_uri = log_policy(
            tmp / "work",
            tmp / "work" / "checkpoint.zip",
            recipe,
            result.normaliser,
            exported,
            reference,
        )
        mlflow.register_model(model_uri, REGISTERED_MODEL)
    return uri


def _bento(tmp: Path, recipe: PolicyRecipe, result, key: signing.DevKeypair) -> str:
    bundle = write_bundle(
        tmp / "bundle",
        recipe.train.spec.export(result.model),
        result.normaliser,
        recipe,
        {"model_version": "1"},
    )
    return package_elsewhere(bundle, key.private_pem, tmp / "bentoml", tmp)["bento_tag"]


def _requests(bars: pl.DataFrame, window: int, columnar: bool = False) -> list[dict]:
    need = required_bars(window) + 16
    return [
        request_for(part.tail(need), columnar=columnar)
        for _, part in bars.group_by("symbol", maintain_order=True)
    ]


def _observations(bars: pl.DataFrame, result, window: int) -> list[list[float]]:
    """The training pipeline's observation at each symbol's last bar, from the same bars."""
    need = required_bars(window) + 16
    tail = bars.sort("symbol", "timestamp").group_by("symbol", maintain_order=True).tail(need)
    arrays = MarketArrays.from_features(features.compute_features(tail), result.normaliser)
    rows = arrays.ends - 1
    obs = np.zeros((rows.size, window * arrays.n_features + 1), np.float32)
    for i, row in enumerate(rows):
        obs[i, :-1] = arrays.features[row - window + 1 : row + 1].reshape(-1)
    return obs.tolist()


class LoadRun:
    """``bench.load`` in its own process on the load core, started now, read with ``result``."""

    def __init__(
        self,
        url: str,
        bodies: list,
        connections: int,
        duration: float,
        headers: dict,
        method: str = "POST",
        warmup: float = WARMUP_S,
        **options,
    ) -> None:
        """``options``: more of ``bench.load``'s spec (``track_hurt``)."""
        spec = {
            **options,
            "method": method,
            "url": url,
            "bodies": bodies,
            "connections": connections,
            "duration": duration,
            "warmup": warmup,
            "headers": headers,
            "cpu": LOAD_CPU if os.cpu_count() and os.cpu_count() > 1 else None,
        }
        with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
            json.dump(spec, f)
        self.spec_file, self.timeout = f.name, warmup + duration + 300
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "bench.load", f.name],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def result(self) -> dict:
        try:
            out, err = self.proc.communicate(timeout=self.timeout)
        finally:
            os.unlink(self.spec_file)
        if self.proc.returncode:
            raise RuntimeError(f"bench.load failed ({self.proc.returncode}): {err[-2000:]}")
        return json.loads(out)


def _load(
    url: str, bodies: list, connections: int, duration: float, headers: dict, method: str = "POST"
) -> dict:
    return LoadRun(url, bodies, connections, duration, headers, method).result()


def _mlflow_server(uri: str, env: dict, log: Path) -> tuple[subprocess.Popen, str]:
    port = free_port()
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [
                *(str(Path(sys.executable).with_name("mlflow")), "models", "serve"),
                *("-m", "models:/tradeops-policy/1", "--env-manager", "local"),
                *("-h", "127.0.0.1", "-p", str(port), "-w", "1"),
            ],
            env={
                **env,
                "MLFLOW_TRACKING_URI": uri,
                # it launches `uvicorn` by name: this venv's, not whatever is on PATH
                "PATH": f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
            },
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=lambda: os.sched_setaffinity(0, {SERVER_CPU}),
        )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"mlflow models serve exited: {log.read_text()[-2000:]}")
        try:
            if httpx.get(f"{url}/ping", timeout=2).status_code == 200:
                return proc, url
        except httpx.TransportError:
            time.sleep(0.3)
    raise SystemExit("mlflow models serve did not come up")


def _front_door(
    tmp: Path, bento: BentoProcess, settings: ServeSettings, name: str = "door", *options: str
) -> tuple[int, str]:
    """``python -m resources.frontdoor`` forwarding to ``bento``, pinned to the bento's core."""
    state = tmp / name
    state.mkdir(mode=0o700)
    (state / BACKEND_FILE).write_text(json.dumps({"port": bento.port, "bento_tag": bento.target}))
    port = free_port()
    log = tmp / f"frontdoor-{name}.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [
                *(sys.executable, "-m", "resources.frontdoor"),
                *("--port", str(port), "--state", str(state)),
                *("--max-body-bytes", str(settings.max_body_bytes)),
                *("--max-in-flight", str(settings.max_in_flight)),
                *options,
            ],
            cwd=ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=lambda: os.sched_setaffinity(0, {SERVER_CPU}),
        )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            break
        try:
            if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                return proc.pid, url
        except httpx.TransportError:
            time.sleep(0.2)
    stop_group(proc.pid)
    raise RuntimeError(f"the front door did not come up: {log.read_text()[-1000:]}")


def _levels(loads: dict[str, tuple], connections, duration, headers) -> dict:
    """``loads``: name -> (url, bodies) or (url, bodies, headers of its own); one run of
    each at every connection count."""
    out = {}
    for c in connections:
        for name, (url, bodies, *own) in loads.items():
            out[f"{name}@{c}"] = _load(url, bodies, c, duration, {**headers, **dict(*own)})
    return out


def bench_serving(
    connections=(1, 16, 64, 256), duration: float = 5.0, max_in_flight: int | None = None
) -> dict:
    """``max_in_flight``: the service's cap on requests in flight (its default if None)."""
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        bars, recipe, result = _policy(tmp)
        window = recipe.env.window
        key = signing.DevKeypair.generate()
        # one worker on one core, as the baseline and the peer
        settings = ServeSettings(TOKEN, key.public_b64, tmp / "predictions", workers=1)
        if max_in_flight is not None:
            settings = replace(settings, max_in_flight=max_in_flight)
        env = bento_env(tmp / "bentoml", settings)
        tracking = _register(tmp, bars, recipe, result)
        tag = _bento(tmp, recipe, result, key)
        requests = _requests(bars, window)
        columnar = _requests(bars, window, columnar=True)
        arrow = request_arrow.encode(columnar)
        observations = _observations(bars, result, window)
        auth = {"Authorization": f"Bearer {TOKEN}"}

        bento = BentoProcess(tag, env, tmp / "bento.log", cpus={SERVER_CPU})
        try:
            if not bento.wait_ready():
                raise SystemExit(f"bento did not start: {bento.log_tail()}")
            ours_batch, ours_columnar = (
                httpx.post(
                    f"{bento.url}/predict_batch", json={"requests": r}, headers=auth, timeout=60
                ).json()
                for r in (requests, columnar)
            )
            ours_arrow = httpx.post(
                f"{bento.url}/predict_batch",
                content=arrow,
                headers={**auth, **ARROW_HEADERS},
                timeout=60,
            ).json()
            targets = [[a["target_position"] for a in answers] for answers in (
                ours_batch, ours_columnar, ours_arrow
            )]  # fmt: skip
            if targets[1:] != targets[:1] * 2:
                raise SystemExit("bench: the bento decides differently on rows, columns, Arrow")
            arrow_load = (
                f"{bento.url}/predict_batch",
                [{"base64": base64.b64encode(arrow).decode()}],
                ARROW_HEADERS,
            )
            ours = _levels(
                {
                    "predict": (f"{bento.url}/predict", requests),
                    "batch": (f"{bento.url}/predict_batch", [{"requests": requests}]),
                    "predict_columnar": (f"{bento.url}/predict", columnar),
                    "batch_columnar": (f"{bento.url}/predict_batch", [{"requests": columnar}]),
                    "batch_arrow": arrow_load,
                },
                connections,
                duration,
                auth,
            )
            # BentoML's own ceiling on this core, its HTTP stack answering a no-op probe,
            # alternated with /predict at the sweep's peak: the machine's speed drifts.
            layout, at = _peak(ours, connections)
            bodies = requests if layout == "predict" else columnar
            for k in range(PAIRS):
                ours[f"pair_livez{k}"] = _load(
                    f"{bento.url}/livez", [None], CEILING_CONNECTIONS, duration, {}, method="GET"
                )
                ours[f"pair_peak{k}"] = _load(f"{bento.url}/predict", bodies, at, duration, auth)
            sizes = {
                "rows": len(json.dumps({"requests": requests})),
                "columns": len(json.dumps({"requests": columnar})),
                "arrow": len(arrow),
            }
            # The same bento behind the front door, as traders reach it in a deployment. The
            # door is measured last and may fail alone: the direct figures stand without it.
            try:
                door_pid, door = _front_door(tmp, bento, settings)
                alone_pid, alone = _front_door(
                    tmp, bento, settings, "door-alone", "--coalesce-requests", "1"
                )
            except (RuntimeError, OSError) as exc:
                print(f"bench: front door not measured: {exc}", file=sys.stderr)
                door_pid, door = None, None
            if door is not None:
                try:
                    ours.update(
                        _levels(
                            {
                                "door_predict": (f"{door}/predict", requests),
                                "door_batch_columnar": (
                                    f"{door}/predict_batch",
                                    [{"requests": columnar}],
                                ),
                                "door_batch_arrow": (
                                    arrow_load[0].replace(bento.url, door),
                                    *arrow_load[1:],
                                ),
                            },
                            connections,
                            duration,
                            auth,
                        )
                    )
                    # The door's cost is a small difference of two large figures taken
                    # minutes apart on a machine whose speed drifts: alternate them instead.
                    # The second door sends each request on its own, as before coalescing.
                    at = _pair_at(connections)
                    runs = (
                        ("pair_bento", bento.url, None),
                        ("pair_door", door, door_pid),
                        ("pair_alone", alone, alone_pid),
                    )
                    for k in range(PAIRS):
                        for name, url, pid in runs:
                            cpu = _cpu_s(pid) if pid else 0.0
                            run = _load(f"{url}/predict", requests, at, duration, auth)
                            if pid:
                                sent = run["rps"] * (run["span_s"] + WARMUP_S)
                                run["door_cpu_us"] = (_cpu_s(pid) - cpu) / sent * 1e6
                            ours[f"{name}{k}@{at}"] = run
                finally:
                    stop_group(door_pid)
                    stop_group(alone_pid)
        finally:
            bento.stop()
        proc, url = _mlflow_server(tracking, env, tmp / "mlflow.log")
        try:
            peer_batch = httpx.post(
                f"{url}/invocations", json={"inputs": observations}, timeout=60
            ).json()["predictions"]
            peer = _levels(
                {
                    "predict": (f"{url}/invocations", [{"inputs": [o]} for o in observations]),
                    "batch": (f"{url}/invocations", [{"inputs": observations}]),
                },
                connections,
                duration,
                {},
            )
        finally:
            stop_group(proc.pid)
    gap = float(np.max(np.abs(np.asarray([a["target_position"] for a in ours_batch]) - peer_batch)))
    if gap > 1e-4:
        raise SystemExit(f"bench: the bento and MLflow disagree on the same market by {gap:.2e}")
    return _results(ours, peer, connections, gap, sizes)


def _peak(levels: dict, connections) -> tuple[str, int]:
    """The /predict layout ("predict" rows, "predict_columnar") and connections of the peak."""
    return max(
        ((name, c) for name in ("predict", "predict_columnar") for c in connections),
        key=lambda nc: levels[f"{nc[0]}@{nc[1]}"]["rps"],
    )


def _cpu_s(pid: int) -> float:
    """User and system CPU seconds ``pid`` has used (``/proc/<pid>/stat`` fields 14, 15)."""
    fields = proc_stat(pid)
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _median_at(values: list[float]) -> int:
    """Which of ``PAIRS`` alternations gave the median figure (its peer is reported)."""
    return int(np.argsort(values)[len(values) // 2])


def _pair_at(connections) -> int:
    return 64 if 64 in connections else max(connections)


def _best(levels: dict, prefix: str, connections) -> tuple[int, dict]:
    return max(((c, levels[f"{prefix}@{c}"]) for c in connections), key=lambda item: item[1]["rps"])


def _failed(run: dict) -> str:
    shed = f", {run['shed']} shed with 503" if run.get("shed") else ""
    return f"{run['failures']} failed{shed}"


def _table(levels: dict, connections, suffix: str = "") -> str:
    parts = []
    for c in connections:
        p, b = levels[f"predict{suffix}@{c}"], levels[f"batch{suffix}@{c}"]
        parts.append(
            f"{c} conn: predict {p['rps']:,.0f}/s p50 {p['p50_ms']:.1f} ms p99 {p['p99_ms']:.1f} ms"
            f" ({_failed(p)}); batch {b['rps'] * BATCH:,.0f} decisions/s "
            f"p99 {b['p99_ms']:.0f} ms ({_failed(b)})"
        )
    return "; ".join(parts)


def _results(ours: dict, peer: dict, connections, gap: float, sizes: dict[str, int]) -> dict:
    c_ours, p_ours = _best(ours, "predict", connections)
    c_peer, p_peer = _best(peer, "predict", connections)
    cc_ours, pc_ours = _best(ours, "predict_columnar", connections)
    cb_ours, b_ours = _best(ours, "batch", connections)
    cb_peer, b_peer = _best(peer, "batch", connections)
    cbc_ours, bc_ours = _best(ours, "batch_columnar", connections)
    cba_ours, ba_ours = _best(ours, "batch_arrow", connections)
    # p99 at the connection count that gives the best throughput, and at 64 for the goal
    at = 64 if 64 in connections else c_ours
    at64_ours, at64_peer = ours[f"predict@{at}"], peer[f"predict@{at}"]
    most = max(connections)
    at_most_ours, at_most_peer = ours[f"predict@{most}"], peer[f"predict@{most}"]
    detail = (
        f"bento, rows: {_table(ours, connections)} || bento, columns: "
        f"{_table(ours, connections, '_columnar')} || mlflow: {_table(peer, connections)}; "
        f"same decisions to {gap:.1e}, and the same on rows and columns"
    )
    layout, peak_c = _peak(ours, connections)
    ceilings = [(ours[f"pair_livez{k}"], ours[f"pair_peak{k}"]) for k in range(PAIRS)]
    ceiling_shares = [100 * p["rps"] / c["rps"] for c, p in ceilings]
    ceiling = ceilings[_median_at(ceiling_shares)][0]
    share = p_ours["rps"] / ceiling["rps"]
    door, through_door = "", {}
    if f"door_predict@{most}" in ours:
        cd, pd = _best(ours, "door_predict", connections)
        cbd, bd = _best(ours, "door_batch_columnar", connections)
        door = (
            f" Through the front door (on the same core): /predict {pd['rps']:,.0f}/s at {cd} "
            f"connections, p99 {ours[f'door_predict@{at}']['p99_ms']:.1f} ms at {at} and "
            f"{ours[f'door_predict@{most}']['p99_ms']:.1f} ms at {most} "
            f"({_failed(ours[f'door_predict@{most}'])}); /predict_batch with columns "
            f"{bd['rps'] * BATCH:,.0f} decisions/s at {cbd} connections."
        )
        cda, bda = _best(ours, "door_batch_arrow", connections)
        pair_at = _pair_at(connections)
        pairs = [
            (ours[f"pair_bento{k}@{pair_at}"], ours[f"pair_door{k}@{pair_at}"])
            for k in range(PAIRS)
        ]
        shares = [100 * d["rps"] / b["rps"] for b, d in pairs]
        added = [d["p99_ms"] - b["p99_ms"] for b, d in pairs]
        middle = _median_at(shares)
        alone = [(b, ours[f"pair_alone{k}@{pair_at}"]) for k, (b, _) in enumerate(pairs)]
        alone_shares = [100 * a["rps"] / b["rps"] for b, a in alone]
        alone_added = [a["p99_ms"] - b["p99_ms"] for b, a in alone]
        cpu_us = np.median([d["door_cpu_us"] for _, d in pairs])
        alone_cpu_us = np.median([a["door_cpu_us"] for _, a in alone])
        without = (
            f"The same door sending each request on its own (--coalesce-requests 1), in the "
            f"same alternation: {np.median(alone_shares):.1f}% of the bento, p99 "
            f"{np.median(alone_added):+.1f} ms, {alone_cpu_us:.0f} µs of door CPU a request "
            f"(coalescing: {cpu_us:.0f} µs)"
        )
        rounds = "; ".join(
            f"bento {b['rps']:,.0f}/s p99 {b['p99_ms']:.1f} ms, door {d['rps']:,.0f}/s p99 "
            f"{d['p99_ms']:.1f} ms ({_failed(d)} of {d['requests']:,})"
            for b, d in pairs
        )
        through_door = {
            "serve_door_throughput_share": {
                "value": round(float(np.median(shares)), 1),
                "unit": "% of the bento's own /predict throughput",
                "peer": f"the bento without the door, {pair_at} connections, alternated with it",
                "peer_value": round(pairs[middle][0]["rps"]),
                "detail": f"median of {PAIRS} alternations at {pair_at} connections, each "
                f"{pairs[0][0]['span_s']:.1f} s: {rounds}. The door on the bento's core. In the "
                f"sweep: door {pd['rps']:,.0f}/s at {cd} connections, bento "
                f"{p_ours['rps']:,.0f}/s at {c_ours}; /predict_batch as Arrow through the door "
                f"{bda['rps'] * BATCH:,.0f} decisions/s at {cda} connections (bento alone "
                f"{ba_ours['rps'] * BATCH:,.0f}). {without}",
            },
            "serve_door_added_p99_ms": {
                "value": round(float(np.median(added)), 1),
                "unit": f"ms added to /predict p99 at {pair_at} connections",
                "peer": "the bento's own p99, alternated with the door's",
                "peer_value": round(float(np.median([b["p99_ms"] for b, _ in pairs])), 1),
                "detail": f"median of {PAIRS} alternations: "
                + ", ".join(f"{a:+.1f} ms" for a in added),
            },
        }
    return through_door | {
        "serve_predict_ceiling_share": {
            "value": round(float(np.median(ceiling_shares)), 1),
            "unit": "% of BentoML's own ceiling",
            "peer": f"GET /livez on the same core, {CEILING_CONNECTIONS} connections, "
            "alternated with /predict",
            "peer_value": round(ceiling["rps"]),
            "detail": f"median of {PAIRS} alternations of /livez and /predict at the sweep's "
            f"peak ({'columns' if layout == 'predict_columnar' else 'rows'}, {peak_c} "
            "connections): "
            + "; ".join(
                f"/livez {c['rps']:,.0f}/s, /predict {p['rps']:,.0f}/s" for c, p in ceilings
            ),
        },
        f"serve_predict_rps_at_{most}_share": {
            "value": round(100 * at_most_ours["ok_rps"] / p_ours["rps"], 1),
            "unit": f"% of the peak /predict throughput answered at {most} connections",
            "peer": "the peak of the same run",
            "peer_value": round(p_ours["rps"]),
            "detail": f"{at_most_ours['ok_rps']:,.0f}/s answered at {most} connections "
            f"({_failed(at_most_ours)}; 503s are load shed at once, never queued), peak at "
            f"{c_ours}",
        },
        "serve_predict_rps": {
            "value": round(p_ours["rps"]),
            "unit": "requests/s",
            "peer": "mlflow models serve, same policy (observations in, no features)",
            "peer_value": round(p_peer["rps"]),
            "detail": f"bars as rows; best of connections; bento at {c_ours}, mlflow at {c_peer}. "
            f"BentoML's ceiling on the same core (GET /livez, 16 connections): "
            f"{ceiling['rps']:,.0f}/s, so /predict runs at {share:.0%} of it; with bars as "
            f"columns {pc_ours['rps']:,.0f}/s at {cc_ours} connections "
            f"({pc_ours['rps'] / ceiling['rps']:.0%}).{door} {detail}",
        },
        "serve_predict_columnar_rps": {
            "value": round(pc_ours["rps"]),
            "unit": "requests/s",
            "peer": "mlflow models serve, same policy (observations in, no features)",
            "peer_value": round(p_peer["rps"]),
            "detail": f"the same requests with bars as columns; best at {cc_ours} connections; "
            f"p99 {ours[f'predict_columnar@{at}']['p99_ms']:.1f} ms at {at} connections, "
            f"{ours[f'predict_columnar@{most}']['p99_ms']:.1f} ms at {most}",
        },
        "serve_predict_p99_ms": {
            "value": round(at64_ours["p99_ms"], 1),
            "unit": f"ms at {at} connections",
            "peer": "mlflow models serve",
            "peer_value": round(at64_peer["p99_ms"], 1),
            "detail": f"p50 {at64_ours['p50_ms']:.1f} ms (mlflow {at64_peer['p50_ms']:.1f} ms)",
        },
        f"serve_predict_p99_ms_at_{most}": {
            "value": round(at_most_ours["p99_ms"], 1),
            "unit": f"ms at {most} connections",
            "peer": "mlflow models serve",
            "peer_value": round(at_most_peer["p99_ms"], 1),
            "detail": f"p50 {at_most_ours['p50_ms']:.1f} ms (mlflow {at_most_peer['p50_ms']:.1f} "
            f"ms); bento {_failed(at_most_ours)} of {at_most_ours['requests']:,}",
        },
        "serve_batch_decisions_per_s": {
            "value": round(b_ours["rps"] * BATCH),
            "unit": "decisions/s",
            "peer": "mlflow models serve, 100 observations a request",
            "peer_value": round(b_peer["rps"] * BATCH),
            "detail": f"{BATCH} symbols a request, bars as rows ({sizes['rows'] / 1e6:.2f} MB); "
            f"bento at {cb_ours} connections, mlflow at {cb_peer}",
        },
        "serve_batch_columnar_decisions_per_s": {
            "value": round(bc_ours["rps"] * BATCH),
            "unit": "decisions/s",
            "peer": "mlflow models serve, 100 observations a request",
            "peer_value": round(b_peer["rps"] * BATCH),
            "detail": f"{BATCH} symbols a request, the same bars as columns "
            f"({sizes['columns'] / 1e6:.2f} MB); bento at {cbc_ours} connections, mlflow at "
            f"{cb_peer}",
        },
        "serve_batch_arrow_decisions_per_s": {
            "value": round(ba_ours["rps"] * BATCH),
            "unit": "decisions/s",
            "peer": "mlflow models serve, 100 observations a request",
            "peer_value": round(b_peer["rps"] * BATCH),
            "detail": f"{BATCH} symbols a request, the same bars as an Arrow stream "
            f"({sizes['arrow'] / 1e6:.2f} MB); bento at {cba_ours} connections, p99 "
            f"{ba_ours['p99_ms']:.1f} ms ({_failed(ba_ours)}); mlflow at {cb_peer}",
        },
    }
