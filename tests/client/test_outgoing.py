"""Messages that break a rule are refused before anything is sent (``whizrouter.outgoing``)."""

from __future__ import annotations

import pytest

from tests.client.conftest import TO, Send
from whizrouter.errors import MessageValidationError
from whizrouter.testing import FakeProvider

INVALID: list[tuple[Send, str]] = [
    (lambda c: c.send_text(TO, ""), "text body is empty"),
    (lambda c: c.send_text(TO, "x" * 4097), "4097 characters; the limit is 4096"),
    (lambda c: c.send_text("", "hi"), "recipient `to` is empty"),
    (lambda c: c.send_text("  ", "hi"), "recipient `to` is empty"),
    (lambda c: c.send_buttons(TO, "b", []), "1 to 3 buttons, got 0"),
    (lambda c: c.send_buttons(TO, "b", [(str(i), str(i)) for i in range(4)]), "got 4"),
    (lambda c: c.send_buttons(TO, "b", [("a", "x" * 21)]), "limit is 20"),
    (lambda c: c.send_buttons(TO, "b", [("a", "A"), ("a", "B")]), "'a' is used twice"),
    (lambda c: c.send_buttons(TO, "", [("a", "A")]), "body is empty"),
    (lambda c: c.send_list(TO, "b", button="Open", sections=[]), "at least one section"),
    (
        lambda c: c.send_list(TO, "b", button="Open", sections=[{"title": "S", "rows": []}]),
        "has no rows",
    ),
    (
        lambda c: c.send_list(
            TO,
            "b",
            button="Open",
            sections=[{"title": "S", "rows": [{"id": str(i), "title": "t"} for i in range(11)]}],
        ),
        "at most 10 rows in all, got 11",
    ),
    (
        lambda c: c.send_list(
            TO, "b", button="x" * 21, sections=[{"rows": [{"id": "a", "title": "A"}]}]
        ),
        "list button label has 21 characters",
    ),
    (
        lambda c: c.send_list(
            TO,
            "b",
            button="Open",
            sections=[
                {"title": "S", "rows": [{"id": "a", "title": "A"}, {"id": "a", "title": "B"}]}
            ],
        ),
        "used twice: a",
    ),
    (lambda c: c.send_image(TO), "exactly one of id= .* or link= .*, got neither"),
    (lambda c: c.send_image(TO, id="m", link="https://x.test/i.png"), "got both"),
    (lambda c: c.send_audio(TO, id="m", caption="no"), "audio messages cannot carry a caption"),
    (lambda c: c.send_sticker(TO, id="m", caption="no"), "sticker messages cannot carry a caption"),
    (lambda c: c.send_location(TO, 91.0, 0.0), "latitude must be a number from -90 to 90"),
    (lambda c: c.send_contacts(TO, []), "contacts is empty"),
    (lambda c: c.send_template(TO, name="", language="en"), "template name is empty"),
    (lambda c: c.send_reaction(TO, "", "👍"), "message id to react to is empty"),
    (lambda c: c.mark_read(""), "message id to mark read is empty"),
    # Wrong types: refused naming the argument, never sent or failing with a bare TypeError.
    (lambda c: c.send_text(TO, 42), "text body must be a string, not int"),  # type: ignore[arg-type]
    (lambda c: c.send_text(15550001, "hi"), "recipient `to` must be a string, not int"),  # type: ignore[arg-type]
    (lambda c: c.send_text(TO, "hi", preview_url="yes"), "preview_url must be True or False"),  # type: ignore[arg-type]
    (lambda c: c.send_text(TO, "hi", reply_to=7), "reply_to .* must be a string"),  # type: ignore[arg-type]
    (lambda c: c.send_image(TO, id=123), "image id must be a string, not int"),  # type: ignore[arg-type]
    (lambda c: c.send_document(TO, id="m", filename=5), "document filename must be a string"),  # type: ignore[arg-type]
    (lambda c: c.send_location(TO, 1.0, 2.0, name=3), "location name must be a string"),  # type: ignore[arg-type]
    (lambda c: c.send_contacts(TO, "oops"), "contacts must be a list of contact dicts, not str"),  # type: ignore[arg-type]
    (
        lambda c: c.send_template(TO, name="hello", language="en", components="oops"),  # type: ignore[arg-type]
        "components must be a list of component dicts",
    ),
    (
        lambda c: c.send_template(TO, name="hello", language="en", components=["oops"]),  # type: ignore[list-item]
        "components must be a list of component dicts",
    ),
    (lambda c: c.send_template(TO, name=None, language="en"), "template name must be a string"),  # type: ignore[arg-type]
    (lambda c: c.send_buttons(TO, "b", "ab"), "buttons must be a list of .id, title. pairs"),  # type: ignore[arg-type]
    (lambda c: c.send_buttons(TO, "b", 3), "buttons must be a list .* not int"),  # type: ignore[arg-type]
    (lambda c: c.send_buttons(TO, "b", ["ab"]), "every button must be an .id, title. pair"),  # type: ignore[list-item]
    (lambda c: c.send_text(TO, "hi", preview_url=2), "preview_url must be True or False"),  # type: ignore[arg-type]
    (
        lambda c: c.send_list(TO, "b", button="Open", sections={"rows": []}),  # type: ignore[dict-item]
        "sections must be a list of section dicts, not dict",
    ),
    (lambda c: c.send_buttons(TO, "b", [("a",)]), "every button must be an .id, title. pair"),  # type: ignore[list-item]
    (lambda c: c.send_buttons(TO, "b", [(1, "A")]), "a button id must be a string, not int"),  # type: ignore[list-item]
    (
        lambda c: c.send_list(TO, "b", button="Open", sections="oops"),  # type: ignore[arg-type]
        "sections must be a list of section dicts, not str",
    ),
    (
        lambda c: c.send_list(TO, "b", button="Open", sections=[["a"]]),  # type: ignore[list-item]
        "every section must be a dict with rows",
    ),
    (lambda c: c.send_reaction(TO, "wamid.1", None), "reaction emoji .* must be a string"),  # type: ignore[arg-type]
    (lambda c: c.mark_read(12), "message id to mark read is empty or not a string"),  # type: ignore[arg-type]
]


@pytest.mark.parametrize(("send", "message"), INVALID)
async def test_invalid_messages_are_refused_before_sending(
    onprem: FakeProvider, send: Send, message: str
) -> None:
    async with onprem.client() as client:
        with pytest.raises(MessageValidationError, match=message) as caught:
            await send(client)
    assert "nothing was sent" in str(caught.value)
    assert onprem.calls == []
