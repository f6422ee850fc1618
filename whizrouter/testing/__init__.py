"""The whizrouter test kit: test a bot, or code that calls the Whizard API, over real HTTP.

Import everything from here. A whole bot test is three lines, with the ``bot_tester``
fixture of the ``whizrouter`` pytest plugin (installed with whizrouter)::

    from whizrouter.testing import StartBot

    async def test_echo(bot_tester: StartBot) -> None:
        bot = await bot_tester(app)
        assert await bot.text("hi") == ["echo: hi"]

What is here:

* :class:`BotTester` (the ``bot_tester`` fixture): runs an app on a loopback server against
  its own fake provider, posts callbacks and waits until the handlers settled them;
  :class:`HandlerFailedError` is how a handler that gave up fails the test.
* :class:`FakeProvider` (the ``fake_provider`` fixture): a real aiohttp server that speaks
  either API shape, records every request as a :class:`RecordedCall` and can be told to fail
  (:meth:`~FakeProvider.fail_next` with any :data:`FakeBody`, such as the error bodies
  :func:`meta_error_body`, :func:`errors_list_body`, :func:`graph_error_body`,
  :func:`html_error_page`, :func:`rate_limit_400_body` and :func:`restarting_555_body`), to
  answer slowly or to drop the connection. :data:`TEST_RETRY` is the quick retry policy of
  the clients it makes (the ``whizard_client`` fixture).
* Callback builders: :func:`text_callback`, :func:`media_callback` (with
  :meth:`FakeProvider.add_media` to hold the file), :func:`status_callback` and
  :func:`message_callback` make webhook bodies of either shape with a
  :func:`fresh_message_id`, from :data:`DEFAULT_WA_ID` to the test business
  (:data:`BUSINESS_NUMBER`, :data:`PHONE_NUMBER_ID`, :data:`WABA_ID`).
* What the bot sent, typed: ``bot.text`` answers :class:`Replies` (the text bodies, and
  ``.buttons``, ``.rows``, ``.media``, ``.templates``, ``.reactions``); ``bot.sent`` and
  :func:`sent_messages` read recorded calls as :class:`SentText`, :class:`SentMedia`,
  :class:`SentButtons` (of :class:`ReplyButton`), :class:`SentList` (of :class:`ListRow`),
  :class:`SentTemplate`, :class:`SentReaction` or :class:`SentOther`, all
  :class:`SentMessage`.
* For a bot run as its own process: :func:`free_port`, :class:`NatsServer` (a real
  ``nats-server -js``) and :func:`post_until_stored` (post a callback as the provider does).

The fixtures themselves live in :mod:`whizrouter.testing.pytest_plugin`.
"""

from whizrouter.testing.bot_tester import BotTester, HandlerFailedError, StartBot
from whizrouter.testing.callback_posting import post_until_stored
from whizrouter.testing.callbacks import (
    BUSINESS_NUMBER,
    DEFAULT_WA_ID,
    PHONE_NUMBER_ID,
    WABA_ID,
    fresh_message_id,
    media_callback,
    message_callback,
    status_callback,
    text_callback,
)
from whizrouter.testing.error_bodies import (
    errors_list_body,
    graph_error_body,
    html_error_page,
    meta_error_body,
    rate_limit_400_body,
    restarting_555_body,
)
from whizrouter.testing.fake_media import FakeMediaFile
from whizrouter.testing.fake_provider import TEST_RETRY, FakeProvider
from whizrouter.testing.injections import FakeBody
from whizrouter.testing.nats_server import NatsServer
from whizrouter.testing.ports import free_port
from whizrouter.testing.recorded_call import RecordedCall
from whizrouter.testing.replies import Replies
from whizrouter.testing.sent import (
    ListRow,
    ReplyButton,
    SentButtons,
    SentList,
    SentMedia,
    SentMessage,
    SentOther,
    SentReaction,
    SentTemplate,
    SentText,
    sent_message,
    sent_messages,
)

__all__ = [
    "BUSINESS_NUMBER",
    "DEFAULT_WA_ID",
    "PHONE_NUMBER_ID",
    "TEST_RETRY",
    "WABA_ID",
    "BotTester",
    "FakeBody",
    "FakeMediaFile",
    "FakeProvider",
    "HandlerFailedError",
    "ListRow",
    "NatsServer",
    "RecordedCall",
    "Replies",
    "ReplyButton",
    "SentButtons",
    "SentList",
    "SentMedia",
    "SentMessage",
    "SentOther",
    "SentReaction",
    "SentTemplate",
    "SentText",
    "StartBot",
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
]
