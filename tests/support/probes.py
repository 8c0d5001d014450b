"""What a test reads off a running node from outside: whether it closed a connection, a metric's value."""

from __future__ import annotations

import socket

import httpx


def closed_by_node(sock: socket.socket, within: float) -> bool:
    """True once the node has closed the connection (EOF or reset), waiting at most `within` seconds."""
    sock.settimeout(within)
    try:
        while sock.recv(4096):
            pass
    except (ConnectionResetError, BrokenPipeError):
        return True
    except TimeoutError:
        return False
    return True


def metric(node, name: str) -> float:  # noqa: ANN001
    for line in httpx.get(f"{node.http_url}/metrics", timeout=10).text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[-1])
    return 0.0


def rejected(reason: str) -> str:
    return f'dicomnode_associations_total{{outcome="rejected",reason="{reason}"}}'
