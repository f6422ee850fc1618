"""Webhook configuration: read and set the URL the provider posts callbacks to.

The provider keeps it at ``{base}/v1/configs/webhook`` in both API shapes. Startup
registration (:mod:`whizrouter.bootstrap`) uses these methods; the credentials a
configuration carries never show in an error, even when the provider echoes them.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any, Final

from whizrouter.errors import ConfigurationError, ProviderError
from whizrouter.transport import Transport

_WEBHOOK_PATH: Final = "/v1/configs/webhook"


class WebhookConfig:
    """``get_webhook`` and ``set_webhook`` of :class:`~whizrouter.client.WhizardClient`.

    A part of the client, which sets ``_transport``.
    """

    _transport: Transport

    async def get_webhook(self) -> dict[str, Any]:
        """Read the webhook configuration: ``{"url": ..., "headers": {...}}`` as stored.

        Returns:
            The provider's answer as a dict (empty when it sent no body).

        Raises:
            ConfigurationError: the key or base URL is missing.
            ProviderError: the provider refused, or failed after all retries.
        """
        answer = await self._transport.request("GET", _WEBHOOK_PATH)
        if answer.data is None:
            return {}
        if not isinstance(answer.data, dict):
            raise ProviderError(
                answer.status, "the webhook configuration is not a JSON object", raw=answer.data
            )
        return answer.data

    async def set_webhook(self, url: str, headers: dict[str, str] | None = None) -> None:
        """Register the URL the provider posts callbacks to.

        Args:
            url: the public https URL of the webhook.
            headers: static headers the provider sends with every callback (such as
                ``{"Authorization": "Basic ..."}``); left out of the request when ``None``.

        Raises:
            ConfigurationError: ``url`` is empty, or the key or base URL is missing.
            ProviderError: the provider refused the URL, or failed after all retries.
        """
        if not url or not url.strip():
            raise ConfigurationError("set_webhook needs a non-empty url")
        body: dict[str, Any] = {"url": url}
        if headers is not None:
            body["headers"] = dict(headers)
        # A provider may echo the request in its error: the header values are credentials.
        secrets = [part for value in (headers or {}).values() for part in _credential_forms(value)]
        await self._transport.request("POST", _WEBHOOK_PATH, body, secrets=secrets)


def _credential_forms(header_value: str) -> list[str]:
    """A header value and, for Basic auth, its token, ``user:password`` and the password."""
    forms = [header_value]
    scheme, _, token = header_value.partition(" ")
    if token:
        forms.append(token.strip())
        if scheme.lower() == "basic":
            try:
                pair = base64.b64decode(token.strip(), validate=True).decode()
            except (binascii.Error, UnicodeDecodeError):
                pair = ""
            if pair:
                forms.append(pair)
                password = pair.partition(":")[2]
                if len(password) >= 4:  # a one-letter password would scrub every "a"
                    forms.append(password)
    return forms
