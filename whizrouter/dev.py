"""``whizrouter dev``: run a bot while writing it, restarted whenever a source file changes.

The command watches the bot's directory (``watchfiles``) and runs the bot in a child process
(``whizrouter dev --no-reload``), which it stops and starts again on every change to a
``.py`` file; a bot that fails to import waits for the next change instead of ending the
command. The child runs the bot as ``whizrouter run`` would, with three differences meant for
a laptop: the memory inbox unless ``--inbox`` names another, whizrouter's debug logs, and,
when no provider key is set, the console provider (:mod:`whizrouter.console_provider`), which
answers like the real API and prints every send, mark-read and webhook call.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from types import FrameType
from typing import Any

from whizrouter.app import WhizRouter
from whizrouter.backoff import CLIENT_RETRY
from whizrouter.defaults import DEV_SHUTDOWN_GRACE
from whizrouter.inbox.factory import inbox_from_url
from whizrouter.inbox.memory import MemoryInbox
from whizrouter.runtime import run_with_loop
from whizrouter.server import serve_forever

log = logging.getLogger("whizrouter.dev")
#: How often the watcher looks whether the bot's process ended by itself, in milliseconds.
_CHILD_CHECK_MS = 1000


def _say(text: str) -> None:
    """A line of the command's own output, flushed so a pipe shows it at once."""
    sys.stdout.write(f"[dev] {text}\n")
    sys.stdout.flush()


def watched_paths(target: str, extra: list[str]) -> list[Path]:
    """The directories to watch: the bot file's own (the working directory for a module
    name), and any given with ``--watch``."""
    module = target.partition(":")[0]
    home = Path(module).resolve().parent if module.endswith(".py") else Path.cwd()
    return [home, *(Path(p).resolve() for p in extra)]


def child_command(args: argparse.Namespace) -> list[str]:
    """The command line of the bot's own process: this command, without the reloader."""
    command = [sys.executable, "-m", "whizrouter"]
    if args.log_level:
        command += ["--log-level", args.log_level]
    command += ["dev", "--no-reload", args.target, "--host", args.host, "--port", str(args.port)]
    if args.inbox:
        command += ["--inbox", args.inbox]
    return command


def _stop(process: subprocess.Popen[bytes]) -> None:
    """Stop the bot's process: SIGTERM, then SIGKILL if it outlives its grace."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(DEV_SHUTDOWN_GRACE + 3)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def reload_forever(args: argparse.Namespace) -> int:
    """Run the bot in a child process and restart it on every change; return at SIGTERM or
    SIGINT (Ctrl-C), after stopping it."""
    import watchfiles  # the reloader's only user: the bot's own process never loads it

    logging.getLogger("watchfiles").setLevel(logging.WARNING)  # one line a second otherwise
    paths = watched_paths(args.target, args.watch)
    command = child_command(args)
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = signal.signal(signal.SIGTERM, on_signal)
    _say(f"watching {', '.join(str(p) for p in paths)} for changes to .py files; Ctrl-C stops")
    process = subprocess.Popen(command)
    reported_exit = False
    try:
        for changes in watchfiles.watch(
            *paths,
            watch_filter=watchfiles.PythonFilter(),
            stop_event=stop,
            rust_timeout=_CHILD_CHECK_MS,
            yield_on_timeout=True,
            raise_interrupt=False,
        ):
            if not changes:
                code = process.poll()
                if code is not None and not reported_exit:
                    reported_exit = True
                    _say(f"the bot stopped (exit code {code}); save a file to start it again")
                continue
            names = sorted({os.path.relpath(path) for _, path in changes})
            _say(f"{', '.join(names)} changed: restarting the bot")
            _stop(process)
            process = subprocess.Popen(command)
            reported_exit = False
    finally:
        _stop(process)
        signal.signal(signal.SIGTERM, previous)
    return 0


def prepare(app: WhizRouter, inbox: str | None) -> None:
    """Set ``app`` up for development: the inbox ``inbox`` names (a URL) or a memory one, and
    a short grace for a handler still running at a reload."""
    app.replace_parts(inbox=inbox_from_url(inbox) if inbox else MemoryInbox())
    app.settings = replace(
        app.settings, shutdown_grace=min(app.settings.shutdown_grace, DEV_SHUTDOWN_GRACE)
    )


async def serve_dev(app: WhizRouter, args: argparse.Namespace) -> None:
    """Serve ``app`` as ``whizrouter run`` does, with a console provider when it has no key."""
    # Imported here: the console provider is the test kit's, which `whizrouter run` never loads.
    from whizrouter.console_provider import console_provider

    prepare(app, args.inbox)
    console = console_provider(app.settings.shape) if app.settings.api_key is None else None
    if console is not None:
        await console.start()
        app.replace_parts(client=console.client(retry=CLIENT_RETRY))
        provider = "console (no WHIZARD_API_KEY: sends are printed here, not delivered)"
    else:
        provider = f"{app.settings.base_url or 'no WHIZARD_BASE_URL'} (WHIZARD_API_KEY is set)"
    inbox = args.inbox or "memory (--inbox for another)"
    _say(
        f"{args.target} on http://{args.host}:{args.port}/webhook; provider: {provider}; "
        f"inbox: {inbox}. Post a message with: whizrouter send --text hi"
    )
    try:
        await serve_forever(app, host=args.host, port=args.port)
    finally:
        if console is not None:
            await console.close()


def run_dev(args: argparse.Namespace, load_app: Callable[[str], WhizRouter]) -> int:
    """``whizrouter dev``: the reloader, or (``--no-reload``) the bot itself."""
    if not args.no_reload:
        return reload_forever(args)
    if args.log_level is None:
        logging.getLogger("whizrouter").setLevel(logging.DEBUG)
    app = load_app(args.target)
    run_with_loop(serve_dev(app, args))
    return 0


def add_command(
    commands: Any,
    parents: list[argparse.ArgumentParser],
    port: Callable[[str], int],
    load_app: Callable[[str], WhizRouter],
) -> None:
    """Register ``whizrouter dev`` on the ``whizrouter`` subcommands."""
    command = commands.add_parser(
        "dev",
        parents=parents,
        help="run a bot for development: reload on change, replies printed without a key",
        description="Run the bot at MODULE:ATTR and restart it whenever a .py file in its "
        "directory changes. It uses the memory inbox (unless --inbox), logs whizrouter's "
        "debug lines (unless --log-level), and, when WHIZARD_API_KEY is not set, a console "
        "provider that answers like the real API and prints every send, mark-read and "
        "webhook call here. Post a test message with `whizrouter send --text hi`.",
    )
    command.add_argument(
        "target", metavar="MODULE:ATTR", help="where the app is, e.g. bot.py:app or bot:app"
    )
    command.add_argument("--host", default="127.0.0.1", help="address to listen on (127.0.0.1)")
    command.add_argument("--port", type=port, default=8080, help="port to listen on (8080)")
    command.add_argument(
        "--inbox", default=None, help="inbox URL instead of memory, e.g. sqlite:///dev.db"
    )
    command.add_argument(
        "--watch",
        action="append",
        default=[],
        metavar="DIR",
        help="another directory to watch (repeatable); the bot's own is always watched",
    )
    command.add_argument(
        "--no-reload", action="store_true", help="run the bot once, without watching files"
    )
    command.set_defaults(func=lambda args: run_dev(args, load_app))
