"""WhizardClient itself (``whizrouter.client``): mark_read, configuration from arguments and
the environment, secrets, sessions."""

from __future__ import annotations

import logging
from collections.abc import Callable

import aiohttp
import pytest
from pydantic import SecretStr

from tests.client.conftest import TO
from whizrouter.client import WhizardClient
from whizrouter.errors import ConfigurationError, ProviderError
from whizrouter.settings import check_webhook_url
from whizrouter.testing import TEST_RETRY, FakeProvider, meta_error_body


async def test_mark_read(fake: FakeProvider, client: WhizardClient) -> None:
    await client.mark_read("wamid.AB/c+d==")
    [call] = fake.calls
    if fake.shape == "onprem":
        assert (call.method, call.path, call.json) == (
            "PUT",
            "/v1/messages/wamid.AB/c+d==",
            {"status": "read"},
        )
    else:
        assert (call.method, call.path) == ("POST", "/messages")
        assert call.json == {
            "messaging_product": "whatsapp",
            "status": "read",
            "message_id": "wamid.AB/c+d==",
        }
    assert fake.marked_read == ["wamid.AB/c+d=="]


async def test_a_missing_key_fails_at_the_first_call_naming_the_variable(
    onprem: FakeProvider,
) -> None:
    client = WhizardClient(base_url=onprem.base_url)  # construction never fails
    with pytest.raises(ConfigurationError, match="set WHIZARD_API_KEY"):
        await client.send_text(TO, "hi")
    await client.close()
    assert onprem.calls == []


async def test_a_missing_base_url_fails_at_the_first_call_naming_the_variable() -> None:
    async with WhizardClient(api_key="k") as client:
        with pytest.raises(ConfigurationError, match="set WHIZARD_BASE_URL"):
            await client.mark_read("wamid.x")


async def test_a_base_url_that_is_not_http_is_refused() -> None:
    async with WhizardClient("k", "ftp://files.example.com") as client:
        with pytest.raises(ConfigurationError, match=r"WHIZARD_BASE_URL.*http"):
            await client.get_webhook()


async def test_settings_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    async with FakeProvider(shape="cloud", api_key="env-key") as cloud:
        monkeypatch.setenv("WHIZARD_API_KEY", "env-key")
        monkeypatch.setenv("WHIZARD_BASE_URL", cloud.base_url + "/")
        monkeypatch.setenv("WHIZARD_API_SHAPE", "cloud")
        async with WhizardClient(retry=TEST_RETRY) as client:
            assert client.shape == "cloud"
            assert client.base_url == cloud.base_url
            await client.send_text(TO, "from env")
        assert [c.path for c in cloud.sent] == ["/messages"]


def test_the_shape_defaults_to_onprem() -> None:
    assert WhizardClient().shape == "onprem"


def test_an_unknown_shape_names_the_variable_and_the_choices(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("WHIZARD_API_SHAPE", "graph")
    with pytest.raises(
        ConfigurationError, match="WHIZARD_API_SHAPE must be one of 'onprem', 'cloud'"
    ):
        WhizardClient()
    with pytest.raises(ConfigurationError, match="shape must be one of"):
        WhizardClient(shape="v2")  # type: ignore[arg-type]


def test_timeout_must_be_positive() -> None:
    with pytest.raises(ConfigurationError, match="timeout"):
        WhizardClient(timeout=0)


async def test_the_key_never_shows(
    onprem: FakeProvider, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret = "s3cret-key-0042"
    onprem.api_key = secret
    caplog.set_level(logging.DEBUG)
    for client in (
        WhizardClient(secret, onprem.base_url, retry=TEST_RETRY),
        WhizardClient(SecretStr(secret), onprem.base_url, retry=TEST_RETRY),
    ):
        assert secret not in repr(client)
        assert secret not in str(client)
        # A provider that echoes the key back in its error body gets it scrubbed.
        onprem.fail_next(503, b"")  # retried, and logged
        onprem.fail_next(400, meta_error_body(400, f"key {secret} is suspended"))
        async with client:
            with pytest.raises(ProviderError) as caught:
                await client.send_text(TO, "hi")
        assert "key *** is suspended" in str(caught.value)
        assert secret not in str(caught.value)
        assert secret not in repr(caught.value)
        assert secret not in repr(caught.value.raw)
    monkeypatch.setenv("WHIZARD_API_KEY", secret)
    assert secret not in repr(WhizardClient())
    assert secret not in caplog.text


@pytest.mark.parametrize(
    "echo",
    [
        lambda secret: secret.replace("/", "\\/"),  # PHP's json_encode escapes slashes
        lambda secret: "".join(f"\\u{ord(ch):04x}" for ch in secret),  # all \u escapes
    ],
)
async def test_the_key_never_shows_when_echoed_json_escaped(
    onprem: FakeProvider, caplog: pytest.LogCaptureFixture, echo: Callable[[str], str]
) -> None:
    secret = "SeKrEtKeY/123+abc=="
    onprem.api_key = secret
    caplog.set_level(logging.DEBUG)
    body = b'{"meta": {"success": false, "http_code": 400, "developer_message": "key '
    body += echo(secret).encode() + b' is suspended", "details": ["' + echo(secret).encode()
    body += b'"]}}'
    onprem.fail_next(503, body)  # retried, and logged
    onprem.fail_next(400, body)
    async with WhizardClient(secret, onprem.base_url, retry=TEST_RETRY) as client:
        with pytest.raises(ProviderError) as caught:
            await client.send_text(TO, "hi")
    assert "key *** is suspended" in str(caught.value)
    for shown in (str(caught.value), repr(caught.value), repr(caught.value.raw), caplog.text):
        assert secret not in shown
        assert secret.replace("/", "\\/") not in shown


def test_credentials_in_urls_are_refused_without_showing_them() -> None:
    with pytest.raises(ConfigurationError) as base:
        WhizardClient("key", "https://user:hunter22@waba.example.com")._transport._settings()
    assert "remove user:password@" in str(base.value) and "hunter22" not in str(base.value)
    with pytest.raises(ConfigurationError) as hook:
        check_webhook_url("https://user:hunter22@bot.example.com/webhook")
    assert "WHIZROUTER_WEBHOOK_USER" in str(hook.value) and "hunter22" not in str(hook.value)


async def test_a_given_session_is_never_closed(onprem: FakeProvider) -> None:
    async with aiohttp.ClientSession() as session:
        async with WhizardClient("test-key", onprem.base_url, session=session) as client:
            await client.send_text(TO, "hi")
        assert not session.closed
        await client.send_text(TO, "again")  # the session is still there
    assert len(onprem.sent) == 2


async def test_the_own_session_is_closed_and_reopened(onprem: FakeProvider) -> None:
    client = onprem.client()
    await client.close()  # closing before any call is fine
    async with client:
        await client.send_text(TO, "one")
    async with client:
        await client.send_text(TO, "two")
    await client.close()
    assert len(onprem.sent) == 2


def test_the_benchmark_smoke_mode_runs(capsys: pytest.CaptureFixture[str]) -> None:
    from benchmarks.client_overhead import main

    assert main(["--smoke"]) == 0
    output = capsys.readouterr().out
    assert "WhizardClient.send_text" in output
    assert "ratio" in output
