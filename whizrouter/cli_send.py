"""``whizrouter send``: post one callback to a running bot, as the provider would.

The body is built from arguments with the test kit's callback builders (a text, an image, a
button or list reply, a status), in either shape, or read from a JSON file. The bot's
webhook credentials come from the same environment the bot reads
(``WHIZROUTER_WEBHOOK_USER`` and ``WHIZROUTER_WEBHOOK_PASSWORD``), so a bot that requires
Basic auth accepts the callback. The command prints the bot's answer and exits 0 on a 200.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path
from typing import Any

import aiohttp
import orjson

from whizrouter.defaults import API_SHAPES, DEFAULT_SEND_URL, DEFAULT_TEST_WA_ID, ApiShape
from whizrouter.errors import WhizrouterError
from whizrouter.settings import Settings

#: Seconds to wait for the bot's answer.
SEND_TIMEOUT = 10.0


def build_body(args: argparse.Namespace, shape: ApiShape) -> bytes:
    """The callback body the arguments describe, as bytes to post.

    Raises:
        WhizrouterError: the JSON file cannot be read or is not JSON.
    """
    # Imported here: the builders are the test kit's, which `whizrouter run` never loads.
    from whizrouter.testing.callbacks import message_callback, status_callback, text_callback

    sender = {"wa_id": args.from_, "message_id": args.message_id, "shape": shape}
    body: dict[str, Any]
    if args.file is not None:
        try:
            raw = sys.stdin.buffer.read() if args.file == "-" else Path(args.file).read_bytes()
            orjson.loads(raw)
        except OSError as exc:
            raise WhizrouterError(f"cannot read {args.file}: {exc.strerror or exc}") from exc
        except orjson.JSONDecodeError as exc:
            raise WhizrouterError(f"{args.file} is not JSON ({exc}); fix it or use --text") from exc
        return raw
    if args.text is not None:
        body = text_callback(args.text, name=args.name, **sender)
    elif args.image is not None:
        image = {"id": args.image, "mime_type": "image/jpeg", "sha256": "0" * 64}
        if args.caption is not None:
            image["caption"] = args.caption
        body = message_callback("image", image, name=args.name, **sender)
    elif args.button_reply is not None:
        reply = {"id": args.button_reply, "title": args.title or args.button_reply}
        payload = {"type": "button_reply", "button_reply": reply}
        body = message_callback("interactive", payload, name=args.name, **sender)
    elif args.list_reply is not None:
        reply = {"id": args.list_reply, "title": args.title or args.list_reply}
        payload = {"type": "list_reply", "list_reply": reply}
        body = message_callback("interactive", payload, name=args.name, **sender)
    else:
        body = status_callback(args.id, args.status, recipient_id=args.from_, shape=shape)
    return orjson.dumps(body)


async def post(url: str, body: bytes, auth_header: str | None) -> tuple[int, str, str]:
    """POST ``body`` to ``url``; return the status, its reason and the answer's text.

    Raises:
        WhizrouterError: no bot answered (the message says how to start one).
    """
    headers = {"Content-Type": "application/json"}
    if auth_header is not None:
        headers["Authorization"] = auth_header
    timeout = aiohttp.ClientTimeout(total=SEND_TIMEOUT)
    try:
        async with (
            aiohttp.ClientSession(timeout=timeout) as session,
            session.post(url, data=body, headers=headers) as response,
        ):
            return response.status, response.reason or "", await response.text()
    except (aiohttp.ClientError, TimeoutError) as exc:
        raise WhizrouterError(
            f"no bot answered at {url} ({type(exc).__name__}: {exc}); start one with "
            "`whizrouter dev bot.py:app`, or give its webhook with --url"
        ) from exc


def _run(args: argparse.Namespace) -> int:
    if args.status is not None and args.id is None:
        raise WhizrouterError("--status needs --id, the id of the message the bot sent")
    if args.id is not None and args.status is None:
        raise WhizrouterError("--id goes with --status (such as --status delivered --id ...)")
    settings = Settings.resolve()
    shape: ApiShape = args.shape or settings.shape
    body = build_body(args, shape)
    status, reason, text = asyncio.run(post(args.url, body, settings.auth_header))
    sys.stdout.write(f"{status} {reason}\n{text}\n" if text else f"{status} {reason}\n")
    return 0 if status == 200 else 1


def add_command(commands: Any, parents: list[argparse.ArgumentParser]) -> None:
    """Register ``whizrouter send`` on the ``whizrouter`` subcommands."""
    command = commands.add_parser(
        "send",
        parents=parents,
        help="post a test callback (a text, image, reply or status) to a running bot",
        description="Post one callback to a running bot's webhook as the provider would, "
        "and print the answer (exit code 0 on 200). Give exactly one of --text, --image, "
        "--button-reply, --list-reply, --status (with --id) or --file. The webhook's Basic "
        "auth comes from WHIZROUTER_WEBHOOK_USER and WHIZROUTER_WEBHOOK_PASSWORD, as the "
        "bot's does.",
        epilog='examples: whizrouter send --text "hi" --from 15551230001; whizrouter send '
        "--button-reply yes; whizrouter send --status delivered --id wamid.fake-1; "
        "whizrouter send --file callback.json",
    )
    what = command.add_mutually_exclusive_group(required=True)
    what.add_argument("--text", help="a text message with this body")
    what.add_argument("--image", metavar="MEDIA_ID", help="an image message with this media id")
    what.add_argument("--button-reply", metavar="ID", help="a reply to the button with this id")
    what.add_argument("--list-reply", metavar="ID", help="a choice of the list row with this id")
    what.add_argument("--status", help="a status (sent, delivered, read, failed ...) of --id")
    what.add_argument("--file", help="a JSON file holding the whole callback body ('-': stdin)")
    command.add_argument("--id", help="with --status: the id of the message the bot sent")
    command.add_argument(
        "--from",
        dest="from_",
        default=DEFAULT_TEST_WA_ID,
        metavar="WA_ID",
        help=f"the sender's (with --status, the recipient's) WhatsApp id ({DEFAULT_TEST_WA_ID})",
    )
    command.add_argument("--name", default="Test User", help="the sender's profile name")
    command.add_argument("--caption", help="with --image: its caption")
    command.add_argument("--title", help="with a button or list reply: its title (the id)")
    command.add_argument("--message-id", help="the inbound message's id (a fresh one)")
    command.add_argument(
        "--shape",
        choices=API_SHAPES,
        default=None,
        help="callback shape: onprem (flat) or cloud (envelope); default WHIZARD_API_SHAPE",
    )
    command.add_argument(
        "--url", default=DEFAULT_SEND_URL, help=f"the bot's webhook ({DEFAULT_SEND_URL})"
    )
    command.set_defaults(func=_run)
