"""Bootstrap: register the webhook URL (and the auth header it will need) at startup.

Reads the provider's current webhook config and writes it only when it differs, so a restart
does not touch a config that is already right. A 4xx from the provider stops startup with the
provider's own message; 5xx and network errors are retried by the client, then stop startup.
"""

from __future__ import annotations

import logging
from typing import Any

from whizrouter.client import WhizardClient
from whizrouter.errors import BootstrapError, ConfigurationError, ProviderError, RateLimited
from whizrouter.numbers import Numbers, number_webhook_url
from whizrouter.settings import Settings, check_webhook_url

log = logging.getLogger("whizrouter.bootstrap")


def _same_config(current: dict[str, Any], url: str, headers: dict[str, str]) -> bool:
    if current.get("url") != url:
        return False
    current_headers = current.get("headers")
    if not headers:
        return not current_headers
    # A provider that does not echo headers back cannot prove they match: write again.
    return isinstance(current_headers, dict) and current_headers == headers


async def register_at_start(
    client: WhizardClient, settings: Settings, role: str, numbers: Numbers | None
) -> None:
    """The startup step: register the webhook (``register_webhook``), or say why not."""
    if role == "worker":
        log.info("webhook registration: skipped (a worker receives no callbacks)")
    elif settings.webhook_url is not None:
        await register_webhook(client, settings, numbers)
    else:
        log.info("webhook registration: skipped (WHIZROUTER_WEBHOOK_URL is not set)")


async def register_webhook(
    client: WhizardClient, settings: Settings, numbers: Numbers | None = None
) -> bool:
    """Make the provider's webhook config point at ``settings.webhook_url``.

    With ``numbers``, each number's config is written instead, with its own key: on-premises
    at ``settings.webhook_url`` + ``/<name>`` (the path tells the numbers apart), in Cloud at
    ``settings.webhook_url`` (the callback names its number); ``client`` (the app's key) is
    then not used. One log line per number.

    Returns:
        True when a config was written, False when each was already right.

    Raises:
        BootstrapError: the provider refused or could not be reached; the message carries the
            provider's ``developer_message`` and what to check.
    """
    url = settings.webhook_url
    if url is None:
        raise BootstrapError("no webhook URL configured; set WHIZROUTER_WEBHOOK_URL")
    check_webhook_url(url)
    headers: dict[str, str] = {}
    if settings.auth_header is not None:
        headers["Authorization"] = settings.auth_header
    if numbers is None:
        return await _register(client, url, headers, "", "WHIZARD_API_KEY")
    written = False
    for name in numbers:
        number = numbers.numbers[name]
        assert number.shape is not None  # filled from the app's settings
        written |= await _register(
            numbers.client(name),
            number_webhook_url(url, name, number.shape),
            headers,
            f" of number {name}",
            f"the api_key of number {name!r} (numbers= or WHIZARD_NUMBERS)",
        )
    return written


async def _register(
    client: WhizardClient, url: str, headers: dict[str, str], whose: str, key_setting: str
) -> bool:
    """Write one webhook config unless it is already right; ``whose`` names the number in
    the log line, ``key_setting`` the setting of its key in errors."""
    try:
        current = await client.get_webhook()
        if _same_config(current, url, headers):
            log.info("webhook registration%s: %s is already registered; left unchanged", whose, url)
            return False
        await client.set_webhook(url, headers=headers or None)
    except ConfigurationError as exc:
        raise BootstrapError(f"cannot register the webhook{whose}: {exc}") from exc
    except ProviderError as exc:
        raise BootstrapError(_registration_failed(exc, whose, key_setting)) from exc
    log.info(
        "webhook registration%s: registered %s%s", whose, url, " with Basic auth" if headers else ""
    )
    return True


def _registration_failed(
    exc: ProviderError, whose: str = "", key_setting: str = "WHIZARD_API_KEY"
) -> str:
    """Why registering the webhook failed, and what to do, in one line."""
    code = exc.http_code
    if code == 0:
        happened = "the provider could not be reached"
        what = "check WHIZARD_BASE_URL and the network, then start again"
    elif isinstance(exc, RateLimited) or code == 429:
        happened = f"the provider is rate limiting us ({code})"
        what = "wait a minute, then start again"
    elif code in (401, 403):
        happened = f"the provider refused the key{whose} ({code})"
        what = f"check {key_setting}"
    elif 400 <= code < 500:
        happened = f"the provider refused the webhook registration{whose} ({code})"
        what = f"check WHIZROUTER_WEBHOOK_URL and {key_setting}"
    elif code >= 500:
        happened = f"the provider failed ({code})"
        what = "startup stops so the webhook is not left unregistered; try again shortly"
    else:
        happened = f"the provider's answer was not what registration expects ({code})"
        what = "check that WHIZARD_BASE_URL points at the provider's API"
    return f"{happened}: {exc.developer_message}; {what}"
