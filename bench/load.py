"""A closed-loop HTTP load generator, run in its own process pinned to its own core.

``connections`` workers each send the next request as soon as the last is
answered, for ``duration`` seconds; every request's latency is kept, so p50 and
p99 are exact, not bucketed. Throughput counts the requests sent in the window
over the time until the last of them was answered, never less than the window. A
non-2xx answer or a transport error counts as a failure and is reported, never
silently dropped; 503s (load shed by the server's cap on requests in flight) are
also counted on their own.

Run: ``python -m bench.load SPEC.json`` prints one JSON result.
"""

import asyncio
import base64
import json
import os
import sys
import time
from collections import Counter

import aiohttp
import numpy as np

HURT_S = 0.25
"""A request that failed or took longer than this was hurt (by a fault, in bench.availability)."""


def _body(body) -> bytes | None:
    """JSON documents are sent as JSON; ``{"base64": ...}`` as those bytes (Arrow)."""
    if isinstance(body, dict) and set(body) == {"base64"}:
        return base64.b64decode(body["base64"])
    return None if body is None else json.dumps(body).encode()


async def _load(spec: dict) -> dict:
    bodies = [_body(b) for b in spec["bodies"]]
    headers = {"Content-Type": "application/json", **spec.get("headers", {})}
    latencies: list[float] = []
    failures: list[str] = []
    hurt: list[tuple[float, float, bool]] = []  # (sent, done, ok), epoch s: lined up with faults
    track = spec.get("track_hurt", False)
    shed = 0  # 503 answers: load turned away by the server's cap on requests in flight
    connector = aiohttp.TCPConnector(limit=spec["connections"], force_close=False)
    deadline = time.perf_counter() + spec["warmup"] + spec["duration"]
    measure_from = time.perf_counter() + spec["warmup"]
    last_done = measure_from

    async def worker(session: aiohttp.ClientSession, offset: int) -> None:
        nonlocal shed, last_done
        i = offset
        # A server slower than the window still gets one measured request, not none.
        while (now := time.perf_counter()) < deadline or not latencies:
            body = bodies[i % len(bodies)]
            i += 1
            try:
                async with session.request(
                    spec.get("method", "POST"), spec["url"], data=body, headers=headers
                ) as answer:
                    await answer.read()
                    ok = 200 <= answer.status < 300
                    status = answer.status
            except aiohttp.ClientError as exc:
                ok, status = False, repr(exc)
            if now >= measure_from:
                last_done = time.perf_counter()
                took = last_done - now
                latencies.append(took)
                if not ok:
                    failures.append(str(status))
                    shed += status == 503
                if track and (not ok or took > HURT_S):
                    done = time.time()
                    hurt.append((done - took, done, ok))

    timeout = aiohttp.ClientTimeout(total=120)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        await asyncio.gather(*(worker(session, k) for k in range(spec["connections"])))
    ms = np.asarray(latencies) * 1e3
    # Until the last request sent in the window came back: a request sent in the window is
    # counted, and one slower than the window would otherwise count as made within it.
    span = max(spec["duration"], last_done - measure_from)
    return {
        "requests": len(latencies),
        "span_s": span,
        "rps": len(latencies) / span,
        "ok_rps": (len(latencies) - len(failures)) / span,
        "p50_ms": float(np.percentile(ms, 50)),
        "p99_ms": float(np.percentile(ms, 99)),
        "failures": len(failures),
        "shed": shed,
        "failure_sample": failures[:3],
        "failure_kinds": dict(Counter(failures)),
        "hurt": hurt,
        "measured_from": time.time() - (time.perf_counter() - measure_from),
    }


def main() -> None:
    with open(sys.argv[1]) as f:
        spec = json.load(f)
    if spec.get("cpu") is not None:
        os.sched_setaffinity(0, {spec["cpu"]})
    print(json.dumps(asyncio.run(_load(spec))))


if __name__ == "__main__":
    main()
