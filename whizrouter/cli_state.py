"""``whizrouter state show|clear CONVERSATION``: a conversation's state, from the command line.

Both work on the configured inbox (``--inbox``, else ``WHIZROUTER_INBOX``, else the default)
while the bot runs. ``clear`` is a write like a handler's: an event of that conversation
whose handler read the old state is then handed out again on NATS; on sqlite, an event
settled in the same instant may still write over it.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Callable, Sequence

import orjson

from whizrouter.errors import WhizrouterError
from whizrouter.inbox.base import Inbox
from whizrouter.inbox.stored_state import StoredState
from whizrouter.settings import state_ttl_from_env

#: Builds the inbox a command works on from its arguments (``whizrouter.cli``'s).
OpenInbox = Callable[[argparse.Namespace], Inbox]


class NoStateError(WhizrouterError):
    """The conversation has no state (the command exits 1 with this message)."""


async def _load(inbox: Inbox, conversation: str) -> StoredState | None:
    inbox.state_ttl = state_ttl_from_env()
    await inbox.open()
    try:
        stored = await inbox.load_state(conversation)
    finally:
        await inbox.close()
    # A cleared state may be kept as an empty record (NATS): none, for the user.
    return None if stored is None or (stored.state is None and not stored.data) else stored


async def _clear(inbox: Inbox, conversation: str) -> bool:
    inbox.state_ttl = state_ttl_from_env()
    await inbox.open()
    try:
        stored = await inbox.load_state(conversation)
        await inbox.put_state(conversation, None, {})
    finally:
        await inbox.close()
    return stored is not None and (stored.state is not None or bool(stored.data))


def _show(open_inbox: OpenInbox) -> Callable[[argparse.Namespace], int]:
    def show(args: argparse.Namespace) -> int:
        stored = asyncio.run(_load(open_inbox(args), args.conversation))
        if stored is None:
            raise NoStateError(
                f"conversation {args.conversation} has no state (never set, cleared, or "
                "expired); check the number, and --inbox against the bot's"
            )
        line = {"conversation": args.conversation, "state": stored.state, "data": stored.data}
        sys.stdout.write(orjson.dumps(line).decode() + "\n")
        return 0

    return show


def _clear_command(open_inbox: OpenInbox) -> Callable[[argparse.Namespace], int]:
    def clear(args: argparse.Namespace) -> int:
        had = asyncio.run(_clear(open_inbox(args), args.conversation))
        sys.stdout.write(
            f"cleared the state of conversation {args.conversation}\n"
            if had
            else f"conversation {args.conversation} had no state\n"
        )
        return 0

    return clear


def add_state_commands(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
    *,
    parents: Sequence[argparse.ArgumentParser],
    inbox_help: str,
    open_inbox: OpenInbox,
) -> None:
    """Register ``state show`` and ``state clear`` on the ``whizrouter`` command."""
    state = commands.add_parser(
        "state",
        help="show or clear a conversation's state",
        description="A conversation's state (ctx.state), read or cleared in the bot's inbox. "
        "Works while the bot runs.",
    )
    actions = state.add_subparsers(dest="state_command", metavar="ACTION", required=True)
    show = actions.add_parser(
        "show",
        parents=list(parents),
        help="print the state as one line of JSON",
        description='Print {"conversation": ..., "state": ..., "data": {...}} on one line; '
        "exit 1 when the conversation has no state.",
    )
    clear = actions.add_parser(
        "clear",
        parents=list(parents),
        help="forget the state and its data",
        description="Forget the conversation's state and data.",
    )
    for parser, func in ((show, _show(open_inbox)), (clear, _clear_command(open_inbox))):
        parser.add_argument("conversation", metavar="CONVERSATION", help="the contact's wa_id")
        parser.add_argument("--inbox", help=inbox_help)
        parser.set_defaults(func=func)
