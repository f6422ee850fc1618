"""``free_port``: a loopback TCP port to start a server of one's own on in a test."""

from __future__ import annotations

import socket


def free_port() -> int:
    """A TCP port on 127.0.0.1 nobody listens on right now.

    Another process may take it before you bind it; where a server can report the port it
    bound itself (port 0, or ``-1`` for ``nats-server``), prefer that.
    """
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port
