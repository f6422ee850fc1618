"""What the bot sent, read back as typed objects rather than raw JSON.

:func:`sent_message` turns one send the fake provider recorded into a :class:`SentText`,
:class:`SentMedia`, :class:`SentButtons`, :class:`SentList`, :class:`SentTemplate`,
:class:`SentReaction` or, for any other type (location, contacts ...), a :class:`SentOther`,
reading either API shape (the Cloud ``messaging_product`` envelope and quoted ``context``; the
on-premises top-level ``preview_url`` and template ``namespace``).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Final

from whizrouter.testing.recorded_call import RecordedCall

_MEDIA_KINDS: Final = ("image", "video", "audio", "document", "sticker")


@dataclass(frozen=True, slots=True)
class ReplyButton:
    """A reply button of a :class:`SentButtons`: its ``id`` comes back in the button reply."""

    id: str
    title: str


@dataclass(frozen=True, slots=True)
class ListRow:
    """A row of a :class:`SentList`; ``section`` is its section's title (None if untitled)."""

    id: str
    title: str
    description: str | None = None
    section: str | None = None


@dataclass(frozen=True, slots=True)
class SentMessage:
    """One message the bot sent, as the provider accepted it.

    Attributes:
        to: the recipient's WhatsApp id.
        type: the message type (``text``, ``image``, ``interactive``, ``template`` ...).
        id: the message id the provider answered with (statuses of it carry this id).
        reply_to: the id of the quoted message (Cloud ``context``), or None.
        raw: the request body as sent.
    """

    to: str
    type: str
    id: str | None
    reply_to: str | None
    raw: dict[str, Any] = field(repr=False)

    def describe(self) -> str:
        """One readable line, such as ``text to 15551230001: "echo: hi"``."""
        return f"{self.type} to {self.to}"


@dataclass(frozen=True, slots=True)
class SentText(SentMessage):
    """A text message: ``body``, and whether links get a preview."""

    body: str = ""
    preview_url: bool = False

    def describe(self) -> str:
        """One readable line."""
        return f"text to {self.to}: {self.body!r}"


@dataclass(frozen=True, slots=True)
class SentMedia(SentMessage):
    """An image, video, audio, document or sticker (``type`` says which), by ``media_id``
    (an uploaded id) or ``link``."""

    media_id: str | None = None
    link: str | None = None
    caption: str | None = None
    filename: str | None = None

    def describe(self) -> str:
        """One readable line."""
        what = f"id {self.media_id}" if self.media_id is not None else f"link {self.link}"
        caption = f" caption {self.caption!r}" if self.caption is not None else ""
        return f"{self.type} to {self.to}: {what}{caption}"


@dataclass(frozen=True, slots=True)
class SentButtons(SentMessage):
    """An interactive message with reply buttons."""

    body: str = ""
    buttons: tuple[ReplyButton, ...] = ()
    header: str | None = None
    footer: str | None = None

    def describe(self) -> str:
        """One readable line."""
        labels = ", ".join(f"[{b.title}] ({b.id})" for b in self.buttons)
        return f"buttons to {self.to}: {self.body!r} {labels}"


@dataclass(frozen=True, slots=True)
class SentList(SentMessage):
    """An interactive list: ``button`` opens it, ``rows`` are its rows across sections."""

    body: str = ""
    button: str = ""
    rows: tuple[ListRow, ...] = ()
    header: str | None = None
    footer: str | None = None

    def describe(self) -> str:
        """One readable line."""
        labels = ", ".join(f"{r.title} ({r.id})" for r in self.rows)
        return f"list to {self.to}: {self.body!r} [{self.button}] {labels}"


@dataclass(frozen=True, slots=True)
class SentTemplate(SentMessage):
    """A template message: its ``name``, ``language`` code and ``components`` as sent;
    ``parameters`` are the text parameters of its body, in order."""

    name: str = ""
    language: str = ""
    components: tuple[dict[str, Any], ...] = ()
    namespace: str | None = None

    @property
    def parameters(self) -> list[str]:
        """The ``text`` parameters of the body component, in order."""
        return [
            str(parameter.get("text", ""))
            for component in self.components
            if component.get("type") == "body"
            for parameter in component.get("parameters", ())
            if isinstance(parameter, dict) and parameter.get("type") == "text"
        ]

    def describe(self) -> str:
        """One readable line."""
        parameters = f" {self.parameters}" if self.parameters else ""
        return f"template to {self.to}: {self.name} ({self.language}){parameters}"


@dataclass(frozen=True, slots=True)
class SentReaction(SentMessage):
    """A reaction to ``message_id``; an empty ``emoji`` removes one."""

    message_id: str = ""
    emoji: str = ""

    def describe(self) -> str:
        """One readable line."""
        what = repr(self.emoji) if self.emoji else "removed"
        return f"reaction to {self.to}: {what} on {self.message_id}"


@dataclass(frozen=True, slots=True)
class SentOther(SentMessage):
    """Any other message type (location, contacts ...): ``content`` is its payload."""

    content: Any = None

    def describe(self) -> str:
        """One readable line."""
        return f"{self.type} to {self.to}: {self.content!r:.200}"


def _text(value: Any) -> str | None:
    """``value["text"]`` of a ``{"text": ...}`` part (body, header, footer), or None."""
    if isinstance(value, dict) and isinstance(value.get("text"), str):
        return str(value["text"])
    return None


def sent_message(body: dict[str, Any], message_id: str | None = None) -> SentMessage:
    """The typed form of one send request body, in either API shape.

    Args:
        body: the JSON body the bot posted to the provider's send route.
        message_id: the id the provider answered with, if known.
    """
    kind = str(body.get("type", "text"))
    content = body.get(kind)
    payload = content if isinstance(content, dict) else {}
    context = body.get("context")
    common: dict[str, Any] = {
        "to": str(body.get("to", "")),
        "type": kind,
        "id": message_id,
        "reply_to": context.get("message_id") if isinstance(context, dict) else None,
        "raw": body,
    }
    if kind == "text":
        # On-premises puts preview_url beside the text, Cloud inside it.
        preview = payload.get("preview_url", body.get("preview_url", False))
        return SentText(**common, body=str(payload.get("body", "")), preview_url=bool(preview))
    if kind in _MEDIA_KINDS:
        return SentMedia(
            **common,
            media_id=payload.get("id"),
            link=payload.get("link"),
            caption=payload.get("caption"),
            filename=payload.get("filename"),
        )
    if kind == "interactive" and payload.get("type") in ("button", "list"):
        action = payload.get("action") or {}
        decoration: dict[str, Any] = {
            "body": _text(payload.get("body")) or "",
            "header": _text(payload.get("header")),
            "footer": _text(payload.get("footer")),
        }
        if payload["type"] == "button":
            buttons = tuple(
                ReplyButton(id=str(b["reply"]["id"]), title=str(b["reply"]["title"]))
                for b in action.get("buttons", ())
            )
            return SentButtons(**common, **decoration, buttons=buttons)
        rows = tuple(
            ListRow(
                id=str(row["id"]),
                title=str(row["title"]),
                description=row.get("description"),
                section=section.get("title"),
            )
            for section in action.get("sections", ())
            for row in section.get("rows", ())
        )
        return SentList(**common, **decoration, button=str(action.get("button", "")), rows=rows)
    if kind == "template":
        language = payload.get("language")
        return SentTemplate(
            **common,
            name=str(payload.get("name", "")),
            language=str(language.get("code", "")) if isinstance(language, dict) else "",
            components=tuple(c for c in payload.get("components", ()) if isinstance(c, dict)),
            namespace=payload.get("namespace"),
        )
    if kind == "reaction":
        return SentReaction(
            **common,
            message_id=str(payload.get("message_id", "")),
            emoji=str(payload.get("emoji", "")),
        )
    return SentOther(**common, content=content)


def sent_messages(calls: Iterable[RecordedCall], *, to: str | None = None) -> list[SentMessage]:
    """The sends among ``calls`` that the provider accepted, typed, in order.

    Args:
        calls: recorded calls, such as ``fake.calls`` or what ``BotTester.send`` returned.
        to: keep only the messages to this WhatsApp id.
    """
    messages = []
    for call in calls:
        if call.kind == "send" and call.ok and isinstance(call.json, dict):
            message = sent_message(call.json, call.message_id)
            if to is None or message.to == to:
                messages.append(message)
    return messages
