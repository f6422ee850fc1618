"""Settings from arguments and the environment; secrets stay out of reprs and logs."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

import pytest

from tests.conftest import BotClient
from whizrouter import ConfigurationError, RetryPolicy, WhizRouter
from whizrouter.lifecycle import Role
from whizrouter.settings import ClientSettings, Settings, inbox_url_from_env
from whizrouter.testing import FakeProvider, text_callback

MakeApp = Callable[..., WhizRouter]


def test_environment_fills_what_arguments_leave_out() -> None:
    env = {
        "WHIZARD_API_KEY": "env-key",
        "WHIZARD_BASE_URL": "https://api.example.com",
        "WHIZARD_API_SHAPE": "cloud",
        "WHIZROUTER_INBOX": "memory",
        "WHIZROUTER_PLUGINS": "mark-read, audit",
        "WHIZROUTER_CONCURRENCY": "8",
        "WHIZROUTER_WEBHOOK_URL": "https://bot.example.com/hook",
        "WHIZROUTER_WEBHOOK_USER": "u",
        "WHIZROUTER_WEBHOOK_PASSWORD": "p",
    }
    settings = Settings.resolve(env=env, concurrency=16)
    assert settings.api_key is not None
    assert settings.api_key.get_secret_value() == "env-key"
    assert settings.shape == "cloud"
    assert settings.plugins == ("mark-read", "audit")
    assert settings.concurrency == 16  # the argument wins
    assert settings.inbox_url == "memory"
    assert settings.auth_header == "Basic dTpw"


def test_defaults() -> None:
    settings = Settings.resolve(env={})
    assert settings.inbox_url == "sqlite:///whizrouter-inbox.db"
    assert settings.shape == "onprem"
    assert settings.concurrency == 64
    assert settings.body_limit == 10 * 1024 * 1024
    assert settings.auth_header is None


def test_the_client_settings_come_from_arguments_then_the_environment() -> None:
    env = {
        "WHIZARD_API_KEY": "env-key",
        "WHIZARD_BASE_URL": " https://api.example.com/ ",
        "WHIZARD_API_SHAPE": " Cloud ",
    }
    from_env = ClientSettings.resolve(env=env)
    assert from_env.api_key is not None
    assert from_env.api_key.get_secret_value() == "env-key"
    assert (from_env.base_url, from_env.shape) == ("https://api.example.com", "cloud")
    given = ClientSettings.resolve("key", "https://b.example.com/", "onprem", env=env)
    assert given.api_key is not None
    assert given.api_key.get_secret_value() == "key"
    assert (given.base_url, given.shape) == ("https://b.example.com", "onprem")
    assert ClientSettings.resolve(env={}) == ClientSettings(None, None, "onprem")
    with pytest.raises(ConfigurationError, match="WHIZARD_API_SHAPE must be one of"):
        ClientSettings.resolve(env={"WHIZARD_API_SHAPE": "graph"})


def test_the_inbox_variable_counts_only_when_set() -> None:
    assert inbox_url_from_env({"WHIZROUTER_INBOX": "memory"}) == "memory"
    assert inbox_url_from_env({"WHIZROUTER_INBOX": ""}) is None
    assert inbox_url_from_env({}) is None


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"WHIZARD_API_SHAPE": "graph"}, "WHIZARD_API_SHAPE='graph' is not known"),
        ({"WHIZROUTER_CONCURRENCY": "0"}, "must be at least 1"),
        ({"WHIZROUTER_MAX_BACKLOG": "many"}, "WHIZROUTER_MAX_BACKLOG='many'"),
        ({"WHIZROUTER_WEBHOOK_USER": "only-user"}, "set both WHIZROUTER_WEBHOOK_USER"),
        ({"WHIZROUTER_WEBHOOK_URL": "http://x.example.com"}, "must be an https:// URL"),
        ({"WHIZARD_BASE_URL": "not-a-url"}, "WHIZARD_BASE_URL or base_url=.*not .not-a-url."),
        ({"WHIZARD_BASE_URL": "waba.example.com"}, "such as https://waba.example.com"),
    ],
)
def test_bad_values_name_the_variable(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message.replace("(", r"\(")):
        Settings.resolve(env=env)


@pytest.mark.parametrize("role", ["receiver", "worker"])
async def test_a_split_role_refuses_a_memory_inbox(role: Role) -> None:
    app = WhizRouter(inbox="memory", role=role, api_key="k", base_url="https://x.example")
    with pytest.raises(ConfigurationError, match="a memory inbox lives in this process only"):
        await app.start()
    assert not app.started


def test_bad_inbox_url_says_what_to_write() -> None:
    app = WhizRouter(inbox="postgres://db")
    with pytest.raises(ConfigurationError, match="use 'memory'"):
        _ = app.inbox


async def test_secrets_never_appear_in_reprs_or_logs(
    make_app: MakeApp,
    serve: Callable[[WhizRouter], Awaitable[BotClient]],
    provider: FakeProvider,
    caplog: pytest.LogCaptureFixture,
) -> None:
    password = "pw-Zq81-never-log"
    app = make_app(
        webhook_user="whizard",
        webhook_password=password,
        webhook_url="https://bot.example.com/hook",
        retry=RetryPolicy(attempts=1),
    )

    @app.on_message()
    async def reply(message: object, ctx: object) -> None:
        raise RuntimeError("boom")

    with caplog.at_level(logging.DEBUG):
        client = await serve(app)
        await client.post(
            "/webhook",
            json=text_callback("x"),
            headers={"Authorization": app.settings.auth_header or ""},
        )
        assert app.dispatcher is not None
        await app.dispatcher.wait_idle()
        await client.close()
    texts = caplog.text + repr(app.settings) + repr(app.client) + str(app.settings)
    assert password not in texts
    assert provider.api_key not in texts
    assert (app.settings.auth_header or "x")[6:] not in texts  # the base64 credentials
