"""Outgoing message bodies: build the request body of each message kind and validate it.

Each builder takes the API shape and the arguments of the matching ``WhizardClient.send_*``
method, checks them against the limits of the WhatsApp Business API and returns the body to
POST, wrapped in the envelope of that shape (:func:`envelope`). A message that breaks a rule
raises :class:`~whizrouter.errors.MessageValidationError` here, before anything is sent; the
client's methods post the bodies (:mod:`whizrouter.sending`, :mod:`whizrouter.interactive`),
and the HTTP side (retries, errors) is :mod:`whizrouter.transport`'s.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Final

from whizrouter.defaults import ApiShape
from whizrouter.errors import MessageValidationError

__all__ = [
    "buttons_body",
    "contacts_body",
    "envelope",
    "invalid",
    "list_body",
    "location_body",
    "media_body",
    "reaction_body",
    "template_body",
    "text_body",
]

_MEDIA_KINDS: Final = ("image", "video", "audio", "document", "sticker")

# Limits of the WhatsApp Business API; breaking one gets a 400 from the provider anyway.
TEXT_MAX: Final = 4096
CAPTION_MAX: Final = 1024
INTERACTIVE_BODY_MAX: Final = 1024
HEADER_MAX: Final = 60
FOOTER_MAX: Final = 60
BUTTONS_MAX: Final = 3
BUTTON_TITLE_MAX: Final = 20
BUTTON_ID_MAX: Final = 256
LIST_ROWS_MAX: Final = 10
LIST_BUTTON_MAX: Final = 20
ROW_TITLE_MAX: Final = 24
ROW_DESCRIPTION_MAX: Final = 72
ROW_ID_MAX: Final = 200
SECTION_TITLE_MAX: Final = 24


def invalid(message: str) -> MessageValidationError:
    return MessageValidationError(message + "; nothing was sent")


def _kind_of(value: object) -> str:
    return "None" if value is None else type(value).__name__


def _require_str(value: object, what: str) -> None:
    # Type hints are not checked at run time: a bot passing an int or a dict would otherwise
    # send a body the provider refuses, or fail with an error that names no argument.
    if not isinstance(value, str):
        raise invalid(f"{what} must be a string, not {_kind_of(value)} ({value!r:.60})")


def _listed(value: object, what: str) -> list[Any]:
    """``value``'s items as a list: any iterable (a list, a tuple, a generator, dict values),
    but not a string, bytes or a single dict, which iterate as something else."""
    if isinstance(value, str | bytes | Mapping) or not isinstance(value, Iterable):
        raise invalid(f"{what}, not {_kind_of(value)} ({value!r:.60})")
    return list(value)


def _require_text(value: str, what: str, limit: int) -> None:
    _require_str(value, what)
    if not value or not value.strip():
        raise invalid(f"{what} is empty")
    if len(value) > limit:
        raise invalid(f"{what} has {len(value)} characters; the limit is {limit}")


def _optional_text(value: str | None, what: str, limit: int) -> None:
    if value is not None:
        _require_text(value, what, limit)


def envelope(
    shape: ApiShape, to: str, kind: str, content: Any, reply_to: str | None
) -> dict[str, Any]:
    _require_str(to, "the recipient `to`")
    if not to.strip():
        raise invalid("the recipient `to` is empty")
    if reply_to is not None:
        _require_str(reply_to, "reply_to (the id of the message replied to)")
    if shape == "cloud":
        body: dict[str, Any] = {
            "messaging_product": "whatsapp",
            "recipient_type": "individual",
            "to": to,
            "type": kind,
            kind: content,
        }
        if reply_to:
            body["context"] = {"message_id": reply_to}
        return body
    # The on-premises API has no quoted replies: reply_to is dropped there (documented).
    return {"recipient_type": "individual", "to": to, "type": kind, kind: content}


def text_body(
    shape: ApiShape, to: str, body: str, *, preview_url: bool, reply_to: str | None
) -> dict[str, Any]:
    _require_text(body, "the text body", TEXT_MAX)
    if not isinstance(preview_url, int) or preview_url not in (0, 1):  # bool is an int
        raise invalid(f"preview_url must be True or False, not {preview_url!r:.60}")
    preview_url = bool(preview_url)  # 0 and 1 too: the provider wants a JSON boolean
    if shape == "cloud":
        content: dict[str, Any] = {"body": body, "preview_url": preview_url}
        return envelope(shape, to, "text", content, reply_to)
    message = envelope(shape, to, "text", {"body": body}, reply_to)
    message["preview_url"] = preview_url
    return message


def media_body(
    shape: ApiShape,
    kind: str,
    to: str,
    id: str | None,
    link: str | None,
    caption: str | None,
    filename: str | None,
    reply_to: str | None,
) -> dict[str, Any]:
    if (id is None) == (link is None):
        which = "both" if id is not None else "neither"
        raise invalid(
            f"send_{kind} needs exactly one of id= (an uploaded media id) or link= "
            f"(a public https URL), got {which}"
        )
    for value, what in ((id, "id"), (link, "link"), (filename, "filename")):
        if value is not None:
            _require_str(value, f"the {kind} {what}")
    if id is not None and not id.strip():
        raise invalid(f"the {kind} id is empty")
    if link is not None and not link.strip():
        raise invalid(f"the {kind} link is empty")
    content: dict[str, Any] = {"id": id} if id is not None else {"link": link}
    if caption is not None:
        if kind in ("audio", "sticker"):
            raise invalid(f"{kind} messages cannot carry a caption")
        _require_text(caption, f"the {kind} caption", CAPTION_MAX)
        content["caption"] = caption
    if filename is not None:
        content["filename"] = filename
    return envelope(shape, to, kind, content, reply_to)


def location_body(
    shape: ApiShape,
    to: str,
    latitude: float,
    longitude: float,
    *,
    name: str | None,
    address: str | None,
    reply_to: str | None,
) -> dict[str, Any]:
    for value, what, limit in ((latitude, "latitude", 90), (longitude, "longitude", 180)):
        if not (
            isinstance(value, int | float) and math.isfinite(value) and -limit <= value <= limit
        ):
            raise invalid(f"{what} must be a number from -{limit} to {limit}, not {value!r}")
    for text, what in ((name, "the location name"), (address, "the location address")):
        if text is not None:
            _require_str(text, what)
    content: dict[str, Any] = {"latitude": latitude, "longitude": longitude}
    if name is not None:
        content["name"] = name
    if address is not None:
        content["address"] = address
    return envelope(shape, to, "location", content, reply_to)


def contacts_body(
    shape: ApiShape, to: str, contacts: Iterable[Mapping[str, Any]], *, reply_to: str | None
) -> dict[str, Any]:
    cards = _listed(contacts, "contacts must be a list of contact dicts")
    if not cards:
        raise invalid("contacts is empty")
    if not all(isinstance(card, Mapping) for card in cards):
        raise invalid("every contact must be a dict (a contact object)")
    return envelope(shape, to, "contacts", [dict(card) for card in cards], reply_to)


def template_body(
    shape: ApiShape,
    to: str,
    *,
    name: str,
    language: str,
    components: Iterable[Mapping[str, Any]] | None,
    namespace: str | None,
    reply_to: str | None,
) -> dict[str, Any]:
    _require_text(name, "the template name", 512)
    _require_text(language, "the template language", 15)
    template: dict[str, Any] = {"name": name}
    if shape == "cloud":
        template["language"] = {"code": language}
    else:
        if namespace is not None:
            _require_str(namespace, "the template namespace")
            template["namespace"] = namespace
        template["language"] = {"policy": "deterministic", "code": language}
    if components is not None:
        what = 'components must be a list of component dicts ({"type": "body", ...})'
        listed = _listed(components, what)
        if not all(isinstance(component, Mapping) for component in listed):
            raise invalid(f"{what}, got {listed!r:.60}")
        template["components"] = [dict(component) for component in listed]
    return envelope(shape, to, "template", template, reply_to)


def _decorate(
    interactive: dict[str, Any], header: str | None, footer: str | None
) -> dict[str, Any]:
    _optional_text(header, "the header", HEADER_MAX)
    _optional_text(footer, "the footer", FOOTER_MAX)
    if header is not None:
        interactive["header"] = {"type": "text", "text": header}
    if footer is not None:
        interactive["footer"] = {"text": footer}
    return interactive


def buttons_body(
    shape: ApiShape,
    to: str,
    body: str,
    buttons: Iterable[tuple[str, str]] | Mapping[str, str],
    *,
    header: str | None,
    footer: str | None,
    reply_to: str | None,
) -> dict[str, Any]:
    _require_text(body, "the body", INTERACTIVE_BODY_MAX)
    pairs = _listed(
        buttons.items() if isinstance(buttons, Mapping) else buttons,
        "buttons must be a list of (id, title) pairs or a dict of titles by id",
    )
    if not all(
        isinstance(pair, Sequence) and not isinstance(pair, str | bytes) and len(pair) == 2
        for pair in pairs
    ):
        raise invalid(f"every button must be an (id, title) pair, got {pairs!r:.80}")
    if not 1 <= len(pairs) <= BUTTONS_MAX:
        raise invalid(f"send_buttons takes 1 to {BUTTONS_MAX} buttons, got {len(pairs)}")
    seen: set[str] = set()
    rendered: list[dict[str, Any]] = []
    for button_id, title in pairs:
        _require_text(button_id, "a button id", BUTTON_ID_MAX)
        _require_text(title, f"the title of button {button_id!r}", BUTTON_TITLE_MAX)
        if button_id in seen:
            raise invalid(f"the button id {button_id!r} is used twice")
        seen.add(button_id)
        rendered.append({"type": "reply", "reply": {"id": button_id, "title": title}})
    interactive = {"type": "button", "body": {"text": body}, "action": {"buttons": rendered}}
    content = _decorate(interactive, header, footer)
    return envelope(shape, to, "interactive", content, reply_to)


def list_body(
    shape: ApiShape,
    to: str,
    body: str,
    *,
    button: str,
    sections: Iterable[Mapping[str, Any]],
    header: str | None,
    footer: str | None,
    reply_to: str | None,
) -> dict[str, Any]:
    _require_text(body, "the body", INTERACTIVE_BODY_MAX)
    _require_text(button, "the list button label", LIST_BUTTON_MAX)
    listed = _listed(sections, "sections must be a list of section dicts")
    if not all(isinstance(section, Mapping) for section in listed):
        raise invalid(f"every section must be a dict with rows, got {listed!r:.80}")
    if not listed:
        raise invalid("a list needs at least one section")
    rendered = [_render_section(section, len(listed) > 1) for section in listed]
    rows = [row["id"] for section in rendered for row in section["rows"]]
    if len(rows) > LIST_ROWS_MAX:
        raise invalid(f"a list holds at most {LIST_ROWS_MAX} rows in all, got {len(rows)}")
    duplicates = sorted({row for row in rows if rows.count(row) > 1})
    if duplicates:
        raise invalid(f"row ids must be unique; used twice: {', '.join(duplicates)}")
    interactive = {
        "type": "list",
        "body": {"text": body},
        "action": {"button": button, "sections": rendered},
    }
    content = _decorate(interactive, header, footer)
    return envelope(shape, to, "interactive", content, reply_to)


def reaction_body(shape: ApiShape, to: str, message_id: str, emoji: str) -> dict[str, Any]:
    _require_str(message_id, "the message id to react to")
    _require_str(emoji, "the reaction emoji (empty to remove one)")
    if not message_id or not message_id.strip():
        raise invalid("the message id to react to is empty")
    content = {"message_id": message_id, "emoji": emoji}
    return envelope(shape, to, "reaction", content, None)


def _render_section(section: Mapping[str, Any], title_required: bool) -> dict[str, Any]:
    title = section.get("title")
    if title is not None or title_required:
        _require_text(title if isinstance(title, str) else "", "a section title", SECTION_TITLE_MAX)
    listed = _listed(section.get("rows"), f"section {title!r} has no rows (a list of row dicts)")
    if not listed:
        raise invalid(f"section {title!r} has no rows")
    rendered_rows: list[dict[str, Any]] = []
    for row in listed:
        if not isinstance(row, Mapping):
            raise invalid(f"rows must be dicts with id and title, got {row!r}")
        row_id, row_title = row.get("id"), row.get("title")
        if not isinstance(row_id, str) or not isinstance(row_title, str):
            raise invalid(f"every row needs a string id and title, got {dict(row)!r}")
        _require_text(row_id, "a row id", ROW_ID_MAX)
        _require_text(row_title, f"the title of row {row_id!r}", ROW_TITLE_MAX)
        rendered: dict[str, Any] = {"id": row_id, "title": row_title}
        description = row.get("description")
        if description is not None:
            _require_text(
                str(description), f"the description of row {row_id!r}", ROW_DESCRIPTION_MAX
            )
            rendered["description"] = description
        rendered_rows.append(rendered)
    out: dict[str, Any] = {"rows": rendered_rows}
    if title is not None:
        out = {"title": title, "rows": rendered_rows}
    return out
