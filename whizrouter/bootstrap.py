"""Bootstrap: register the webhook URL (and the auth header it will need) at startup.

Reads the provider's current webhook config and writes it only when it differs, so a restart
does not touch a config that is already right. A 4xx from the provider stops startup with the
provider's own message; 5xx and network errors are retried by the client, then stop startup.
"""

from __future__ import annotations

import logging
from typing import Any

from whizrouter.client import WhizardClient
from whizrouter.errors import BootstrapError, ConfigurationError, ProviderError
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


async def register_webhook(client: WhizardClient, settings: Settings) -> bool:
    """Make the provider's webhook config point at ``settings.webhook_url``.

    Returns:
        True when the config was written, False when it was already right.

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
    try:
        current = await client.get_webhook()
        if _same_config(current, url, headers):
            log.info("webhook registration: %s is already registered; left unchanged", url)
            return False
        await client.set_webhook(url, headers=headers or None)
    except ConfigurationError as exc:
        raise BootstrapError(f"cannot register the webhook: {exc}") from exc
    except ProviderError as exc:
        what = (
            "check WHIZARD_API_KEY and WHIZROUTER_WEBHOOK_URL"
            if 400 <= exc.http_code < 500
            else "the provider or the network failed; startup stops so the webhook is not "
            "left unregistered, try again shortly"
        )
        raise BootstrapError(
            f"the provider refused the webhook registration ({exc.http_code}): "
            f"{exc.developer_message}; {what}"
        ) from exc
    log.info("webhook registration: registered %s%s", url, " with Basic auth" if headers else "")
    return True
