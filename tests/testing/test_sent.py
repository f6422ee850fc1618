"""What a bot sent, read back typed: every kind, in both API shapes, through a real bot."""

from __future__ import annotations

import pytest

from whizrouter import Context, TextMessage, WhizRouter
from whizrouter.defaults import ApiShape
from whizrouter.testing import (
    ListRow,
    ReplyButton,
    SentButtons,
    SentList,
    SentMedia,
    SentOther,
    SentReaction,
    SentTemplate,
    SentText,
    StartBot,
    sent_message,
)

SHAPES: tuple[ApiShape, ...] = ("onprem", "cloud")


def showcase_bot() -> WhizRouter:
    """A bot that answers each word with one kind of message."""
    app = WhizRouter()

    @app.on_message(type="text")
    async def answer(message: TextMessage, ctx: Context) -> None:
        word = message.text.body
        if word == "menu":
            await ctx.reply_buttons("Pick one", [("yes", "Yes"), ("no", "No")], quote=True)
        elif word == "list":
            await ctx.reply_list(
                "Choose a size",
                button="Sizes",
                sections=[
                    {"title": "Small", "rows": [{"id": "s", "title": "S", "description": "tiny"}]},
                    {"title": "Large", "rows": [{"id": "l", "title": "L"}]},
                ],
            )
        elif word == "photo":
            await ctx.reply_image(id="media-1", caption="a cat")
            await ctx.reply_document(link="https://example.com/a.pdf", filename="a.pdf")
        elif word == "template":
            await ctx.reply_template(
                name="order_update",
                language="en",
                components=[{"type": "body", "parameters": [{"type": "text", "text": "42"}]}],
            )
        elif word == "react":
            await ctx.react("👍")
        elif word == "where":
            await ctx.client.send_location(ctx.conversation, 52.5, 13.4, name="Berlin")
        else:
            await ctx.reply("echo: " + word, preview_url=True)

    return app


@pytest.mark.parametrize("shape", SHAPES)
async def test_buttons_read_back_with_their_ids(bot_tester: StartBot, shape: ApiShape) -> None:
    bot = await bot_tester(showcase_bot(), shape=shape)
    replies = await bot.text("menu", message_id="wamid.IN1")
    assert replies == []  # no text among them
    assert replies.buttons[0].id == "yes"
    assert replies.buttons == [ReplyButton("yes", "Yes"), ReplyButton("no", "No")]
    (sent,) = replies.messages
    assert isinstance(sent, SentButtons)
    assert sent.body == "Pick one"
    assert sent.to == "15551230001"
    assert sent.id is not None and sent.id.startswith("wamid.fake-")
    # Quoted replies exist only on Cloud; on-premises drops them.
    assert sent.reply_to == ("wamid.IN1" if shape == "cloud" else None)


@pytest.mark.parametrize("shape", SHAPES)
async def test_list_rows_keep_their_section(bot_tester: StartBot, shape: ApiShape) -> None:
    bot = await bot_tester(showcase_bot(), shape=shape)
    replies = await bot.text("list")
    assert replies.rows == [
        ListRow("s", "S", "tiny", section="Small"),
        ListRow("l", "L", None, section="Large"),
    ]
    (sent,) = replies.messages
    assert isinstance(sent, SentList)
    assert (sent.body, sent.button) == ("Choose a size", "Sizes")


@pytest.mark.parametrize("shape", SHAPES)
async def test_media_template_reaction_and_text(bot_tester: StartBot, shape: ApiShape) -> None:
    bot = await bot_tester(showcase_bot(), shape=shape)
    media = (await bot.text("photo")).media
    assert [(m.type, m.media_id, m.link, m.caption, m.filename) for m in media] == [
        ("image", "media-1", None, "a cat", None),
        ("document", None, "https://example.com/a.pdf", None, "a.pdf"),
    ]
    (template,) = (await bot.text("template")).templates
    assert (template.name, template.language, template.parameters) == ("order_update", "en", ["42"])
    assert template.namespace is None
    replies = await bot.text("react", message_id="wamid.IN2")
    assert replies.reactions[0].emoji == "👍"
    assert replies.reactions[0].message_id == "wamid.IN2"
    replies = await bot.text("hello")
    assert replies == ["echo: hello"]
    assert replies.texts[0].preview_url is True  # top level on-premises, inside text on Cloud
    (other,) = (await bot.text("where")).messages
    assert isinstance(other, SentOther)
    assert other.type == "location"
    assert other.content["name"] == "Berlin"
    # Everything the bot sent, typed, in order.
    assert [type(m) for m in bot.sent] == [
        SentMedia,
        SentMedia,
        SentTemplate,
        SentReaction,
        SentText,
        SentOther,
    ]


def test_each_kind_describes_itself_in_one_line() -> None:
    onprem_template = {
        "recipient_type": "individual",
        "to": "1555",
        "type": "template",
        "template": {
            "namespace": "ns-1",
            "name": "hello",
            "language": {"policy": "deterministic", "code": "de"},
        },
    }
    template = sent_message(onprem_template, "wamid.1")
    assert isinstance(template, SentTemplate)
    assert template.namespace == "ns-1"
    assert template.describe() == "template to 1555: hello (de)"
    text = sent_message({"to": "1555", "type": "text", "text": {"body": "hi"}})
    assert text.describe() == "text to 1555: 'hi'"
    reaction = sent_message(
        {"to": "1555", "type": "reaction", "reaction": {"message_id": "w1", "emoji": ""}}
    )
    assert reaction.describe() == "reaction to 1555: removed on w1"
