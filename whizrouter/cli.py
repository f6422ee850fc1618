"""The ``whizrouter`` command: run a bot, inspect the inbox, replay dead letters."""

from __future__ import annotations

import argparse
import asyncio
import importlib
import importlib.util
import logging
import os
import re
import sys
import traceback
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import TypeVar

from whizrouter import __version__, cli_fake_provider, cli_send, dev, scaffold
from whizrouter.app import WhizRouter
from whizrouter.cli_state import add_state_commands
from whizrouter.client_errors import scrub
from whizrouter.defaults import DEFAULT_INBOX_URL
from whizrouter.errors import ConfigurationError, WhizrouterError
from whizrouter.inbox.base import Inbox
from whizrouter.inbox.factory import inbox_from_url
from whizrouter.inbox.memory import MemoryInbox
from whizrouter.inbox.sqlite import SqliteInbox
from whizrouter.json_logs import use_json_logs
from whizrouter.lifecycle import ROLES
from whizrouter.settings import INBOX_ENV, LOG_FORMATS, inbox_url_from_env, log_format_from_env

log = logging.getLogger("whizrouter.cli")
T = TypeVar("T")

_EPILOG = """\
environment: WHIZARD_API_KEY, WHIZARD_BASE_URL, WHIZARD_API_SHAPE, WHIZARD_NUMBERS,
WHIZROUTER_WEBHOOK_URL,
WHIZROUTER_WEBHOOK_USER, WHIZROUTER_WEBHOOK_PASSWORD, WHIZROUTER_INBOX, WHIZROUTER_PLUGINS,
WHIZROUTER_CONCURRENCY, WHIZROUTER_MAX_BACKLOG, WHIZROUTER_BODY_LIMIT, WHIZROUTER_SHUTDOWN_GRACE,
WHIZROUTER_STATE_TTL, WHIZROUTER_HANDLER_TIMEOUT, WHIZROUTER_METRICS_PORT,
WHIZROUTER_HEADER_LIMIT, WHIZROUTER_HEAD_TIMEOUT, WHIZROUTER_KEEPALIVE_TIMEOUT, WHIZROUTER_LOOP,
WHIZROUTER_GC_THRESHOLD, WHIZROUTER_LOG_LEVEL, WHIZROUTER_LOG_FORMAT (see docs/configuration.md
in the project's repository)."""


class UsageError(Exception):
    """A command-line argument cannot be used; the message says what to write instead."""


_IMPORTLIB = os.path.dirname(importlib.__file__)


def _is_the_target(missing: str | None, module_name: str) -> bool:
    """Whether the module not found is the one named on the command line (or its package),
    rather than one that the bot's module imports."""
    if missing is None or module_name.endswith(".py"):
        return False
    return module_name == missing or module_name.startswith(missing + ".")


def _import_failure(module_name: str, exc: BaseException) -> str:
    """What failed while importing the bot's module, with its traceback from the bot's code
    on (the frames of this command and of importlib say nothing to the bot's author)."""
    failure = traceback.TracebackException.from_exception(exc)
    failure.stack = traceback.StackSummary.from_list(
        [
            frame
            for frame in failure.stack
            if frame.filename != __file__ and not frame.filename.startswith(("<frozen", _IMPORTLIB))
        ]
    )
    return (
        f"importing {module_name!r} failed, in the bot's own code or a package it imports "
        "(install it, or fix the line below):\n" + "".join(failure.format()).rstrip()
    )


def load_app(target: str) -> WhizRouter:
    """Import ``module:attribute`` (or ``path/to/file.py:attribute``) and return the app.

    The attribute defaults to ``app``; the working directory is importable, as with
    ``python -m``.
    """
    module_name, _, attribute = target.partition(":")
    attribute = attribute or "app"
    if not module_name:
        raise UsageError(f"{target!r} names no module; write MODULE:ATTR, e.g. bot:app")
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        if module_name.endswith(".py"):
            path = Path(module_name)
            spec = importlib.util.spec_from_file_location(path.stem, path)
            if spec is None or spec.loader is None or not path.is_file():
                raise UsageError(f"no Python file at {module_name!r}")
            module = importlib.util.module_from_spec(spec)
            sys.modules[path.stem] = module
            spec.loader.exec_module(module)
        else:
            module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if not _is_the_target(exc.name, module_name):
            raise UsageError(_import_failure(module_name, exc)) from exc
        raise UsageError(
            f"cannot import {module_name!r} ({exc}); run from the directory that holds it, "
            "or give a file path such as bots/echo.py:app"
        ) from exc
    except WhizrouterError:
        raise  # a setting the app's constructor refused: its message says what to do
    except Exception as exc:
        raise UsageError(_import_failure(module_name, exc)) from exc
    if not hasattr(module, attribute):
        raise UsageError(
            f"{module_name} has no attribute {attribute!r}; write MODULE:ATTR with the name of "
            "the object created with `app = WhizRouter(...)`"
        )
    app = getattr(module, attribute)
    if not isinstance(app, WhizRouter):
        raise UsageError(
            f"{module_name}:{attribute} is {type(app).__name__}, not a WhizRouter; point at the "
            "object created with `app = WhizRouter(...)`"
        )
    return app


def _inbox(args: argparse.Namespace) -> Inbox:
    """The inbox the inspection commands work on: one a bot has written, never a new one."""
    configured = inbox_url_from_env()
    if args.inbox:
        url, source = args.inbox, "--inbox"
    elif configured is not None:
        url, source = configured, INBOX_ENV
    else:
        url, source = DEFAULT_INBOX_URL, "the default inbox"
    try:
        inbox = inbox_from_url(url)
    except WhizrouterError as exc:
        raise UsageError(_without_secrets(f"{source} {url!r}: {exc}", url)) from exc
    if isinstance(inbox, MemoryInbox):
        raise UsageError(
            "a memory inbox lives inside the bot's process, so no command can inspect it; "
            "give the bot a sqlite:// or nats:// inbox (WHIZROUTER_INBOX)"
        )
    if url.startswith(("nats://", "tls://")):
        from whizrouter.inbox.nats import NatsInbox

        if isinstance(inbox, NatsInbox):
            inbox.create_streams = False  # a mistyped stream= must not make a new one
    if isinstance(inbox, SqliteInbox) and not inbox.path.exists():
        raise UsageError(
            f"no inbox file at {inbox.path} ({source} {url!r}); run this command in the "
            "directory the bot runs in (a relative sqlite:/// path is relative to it), or "
            "pass --inbox sqlite:////absolute/path/to/inbox.db"
        )
    return inbox


def _without_secrets(text: str, url: str) -> str:
    """``text`` with the ``user:password@`` of ``url``, and each part of it, hidden."""
    authority = url.partition("://")[2].partition("/")[0].partition("?")[0]
    userinfo = authority.rpartition("@")[0]
    if not userinfo:
        return text
    parts = [userinfo, *userinfo.split(":")]
    # A malformed URL's error may quote only a piece of the password (up to a "#" or "?").
    parts += re.split(r"[#?/@]", userinfo.partition(":")[2])
    # Longest first, so a piece never spoils the match of the whole; short pieces would
    # scrub ordinary words.
    return scrub(text, sorted((p for p in parts if len(p) >= 3), key=len, reverse=True))


async def _with_inbox(inbox: Inbox, action: Callable[[Inbox], Awaitable[T]]) -> T:
    await inbox.open()
    try:
        return await action(inbox)
    finally:
        await inbox.close()


def _cmd_run(args: argparse.Namespace) -> int:
    app = load_app(args.target)
    app.role = args.role
    app.run(host=args.host, port=args.port)
    return 0


def _cmd_inbox_stats(args: argparse.Namespace) -> int:
    async def action(inbox: Inbox) -> dict[str, int]:
        return await inbox.stats()

    inbox = _inbox(args)
    stats = asyncio.run(_with_inbox(inbox, action))
    out = sys.stdout
    out.write(f"inbox: {inbox.description}\n")
    for state, count in stats.items():
        out.write(f"{state}: {count}\n")
    return 0


def _cmd_dead_list(args: argparse.Namespace) -> int:
    async def action(inbox: Inbox) -> list[str]:
        rows = []
        # One more than asked, to tell whether the list goes on.
        for letter in await inbox.dead_letters(limit=args.limit + 1):
            error = letter.error.replace("\n", " ")[:200]
            rows.append(
                f"{letter.seq}\t{letter.key}\t{letter.conversation}\t{letter.handler}\t"
                f"{letter.attempts}\t{error}"
            )
        return rows

    rows = asyncio.run(_with_inbox(_inbox(args), action))
    out = sys.stdout
    if not rows:
        out.write("no dead letters\n")
        return 0
    out.write("id\tevent\tconversation\thandler\tattempts\tlast error\n")
    for row in rows[: args.limit]:
        out.write(row + "\n")
    if len(rows) > args.limit:
        out.write(f"(more dead letters than these {args.limit}; raise --limit to see them)\n")
    return 0


def _unknown_ids(asked: Sequence[int], done: int) -> int:
    """Exit code of a replay or drop of ``asked``: 1, with a line, if some were not dead."""
    given = len(set(asked))
    missing = given - done
    if missing <= 0:
        return 0
    if given == 1:
        what = "that id is not a dead letter"
    elif missing == 1:
        what = f"1 of the {given} ids given is not a dead letter"
    else:
        what = f"{missing} of the {given} ids given are not dead letters"
    log.error(
        "%s (already replayed or dropped, or mistyped); `whizrouter dead list` shows the "
        "current ones",
        what,
    )
    return 1


def _cmd_dead_replay(args: argparse.Namespace) -> int:
    if args.all and args.ids:
        raise UsageError("give dead letter ids or --all, not both")
    if not args.all and not args.ids:
        raise UsageError(
            "name the dead letter ids to replay (`whizrouter dead list` shows them), or pass "
            "--all to replay every one"
        )

    async def action(inbox: Inbox) -> int:
        return await inbox.replay(None if args.all else args.ids)

    count = asyncio.run(_with_inbox(_inbox(args), action))
    sys.stdout.write(f"replayed {count} dead letter(s); a running bot picks them up\n")
    return 0 if args.all else _unknown_ids(args.ids, count)


def _cmd_dead_drop(args: argparse.Namespace) -> int:
    async def action(inbox: Inbox) -> int:
        return await inbox.drop(args.ids)

    count = asyncio.run(_with_inbox(_inbox(args), action))
    sys.stdout.write(f"dropped {count} dead letter(s)\n")
    return _unknown_ids(args.ids, count)


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if not (0 < value < 65536 or text.strip() == "0"):
        raise argparse.ArgumentTypeError(
            f"--port must be a TCP port from 1 to 65535 (0: any free one), not {text}"
        )
    return value


def _positive_limit(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError("--limit must be a positive whole number")
    return value


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``whizrouter`` command."""
    level_help = (
        "logging level: DEBUG, INFO, WARNING, ERROR (default: INFO for run, WARNING for the "
        "inspection commands; also WHIZROUTER_LOG_LEVEL)"
    )
    parser = argparse.ArgumentParser(
        prog="whizrouter",
        description="Run a WhatsApp bot built with whizrouter, and inspect its inbox.",
        epilog=_EPILOG,
    )
    parser.add_argument("--version", action="version", version=f"whizrouter {__version__}")
    # Read here, not in Settings: the log level is the command's, not a setting of the app.
    parser.add_argument(
        "--log-level", default=os.environ.get("WHIZROUTER_LOG_LEVEL"), help=level_help
    )
    # Also accepted after the command (`whizrouter run bot:app --log-level DEBUG`); SUPPRESS
    # keeps the value given before it when it is not repeated.
    level_after = argparse.ArgumentParser(add_help=False)
    level_after.add_argument("--log-level", default=argparse.SUPPRESS, help=level_help)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    run = commands.add_parser(
        "run",
        parents=[level_after],
        help="serve a bot's webhook and handle its events",
        description="Serve POST /webhook and GET /healthz for the app at MODULE:ATTR; "
        "SIGTERM or SIGINT drains running handlers and exits 0.",
        epilog=_EPILOG,
    )
    run.add_argument(
        "target", metavar="MODULE:ATTR", help="where the app is, e.g. bot:app or path/to/bot.py:app"
    )
    run.add_argument("--host", default="0.0.0.0", help="address to listen on (0.0.0.0)")
    run.add_argument(
        "--port", type=_port, default=8080, help="port to listen on (8080; 0: any free one)"
    )
    run.add_argument(
        "--role",
        choices=ROLES,
        default="all",
        help="all: receive and handle (default); receiver: only accept and store; "
        "worker: only handle (needs a shared inbox such as nats://)",
    )
    run.add_argument(
        "--log-format",
        choices=LOG_FORMATS,
        default=None,
        help="text (default) or json: one JSON object per line (also WHIZROUTER_LOG_FORMAT)",
    )
    run.set_defaults(func=_cmd_run)

    inbox_help = "inbox URL (default: WHIZROUTER_INBOX, else " + DEFAULT_INBOX_URL + ")"
    inbox = commands.add_parser(
        "inbox", help="inspect the inbox", description="Inspect the inbox a bot stores events in."
    )
    inbox_commands = inbox.add_subparsers(dest="inbox_command", metavar="ACTION", required=True)
    stats = inbox_commands.add_parser(
        "stats",
        parents=[level_after],
        help="print event counts by state",
        description="Print event counts by state.",
    )
    stats.add_argument("--inbox", help=inbox_help)
    stats.set_defaults(func=_cmd_inbox_stats)

    dead = commands.add_parser(
        "dead",
        help="list, replay or drop dead letters",
        description="Dead letters are events whose handler kept failing; they are kept until "
        "you replay or drop them. Works while the bot runs.",
    )
    dead_commands = dead.add_subparsers(dest="dead_command", metavar="ACTION", required=True)
    listing = dead_commands.add_parser(
        "list",
        parents=[level_after],
        help="one line per dead letter",
        description="One line per dead letter: id, event, conversation, handler, attempts, "
        "last error.",
    )
    listing.add_argument("--inbox", help=inbox_help)
    listing.add_argument(
        "--limit", type=_positive_limit, default=100, help="most lines to print (100)"
    )
    listing.set_defaults(func=_cmd_dead_list)
    replay = dead_commands.add_parser(
        "replay",
        parents=[level_after],
        help="hand dead letters to the handlers again",
        description="Put dead letters back in the inbox with a fresh attempt count.",
    )
    replay.add_argument("ids", nargs="*", type=int, metavar="ID", help="ids from `dead list`")
    replay.add_argument("--all", action="store_true", help="replay every dead letter")
    replay.add_argument("--inbox", help=inbox_help)
    replay.set_defaults(func=_cmd_dead_replay)
    drop = dead_commands.add_parser(
        "drop",
        parents=[level_after],
        help="delete dead letters for good",
        description="Delete dead letters for good.",
    )
    drop.add_argument("ids", nargs="+", type=int, metavar="ID", help="ids from `dead list`")
    drop.add_argument("--inbox", help=inbox_help)
    drop.set_defaults(func=_cmd_dead_drop)
    dev.add_command(commands, [level_after], _port, load_app)
    cli_send.add_command(commands, [level_after])
    cli_fake_provider.add_command(commands, [level_after], _port)
    scaffold.add_command(commands, [level_after])
    add_state_commands(commands, parents=[level_after], inbox_help=inbox_help, open_inbox=_inbox)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``whizrouter`` command; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    serving = args.command in ("run", "dev")
    default_level = "INFO" if serving else "WARNING"
    level = getattr(logging, str(args.log_level or default_level).upper(), None)
    if not isinstance(level, int):
        parser.error(
            f"log level {args.log_level!r} (--log-level or WHIZROUTER_LOG_LEVEL) is not one of "
            "DEBUG, INFO, WARNING, ERROR"
        )
    # A bot's log gets timestamps and logger names; a command typed at a prompt answers plainly.
    log_format = (
        "%(asctime)s %(levelname)s %(name)s: %(message)s"
        if serving
        else "whizrouter: %(levelname)s: %(message)s"
    )
    try:
        json_logs = args.command == "run" and (args.log_format or log_format_from_env()) == "json"
    except ConfigurationError as exc:
        parser.error(str(exc))
    if json_logs:
        use_json_logs(level)
    else:
        logging.basicConfig(level=level, format=log_format)
    try:
        code: int = args.func(args)
    except (UsageError, WhizrouterError) as exc:
        text = str(exc)
        for url in (inbox_url_from_env() or "", getattr(args, "inbox", None) or ""):
            text = _without_secrets(text, url)
        log.error("%s", text)
        return 2 if isinstance(exc, UsageError) else 1
    return code
