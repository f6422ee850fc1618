"""The ``whizrouter`` command: help texts, errors, and a real bot process."""

from __future__ import annotations

import re
import socket
import subprocess
import sys
from pathlib import Path

import aiohttp
import anyio
import pytest

from tests.conftest import fixture_bytes, raw_http
from tests.process import ROOT, BotProcess
from whizrouter.cli import main
from whizrouter.testing import FakeProvider, text_callback


@pytest.mark.parametrize(
    "command",
    [
        [],
        ["run"],
        ["inbox"],
        ["inbox", "stats"],
        ["dead"],
        ["dead", "list"],
        ["dead", "replay"],
        ["dead", "drop"],
    ],
)
def test_every_command_has_help(command: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main([*command, "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert "usage: whizrouter" in out
    assert len(out.splitlines()) > 3


def test_help_and_configuration_page_name_every_environment_variable(
    capsys: pytest.CaptureFixture[str],
) -> None:
    source = "".join(path.read_text() for path in (ROOT / "whizrouter").rglob("*.py"))
    variables = set(re.findall(r'"((?:WHIZARD|WHIZROUTER)_[A-Z_]+)"', source))
    assert "WHIZROUTER_INBOX" in variables
    with pytest.raises(SystemExit):
        main(["run", "--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    configuration = (ROOT / "docs" / "configuration.md").read_text()
    for variable in sorted(variables):
        assert variable in help_text, variable
        assert f"`{variable}`" in configuration, variable


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    from whizrouter import __version__

    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out.strip() == f"whizrouter {__version__}"


@pytest.mark.parametrize("port", ["99999", "65536", "-1", "http"])
def test_a_port_that_is_not_a_tcp_port_is_a_usage_error(
    port: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["run", "examples/echo_bot.py:app", "--port", port])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert f"--port must be a TCP port from 1 to 65535 (0: any free one), not {port}" in err


def test_python_dash_m_works() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "whizrouter", "--help"],
        capture_output=True,
        text=True,
        check=False,
        cwd=ROOT,
    )
    assert result.returncode == 0
    assert "run" in result.stdout


def test_bad_target_says_what_to_write(caplog: pytest.LogCaptureFixture) -> None:
    assert main(["run", "no_such_module_here:app"]) == 2
    assert "cannot import" in caplog.text
    assert main(["run", "tests.conftest:Recorder"]) == 2
    assert "not a WhizRouter" in caplog.text
    assert main(["run", "tests.conftest:no_such_app"]) == 2
    assert "tests.conftest has no attribute 'no_such_app'" in caplog.text


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("WHIZROUTER_CONCURRENCY", "lots", "WHIZROUTER_CONCURRENCY='lots' is not a whole number"),
        (
            "WHIZROUTER_LOOP",
            "fastest",
            "WHIZROUTER_LOOP='fastest' is not an event loop whizrouter knows",
        ),
    ],
)
def test_bad_environment_value_is_a_clear_error(
    variable: str,
    value: str,
    message: str,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setenv(variable, value)
    monkeypatch.setenv("WHIZROUTER_INBOX", "memory")
    sys.modules.pop("tests.bots.slow_bot", None)
    assert main(["run", "tests.bots.slow_bot:app", "--port", "0"]) == 1
    assert message in caplog.text


def test_unknown_plugin_fails_listing_installed(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    monkeypatch.setenv("WHIZROUTER_PLUGINS", "mark-raed")
    monkeypatch.setenv("WHIZROUTER_INBOX", "memory")
    sys.modules.pop("tests.bots.slow_bot", None)
    assert main(["run", "tests.bots.slow_bot:app", "--port", "0"]) == 1
    assert "no plugin named 'mark-raed'" in caplog.text
    assert "mark-read" in caplog.text


@pytest.mark.slow
async def test_bot_process_serves_replies_and_drains_on_sigterm(tmp_path: Path) -> None:
    async with FakeProvider() as provider:
        bot = BotProcess(
            "tests.bots.slow_bot:app",
            {
                "WHIZARD_API_KEY": provider.api_key,
                "WHIZARD_BASE_URL": provider.base_url,
                "WHIZROUTER_INBOX": f"sqlite:///{tmp_path / 'inbox.db'}",
                "SLOW_BOT_WORK_SECONDS": "1.0",
            },
        )
        await bot.start()
        try:
            async with aiohttp.ClientSession() as session:
                async with session.post(
                    bot.url + "/webhook", json=text_callback("job", wa_id="15550000001")
                ) as r:
                    assert r.status == 200
                async with session.post(
                    bot.url + "/webhook", data=fixture_bytes("cloud/text.json")
                ) as r:
                    assert r.status == 200
                async with session.post(bot.url + "/webhook", data=b"{oops") as r:
                    assert r.status == 400
            await provider.wait_for(
                lambda c: c.json is not None and c.json.get("text", {}).get("body") == "started job"
            )
            bot.signal()  # SIGTERM while the handler is running
            assert await bot.wait() == 0
        finally:
            output = await bot.stop()
        bodies = [c.json["text"]["body"] for c in provider.sent if c.json]
        assert "done job" in bodies, output
        for line in (
            "role: all",
            "plugins: none",
            "inbox: sqlite",
            "listening on",
            "event loop: uvloop",
            "webhook registration: skipped",
            "webhook auth: off",
            "garbage collector: startup heap frozen",
            "first threshold 50000",
            "stopped",
        ):
            assert line in output, output


@pytest.mark.slow
async def test_a_second_bot_on_the_same_inbox_file_exits_with_a_clear_error(
    tmp_path: Path,
) -> None:
    env = {"WHIZROUTER_INBOX": f"sqlite:///{tmp_path / 'inbox.db'}"}
    first = BotProcess("tests.bots.slow_bot:app", env)
    await first.start()
    try:
        second = BotProcess("tests.bots.slow_bot:app", env)
        await second.launch()
        assert await second.wait() == 1
        output = await second.output()
        assert "another process is already handling events from" in output
        assert "use a nats:// inbox to scale out" in output
        # Refused at startup, before its port took callbacks it would never handle.
        assert "listening on" not in output
        # Said in plain words, without a traceback or the task group wrapping it.
        assert "Traceback" not in output
        assert "TaskGroup" not in output
        async with aiohttp.ClientSession() as session, session.get(first.url + "/healthz") as r:
            assert r.status == 200
    finally:
        await first.stop()


@pytest.mark.slow
async def test_malformed_http_requests_log_one_short_warning(tmp_path: Path) -> None:
    env = {"WHIZROUTER_INBOX": f"sqlite:///{tmp_path / 'inbox.db'}"}
    bot = BotProcess("tests.bots.slow_bot:app", env)
    await bot.start()
    try:
        for _ in range(3):
            answer = await raw_http(
                "127.0.0.1",
                bot.port,
                b"POST /webhook HTTP/1.1\r\nHost: bot\r\nBad header customer-secret\r\n"
                b"Content-Length: 2\r\n\r\n{}",
            )
            assert answer.startswith(b"HTTP/1.0 400"), answer
    finally:
        output = await bot.stop()
    lines = [line for line in output.splitlines() if "malformed HTTP request" in line]
    assert len(lines) == 1, output  # once per 10 s, however many
    assert "WARNING" in lines[0] and "Invalid header token" in lines[0]
    assert "Traceback" not in output and "customer-secret" not in output


@pytest.mark.slow
async def test_a_tls_handshake_on_the_plain_port_is_logged_saying_so(tmp_path: Path) -> None:
    # aiohttp logs a first request that is not HTTP at all only at debug: an operator whose
    # provider's https:// calls land on the plain port must still see it.
    env = {"WHIZROUTER_INBOX": f"sqlite:///{tmp_path / 'inbox.db'}"}
    bot = BotProcess("tests.bots.slow_bot:app", env)
    await bot.start()
    try:
        client_hello = b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\x00" * 32
        answer = await raw_http("127.0.0.1", bot.port, client_hello)
        assert answer.startswith(b"HTTP/1.0 400"), answer
    finally:
        output = await bot.stop()
    [line] = [line for line in output.splitlines() if "malformed HTTP request" in line]
    assert "WARNING" in line and "1 so far" in line
    assert "looks like a TLS handshake" in line and "TLS proxy in front" in line
    assert "Traceback" not in output
    assert "DEBUG" not in output  # aiohttp's other debug records stay out


@pytest.mark.slow
async def test_sigterm_during_a_hanging_startup_stops_the_process(tmp_path: Path) -> None:
    env = {"WHIZROUTER_INBOX": f"sqlite:///{tmp_path / 'inbox.db'}"}
    bot = BotProcess("tests.bots.hang_startup_bot:app", env)
    await bot.launch()
    try:
        assert bot.process is not None and bot.process.stdout is not None
        seen = b""
        with anyio.fail_after(20):
            while b"hook started" not in seen:  # the plugin's startup hook now hangs
                line = await bot.process.stdout.readline()
                assert line, seen.decode()
                seen += line
        bot.signal()
        assert await bot.wait(timeout=10) == 0
    finally:
        bot.kill()
    output = seen.decode() + await bot.output()
    assert "signal received during startup: stopping" in output
    assert "listening on" not in output


@pytest.mark.slow
async def test_a_port_in_use_exits_with_a_clear_error(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        env = {"WHIZROUTER_INBOX": f"sqlite:///{tmp_path / 'inbox.db'}"}
        bot = BotProcess("tests.bots.slow_bot:app", env, port=taken.getsockname()[1])
        await bot.launch()
        assert await bot.wait() == 1
    output = await bot.output()
    assert f"cannot listen on 127.0.0.1:{bot.port}" in output
    assert "choose another with --port" in output
    assert "Traceback" not in output
