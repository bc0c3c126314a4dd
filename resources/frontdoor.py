"""The serving port's front door: traders keep one address while bentos are swapped behind it.

Two processes cannot listen on one port, and BentoML 1.4's HTTP server binds
without SO_REUSEPORT, so a zero-downtime swap needs something that owns the
port and forwards each request to the live bento. Forwarding is per request
(HTTP, not TCP): after a switch every new request goes to the new bento while
requests already in flight finish on the old one, and a trader's keep-alive
connection never breaks. ``SIGHUP`` re-reads the backend file; ``GET
/_frontdoor`` reports the backend and requests in flight per backend, which is
how the deployer knows the old bento has drained.

Run: ``python -m resources.frontdoor --port 3000 --state DIR`` (DIR/backend.json).
"""

import argparse
import asyncio
import json
import signal
from collections import Counter
from pathlib import Path

import aiohttp
from aiohttp import web

BACKEND_FILE = "backend.json"
STATUS_PATH = "/_frontdoor"
HOP_HEADERS = frozenset(
    {"connection", "keep-alive", "transfer-encoding", "upgrade", "host", "content-length"}
)


class FrontDoor:
    def __init__(self, state: Path) -> None:
        self.state = state
        self.backend: dict = {}
        self.in_flight: Counter[int] = Counter()
        self.served: Counter[int] = Counter()
        self.session: aiohttp.ClientSession | None = None

    def reload(self) -> None:
        self.backend = json.loads((self.state / BACKEND_FILE).read_text())

    async def start(self, _app) -> None:
        self.session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=0, keepalive_timeout=30),
            timeout=aiohttp.ClientTimeout(total=60),
            auto_decompress=False,
        )

    async def stop(self, _app) -> None:
        if self.session is not None:
            await self.session.close()

    async def status(self, _request: web.Request) -> web.Response:
        return web.json_response(
            {
                "backend": self.backend,
                "in_flight": {str(k): v for k, v in self.in_flight.items() if v},
                "served": {str(k): v for k, v in self.served.items()},
            }
        )

    async def forward(self, request: web.Request) -> web.StreamResponse:
        port = int(self.backend["port"])
        self.in_flight[port] += 1
        try:
            body = await request.read()
            headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP_HEADERS}
            url = f"http://127.0.0.1:{port}{request.rel_url}"
            assert self.session is not None
            async with self.session.request(
                request.method, url, headers=headers, data=body
            ) as upstream:
                payload = await upstream.read()
                out = {k: v for k, v in upstream.headers.items() if k.lower() not in HOP_HEADERS}
                self.served[port] += 1
                return web.Response(status=upstream.status, body=payload, headers=out)
        except aiohttp.ClientError as exc:
            return web.json_response(
                {"error": "bad_gateway", "reason": f"bento on port {port}: {exc}"}, status=502
            )
        finally:
            self.in_flight[port] -= 1


def app_for(state: Path) -> web.Application:
    door = FrontDoor(state)
    door.reload()
    app = web.Application(client_max_size=256 * 1024 * 1024)
    app.on_startup.append(door.start)
    app.on_cleanup.append(door.stop)
    app.router.add_get(STATUS_PATH, door.status)
    app.router.add_route("*", "/{tail:.*}", door.forward)
    app["door"] = door
    return app


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--state", type=Path, required=True, help="folder with backend.json")
    args = parser.parse_args(argv)
    app = app_for(args.state)

    async def serve() -> None:
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, args.host, args.port).start()
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        loop.add_signal_handler(signal.SIGHUP, app["door"].reload)
        loop.add_signal_handler(signal.SIGTERM, stop.set)
        loop.add_signal_handler(signal.SIGINT, stop.set)
        print(f"front door on {args.host}:{args.port} -> {app['door'].backend}", flush=True)
        await stop.wait()
        await runner.cleanup()

    asyncio.run(serve())


if __name__ == "__main__":
    main()
