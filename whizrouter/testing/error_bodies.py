"""Ready-made provider error bodies, in every form the real provider answers with.

This module owns the builders for 360dialog's ``meta`` body (:func:`meta_error_body`, with
:func:`rate_limit_400_body` and :func:`restarting_555_body`), the on-premises ``errors`` list
(:func:`errors_list_body`), the Cloud (Graph API) ``error`` object (:func:`graph_error_body`)
and a proxy's HTML page (:func:`html_error_page`), to serve with
:meth:`whizrouter.testing.FakeProvider.fail_next` (the fake's own refusals use them too).
Import them from :mod:`whizrouter.testing`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

#: The ``meta`` the on-premises client adds to its answers (copy it before changing it).
ONPREM_META: Final = {"api_status": "stable", "version": "2.53.0"}


def meta_error_body(
    http_code: int,
    developer_message: str,
    details: Sequence[str] | None = None,
    *,
    camel_case: bool = False,
) -> dict[str, Any]:
    """360dialog's error body: ``{"meta": {"success": false, "http_code", ...}}``.

    Args:
        http_code: the status repeated inside the body.
        developer_message: the explanation.
        details: optional detail strings.
        camel_case: use the camelCase spelling (``httpCode``, ``developerMessage``) that some
            360dialog endpoints answer with.

    Returns:
        The body, ready for :meth:`FakeProvider.fail_next`.
    """
    if camel_case:
        meta: dict[str, Any] = {
            "success": False,
            "httpCode": http_code,
            "developerMessage": developer_message,
        }
    else:
        meta = {"success": False, "http_code": http_code, "developer_message": developer_message}
    if details is not None:
        meta["details"] = list(details)
    return {"meta": meta}


def errors_list_body(
    code: int, title: str, details: str | None = None, *, with_meta: bool = True
) -> dict[str, Any]:
    """The on-premises client's error body: ``{"errors": [{"code", "title", "details"}]}``.

    Args:
        code: the error code (``1006`` not found, ``1011`` not ready, ``470`` ...).
        title: the short title.
        details: the longer explanation.
        with_meta: add the on-premises ``meta`` (``api_status``, ``version``) as the client does.

    Returns:
        The body, ready for :meth:`FakeProvider.fail_next`.
    """
    error: dict[str, Any] = {"code": code, "title": title}
    if details is not None:
        error["details"] = details
    body: dict[str, Any] = {"errors": [error]}
    if with_meta:
        body["meta"] = dict(ONPREM_META)
    return body


def graph_error_body(
    code: int,
    message: str,
    *,
    details: str | None = None,
    error_type: str = "OAuthException",
    subcode: int | None = None,
) -> dict[str, Any]:
    """A Cloud (Graph API) error body: ``{"error": {"message", "type", "code", ...}}``.

    Args:
        code: the Graph error code (``131047``, ``130429``, ``100`` ...).
        message: the error message.
        details: ``error_data.details``.
        error_type: the ``type`` field.
        subcode: ``error_subcode``, when wanted.

    Returns:
        The body, ready for :meth:`FakeProvider.fail_next`.
    """
    error: dict[str, Any] = {
        "message": message,
        "type": error_type,
        "code": code,
        "fbtrace_id": "AFakeTraceId0123456789",
    }
    if details is not None:
        error["error_data"] = {"messaging_product": "whatsapp", "details": details}
    if subcode is not None:
        error["error_subcode"] = subcode
    return {"error": error}


def html_error_page(status: int = 503, title: str = "Service Temporarily Unavailable") -> str:
    """The HTML page a proxy in front of the provider answers while it restarts.

    Returns:
        An HTML document; :meth:`FakeProvider.fail_next` serves it as ``text/html``.
    """
    return (
        f"<html>\r\n<head><title>{status} {title}</title></head>\r\n<body>\r\n"
        f"<center><h1>{status} {title}</h1></center>\r\n<hr><center>nginx</center>\r\n"
        "</body>\r\n</html>\r\n"
    )


def rate_limit_400_body(seconds: int | None = None) -> dict[str, Any]:
    """360dialog's rate limit disguised as a 400 (to serve with status 400).

    Args:
        seconds: add "1 request every N seconds" to the message, as some endpoints do.

    Returns:
        A ``meta`` error body.
    """
    message = "You have exceeded the endpoint rate limit"
    if seconds is not None:
        message += f", you can send 1 request every {seconds} seconds"
    return meta_error_body(400, message)


def restarting_555_body() -> dict[str, Any]:
    """360dialog's answer while the WhatsApp client restarts (to serve with status 555)."""
    return meta_error_body(555, "Internal service error: the WhatsApp client is restarting")
