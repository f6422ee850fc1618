"""The bodies the client sends, of every kind and in both shapes (``whizrouter.sending``,
``whizrouter.interactive``)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.client.conftest import TO, Send, envelope
from whizrouter.client import WhizardClient
from whizrouter.errors import ProviderError
from whizrouter.testing import FakeProvider


async def test_text_bodies_differ_by_shape(fake: FakeProvider, client: WhizardClient) -> None:
    message_id = await client.send_text(TO, "hello", preview_url=True, reply_to="wamid.Q")
    [call] = fake.sent
    assert message_id == call.message_id == "wamid.fake-1"
    assert call.headers["WHIZARD-KEY"] == "test-key"
    if fake.shape == "onprem":
        assert call.method == "POST"
        assert call.path == "/v1/messages"
        assert call.json == {
            "recipient_type": "individual",
            "to": TO,
            "type": "text",
            "text": {"body": "hello"},
            "preview_url": True,
        }
    else:
        assert call.path == "/messages"
        assert call.json == {
            "messaging_product": "whatsapp",
            "recipient_type": "individual",
            "to": TO,
            "type": "text",
            "text": {"body": "hello", "preview_url": True},
            "context": {"message_id": "wamid.Q"},
        }


async def test_template_bodies_differ_by_shape(fake: FakeProvider, client: WhizardClient) -> None:
    components = [{"type": "body", "parameters": [{"type": "text", "text": "42"}]}]
    await client.send_template(
        TO, name="order_update", language="en", components=components, namespace="ns-1"
    )
    [call] = fake.sent
    if fake.shape == "onprem":
        template = {
            "namespace": "ns-1",
            "name": "order_update",
            "language": {"policy": "deterministic", "code": "en"},
            "components": components,
        }
    else:
        template = {"name": "order_update", "language": {"code": "en"}, "components": components}
    assert call.json == envelope(fake.shape, "template", template)


SECTIONS = [
    {"title": "Drinks", "rows": [{"id": "tea", "title": "Tea", "description": "Hot"}]},
    {"title": "Food", "rows": [{"id": "cake", "title": "Cake"}]},
]


SENDS: list[tuple[str, Send, str, Any]] = [
    (
        "image",
        lambda c: c.send_image(TO, id="media-1", caption="look", reply_to="wamid.Q"),
        "image",
        {"id": "media-1", "caption": "look"},
    ),
    (
        "video",
        lambda c: c.send_video(TO, link="https://x.test/v.mp4", reply_to="wamid.Q"),
        "video",
        {"link": "https://x.test/v.mp4"},
    ),
    (
        "audio",
        lambda c: c.send_audio(TO, id="media-2", reply_to="wamid.Q"),
        "audio",
        {"id": "media-2"},
    ),
    (
        "document",
        lambda c: c.send_document(
            TO, link="https://x.test/a.pdf", caption="bill", filename="a.pdf", reply_to="wamid.Q"
        ),
        "document",
        {"link": "https://x.test/a.pdf", "caption": "bill", "filename": "a.pdf"},
    ),
    (
        "sticker",
        lambda c: c.send_sticker(TO, id="st-1", reply_to="wamid.Q"),
        "sticker",
        {"id": "st-1"},
    ),
    (
        "location",
        lambda c: c.send_location(
            TO, 52.52, 13.405, name="Mitte", address="Berlin", reply_to="wamid.Q"
        ),
        "location",
        {"latitude": 52.52, "longitude": 13.405, "name": "Mitte", "address": "Berlin"},
    ),
    (
        "contacts",
        lambda c: c.send_contacts(TO, [{"name": {"formatted_name": "Ana"}}], reply_to="wamid.Q"),
        "contacts",
        [{"name": {"formatted_name": "Ana"}}],
    ),
    (
        "buttons",
        lambda c: c.send_buttons(
            TO,
            "Pick one",
            [("yes", "Yes"), ("no", "No")],
            header="Q",
            footer="F",
            reply_to="wamid.Q",
        ),
        "interactive",
        {
            "type": "button",
            "header": {"type": "text", "text": "Q"},
            "body": {"text": "Pick one"},
            "footer": {"text": "F"},
            "action": {
                "buttons": [
                    {"type": "reply", "reply": {"id": "yes", "title": "Yes"}},
                    {"type": "reply", "reply": {"id": "no", "title": "No"}},
                ]
            },
        },
    ),
    (
        "list",
        lambda c: c.send_list(TO, "Menu", button="Open", sections=SECTIONS, reply_to="wamid.Q"),
        "interactive",
        {
            "type": "list",
            "body": {"text": "Menu"},
            "action": {"button": "Open", "sections": SECTIONS},
        },
    ),
]


@pytest.mark.parametrize(("name", "send", "kind", "content"), SENDS, ids=[s[0] for s in SENDS])
async def test_every_send_kind(
    fake: FakeProvider, client: WhizardClient, name: str, send: Send, kind: str, content: Any
) -> None:
    message_id = await send(client)
    [call] = fake.sent
    assert message_id == call.message_id
    # reply_to becomes a quoted reply on Cloud; the on-premises API has none.
    assert call.json == envelope(fake.shape, kind, content, reply_to="wamid.Q")


LISTED_FORMS: list[tuple[str, Send, Send]] = [
    (
        "buttons as a dict of titles by id",
        lambda c: c.send_buttons(TO, "Pick", {"yes": "Yes", "no": "No"}),
        lambda c: c.send_buttons(TO, "Pick", [("yes", "Yes"), ("no", "No")]),
    ),
    (
        "buttons as dict items, a generator and list pairs",
        lambda c: c.send_buttons(TO, "Pick", (pair for pair in {"yes": "Yes"}.items())),
        lambda c: c.send_buttons(TO, "Pick", [["yes", "Yes"]]),  # type: ignore[list-item]
    ),
    (
        "sections as a tuple, rows as a generator",
        lambda c: c.send_list(
            TO,
            "Menu",
            button="Open",
            sections=({"rows": (row for row in [{"id": "tea", "title": "Tea"}])},),
        ),
        lambda c: c.send_list(
            TO, "Menu", button="Open", sections=[{"rows": [{"id": "tea", "title": "Tea"}]}]
        ),
    ),
    (
        "sections as dict values",
        lambda c: c.send_list(TO, "Menu", button="Open", sections={"a": SECTIONS[0]}.values()),
        lambda c: c.send_list(TO, "Menu", button="Open", sections=[SECTIONS[0]]),
    ),
    (
        "template components as a tuple",
        lambda c: c.send_template(TO, name="hi", language="en", components=({"type": "body"},)),
        lambda c: c.send_template(TO, name="hi", language="en", components=[{"type": "body"}]),
    ),
    (
        "contacts as a generator",
        lambda c: c.send_contacts(TO, (card for card in [{"name": {"formatted_name": "Ana"}}])),
        lambda c: c.send_contacts(TO, [{"name": {"formatted_name": "Ana"}}]),
    ),
    (
        "preview_url as 1",
        lambda c: c.send_text(TO, "see https://x.test", preview_url=1),  # type: ignore[arg-type]
        lambda c: c.send_text(TO, "see https://x.test", preview_url=True),
    ),
]


@pytest.mark.parametrize(
    ("name", "send", "as_list"), LISTED_FORMS, ids=[form[0] for form in LISTED_FORMS]
)
async def test_any_iterable_builds_what_a_list_builds(
    fake: FakeProvider, client: WhizardClient, name: str, send: Send, as_list: Send
) -> None:
    await send(client)
    await as_list(client)
    first, second = fake.sent
    assert first.json == second.json


async def test_reaction_and_its_removal(fake: FakeProvider, client: WhizardClient) -> None:
    await client.send_reaction(TO, "wamid.IN", "👍")
    await client.send_reaction(TO, "wamid.IN", "")
    first, second = fake.sent
    assert first.json == envelope(fake.shape, "reaction", {"message_id": "wamid.IN", "emoji": "👍"})
    assert second.json == envelope(fake.shape, "reaction", {"message_id": "wamid.IN", "emoji": ""})


async def test_low_level_send_fills_the_envelope(fake: FakeProvider, client: WhizardClient) -> None:
    message_id = await client.send({"to": TO, "type": "text", "text": {"body": "raw"}})
    [call] = fake.sent
    assert message_id == call.message_id
    assert call.json == envelope(fake.shape, "text", {"body": "raw"})


async def test_an_answer_without_message_id_is_an_error(onprem: FakeProvider) -> None:
    onprem.fail_next(200, {"meta": {"api_status": "stable"}})
    async with onprem.client() as client:
        with pytest.raises(ProviderError, match="no message id") as caught:
            await client.send_text(TO, "hi")
    assert caught.value.http_code == 200
