"""Runs the FastAPI app with uvicorn in a thread of `dicomnode serve`."""

from __future__ import annotations

import logging
import threading
import time

import uvicorn
from fastapi import FastAPI

from dicomnode.config.http import HttpConfig

log = logging.getLogger(__name__)


class HttpServer:
    def __init__(self, app: FastAPI, config: HttpConfig) -> None:
        tls = {}
        if config.tls_cert_file and config.tls_key_file:
            tls = {"ssl_certfile": str(config.tls_cert_file), "ssl_keyfile": str(config.tls_key_file)}
        # access_log off: request lines are ours to write (tokens and PHI stay out of logs)
        self._server = uvicorn.Server(
            uvicorn.Config(
                app, host=config.host, port=config.port, log_config=None, access_log=False, lifespan="off", **tls
            )
        )
        self.name = "http"
        self._host = config.host
        self._thread = threading.Thread(target=self._server.run, name="http", daemon=True)
        self.scheme = "https" if tls else "http"

    def start(self, timeout_s: float = 10) -> None:
        self._thread.start()
        deadline = time.monotonic() + timeout_s
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise OSError(f"HTTP server did not start (port {self._server.config.port} in use?)")
            time.sleep(0.02)
        log.info("worklist at %s://%s:%d/", self.scheme, self._host, self.port)

    @property
    def port(self) -> int:
        return int(self._server.servers[0].sockets[0].getsockname()[1])

    def stop(self) -> None:
        self._server.should_exit = True
        if self._thread.is_alive():
            self._thread.join(timeout=10)
