"""A webhook receiver on loopback that records what is posted to it: the alert webhook's
stand-in in the drift drill and the tests (a chat or pager service cannot be reached from
here). With ``log``, each post is also appended to a JSON-lines file another process reads."""

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path


class Receiver:
    def __init__(self, fail_first: int = 0, log: Path | None = None) -> None:
        self.posts: list[dict] = []
        self.log = log
        self.attempts = 0
        self._fail_first = fail_first
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                receiver.attempts += 1
                if receiver.attempts <= receiver._fail_first:
                    self.send_response(503)
                    self.end_headers()
                    return
                receiver.posts.append(json.loads(body))
                if receiver.log is not None:
                    with receiver.log.open("a") as out:
                        out.write(json.dumps(receiver.posts[-1]) + "\n")
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> "Receiver":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()

    def kinds(self) -> list[str]:
        return [post["tradeops"]["kind"] for post in self.posts]
