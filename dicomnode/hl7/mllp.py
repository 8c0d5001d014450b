"""MLLP (HL7 v2 Minimal Lower Layer Protocol): <VT> message <FS><CR> over TCP, optionally in TLS.

The reader is written for hostile senders: a frame that does not start with <VT> is a framing error (the
connection is closed: nothing after it can be trusted to be in step), a frame longer than the limit is
refused as soon as it passes it (never buffered whole), and a frame must arrive whole within its deadline.
"""

from __future__ import annotations

import socket
import ssl
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

from dicomnode.errors import DicomnodeError

START, END, CR = b"\x0b", b"\x1c", b"\r"


class FramingError(DicomnodeError, ValueError):
    """The bytes are not MLLP frames."""


class FrameTooLarge(DicomnodeError, ValueError):
    """A frame passed the size limit."""


class FrameTimeout(DicomnodeError, TimeoutError):
    """A frame started but did not end within its deadline."""


def frame(message: bytes) -> bytes:
    return START + message + END + CR


class FrameReader:
    """Reads frames from one connection; `read()` returns None when the peer closed between frames."""

    def __init__(self, sock: socket.socket, max_bytes: int, frame_timeout_s: float, idle_timeout_s: float) -> None:
        self._sock = sock
        self._max = max_bytes
        self._frame_timeout = frame_timeout_s
        self._idle_timeout = idle_timeout_s
        self._buffer = b""

    def read(self) -> bytes | None:
        self._buffer = self._buffer.lstrip(b"\r\n")  # tolerated between frames
        while not self._buffer:
            chunk = self._recv(self._idle_timeout)
            if not chunk:
                return None
            self._buffer = chunk.lstrip(b"\r\n")
        if not self._buffer.startswith(START):
            raise FramingError(f"a frame must start with 0x0b, got 0x{self._buffer[0]:02x}")
        deadline = time.monotonic() + self._frame_timeout
        while (end := self._buffer.find(END + CR)) < 0:
            if len(self._buffer) > self._max + 1:
                raise FrameTooLarge(f"message longer than {self._max} bytes")
            left = deadline - time.monotonic()
            if left <= 0:
                raise FrameTimeout(f"message not complete within {self._frame_timeout:g} s")
            chunk = self._recv(left)
            if not chunk:
                raise FramingError("connection closed inside a frame")
            self._buffer += chunk
        body, self._buffer = self._buffer[1:end], self._buffer[end + 2 :]
        if len(body) > self._max:
            raise FrameTooLarge(f"message longer than {self._max} bytes")
        if START in body:
            raise FramingError("0x0b inside a frame: the previous frame was never ended")
        return body

    def _recv(self, timeout_s: float) -> bytes:
        self._sock.settimeout(max(timeout_s, 0.001))
        try:
            return self._sock.recv(65536)
        except TimeoutError:
            if self._buffer:
                raise FrameTimeout(f"message not complete within {self._frame_timeout:g} s") from None
            raise


@dataclass(frozen=True)
class Endpoint:
    """An HL7 destination as routing rules write it: mllp://HOST:PORT, or mllps://HOST:PORT for MLLP over TLS."""

    host: str
    port: int
    tls: bool

    @classmethod
    def parse(cls, text: str) -> Endpoint:
        parts = urlsplit(text)
        if parts.scheme not in ("mllp", "mllps") or not parts.hostname or parts.path not in ("", "/"):
            raise ValueError(f"{text!r}: an HL7 destination is mllp://HOST:PORT or mllps://HOST:PORT")
        try:
            port = parts.port
        except ValueError:
            port = None
        if port is None:
            raise ValueError(f"{text!r}: the port is missing or not a number")
        return cls(parts.hostname, port, parts.scheme == "mllps")

    def __str__(self) -> str:
        return f"{'mllps' if self.tls else 'mllp'}://{self.host}:{self.port}"


def is_hl7_destination(destination: str) -> bool:
    return destination.startswith(("mllp://", "mllps://"))


def exchange(
    endpoint: Endpoint, message: bytes, timeout_s: float, tls: ssl.SSLContext | None = None, max_bytes: int = 1024**2
) -> bytes:
    """Send one message and return the receiver's answer (the ACK); raises OSError or a framing error."""
    with socket.create_connection((endpoint.host, endpoint.port), timeout=timeout_s) as raw:
        sock = tls.wrap_socket(raw, server_hostname=endpoint.host) if endpoint.tls and tls else raw
        sock.sendall(frame(message))
        answer = FrameReader(sock, max_bytes, timeout_s, timeout_s).read()
        if answer is None:
            raise FramingError("the receiver closed the connection without an answer")
        return answer
