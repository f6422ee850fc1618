"""The test kit's front door: exactly these names, each documented, one way in."""

from __future__ import annotations

import importlib
import pkgutil

import whizrouter.testing

EXPECTED = {
    "BUSINESS_NUMBER",
    "BotTester",
    "ReplyButton",
    "DEFAULT_WA_ID",
    "FakeBody",
    "FakeMediaFile",
    "FakeProvider",
    "HandlerFailedError",
    "ListRow",
    "NatsServer",
    "PHONE_NUMBER_ID",
    "RecordedCall",
    "Replies",
    "SentButtons",
    "SentList",
    "SentMedia",
    "SentMessage",
    "SentOther",
    "SentReaction",
    "SentTemplate",
    "SentText",
    "StartBot",
    "TEST_RETRY",
    "WABA_ID",
    "errors_list_body",
    "free_port",
    "fresh_message_id",
    "graph_error_body",
    "html_error_page",
    "media_callback",
    "message_callback",
    "meta_error_body",
    "post_until_stored",
    "rate_limit_400_body",
    "restarting_555_body",
    "sent_message",
    "sent_messages",
    "status_callback",
    "text_callback",
}
#: Names that are values rather than classes or functions, so they carry no docstring.
VALUES = {
    "BUSINESS_NUMBER",
    "DEFAULT_WA_ID",
    "FakeBody",
    "PHONE_NUMBER_ID",
    "TEST_RETRY",
    "WABA_ID",
}


def test_all_is_exact_and_sorted() -> None:
    names = whizrouter.testing.__all__
    assert set(names) == EXPECTED
    # Sorted as ruff sorts it: constants, then classes, then functions.
    assert names == sorted(names, key=lambda n: (not n.isupper(), not n[0].isupper(), n))


def test_every_public_name_is_importable_and_documented() -> None:
    for name in whizrouter.testing.__all__:
        value = getattr(whizrouter.testing, name)
        if name not in VALUES:
            assert value.__doc__, f"{name} has no docstring"


def test_the_door_shows_the_three_line_test() -> None:
    doc = whizrouter.testing.__doc__ or ""
    assert "from whizrouter.testing import StartBot" in doc
    assert "bot = await bot_tester(app)" in doc


def test_no_module_of_the_kit_re_exports_through_getattr() -> None:
    for info in pkgutil.iter_modules(whizrouter.testing.__path__):
        module = importlib.import_module(f"whizrouter.testing.{info.name}")
        assert not hasattr(module, "__getattr__"), module.__name__
