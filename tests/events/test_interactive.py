"""Answers to what we sent: reply buttons, list rows, flows and template buttons."""

from __future__ import annotations

import pytest

from tests.events.samples import BASE, message, one
from whizrouter.events import ButtonMessage, InteractiveMessage


@pytest.mark.parametrize(
    ("name", "kind", "reply_id", "reply_title"),
    [
        ("onprem/interactive_button_reply.json", "button_reply", "confirm_yes", "Yes, confirm"),
        ("onprem/interactive_list_reply.json", "list_reply", "slot_2024_06_11_15", "Tue 15:00"),
        ("cloud/interactive_button_reply.json", "button_reply", "callback_data", "title"),
        ("cloud/interactive_list_reply.json", "list_reply", "callback_data", "title"),
    ],
)
def test_interactive_replies(name: str, kind: str, reply_id: str, reply_title: str) -> None:
    msg = one(name, InteractiveMessage)
    assert msg.interactive.type == kind
    assert msg.reply_id == reply_id
    assert msg.reply_title == reply_title


def test_list_reply_description() -> None:
    msg = one("cloud/interactive_list_reply.json", InteractiveMessage)
    assert msg.interactive.list_reply is not None
    assert msg.interactive.list_reply.description == "description"


def test_flow_reply_has_no_reply_id() -> None:
    msg = message(
        {
            **BASE,
            "type": "interactive",
            "interactive": {
                "type": "nfm_reply",
                "nfm_reply": {"name": "flow", "body": "Sent", "response_json": '{"a": 1}'},
            },
        }
    )
    assert isinstance(msg, InteractiveMessage)
    assert msg.reply_id is None
    assert msg.reply_title is None
    assert msg.interactive.nfm_reply is not None
    assert msg.interactive.nfm_reply.response_json == '{"a": 1}'


@pytest.mark.parametrize(
    ("name", "payload", "text"),
    [
        ("onprem/button_template_quick_reply.json", "STOP_PROMOTIONS", "Stop promotions"),
        ("cloud/button_template_quick_reply.json", "callback_data", "title"),
    ],
)
def test_template_button(name: str, payload: str, text: str) -> None:
    msg = one(name, ButtonMessage)
    assert msg.button.payload == payload
    assert msg.button.text == text


def test_template_button_with_null_payload() -> None:
    msg = message({**BASE, "type": "button", "button": {"payload": None, "text": "OK"}})
    assert isinstance(msg, ButtonMessage)
    assert msg.button.payload is None
