"""A real local HTTP receiver for webhook tests: records each POST and answers with the statuses it is given."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class Receiver:
    def __init__(self, statuses: list[int] | None = None) -> None:
        """Answer each POST with the next of `statuses`, then 200 for ever."""
        self.statuses = list(statuses or [])
        self.posts: list[tuple[int, dict[str, Any], dict[str, str]]] = []  # (status answered, body, headers)
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                status = receiver.statuses.pop(0) if receiver.statuses else 200
                receiver.posts.append((status, body, dict(self.headers)))
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/hook"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def accepted(self) -> list[dict[str, Any]]:
        return [body for status, body, _ in self.posts if 200 <= status < 300]

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
