"""``free_port``: a loopback port nobody listens on."""

from __future__ import annotations

import socket

from whizrouter.testing import free_port


def test_a_free_port_can_be_bound() -> None:
    port = free_port()
    assert 1024 <= port <= 65535
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", port))
        sock.listen()
