"""The provider API the fake speaks: which route a request is, and what a valid one gets back.

Each API shape has its own routes, as the real provider has:

* ``onprem``: ``POST /v1/messages`` (send), ``PUT /v1/messages/{id}`` (mark read);
* ``cloud``: ``POST /messages`` (send, or mark read when the body has ``"status": "read"``,
  or the typing indicator when it also has ``typing_indicator``);
* both: ``GET`` and ``POST /v1/configs/webhook``.

A malformed send or mark-read gets the 400 the real API would give, in the shape's own error
form. The fake provider keeps the state (ids, webhook configuration, injected failures); this
module only knows the API.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final
from urllib.parse import unquote

import orjson
from aiohttp import web

from whizrouter.defaults import ApiShape
from whizrouter.testing.error_bodies import ONPREM_META, errors_list_body, graph_error_body

WEBHOOK_PATH: Final = "/v1/configs/webhook"


def json_response(status: int, data: Any) -> web.Response:
    """A JSON answer."""
    return web.Response(status=status, body=orjson.dumps(data), content_type="application/json")


def classify(
    shape: ApiShape, method: str, path: str, raw_path: str, parsed: Any
) -> tuple[str, str | None]:
    """The kind of a request (``send``, ``mark_read``, ``typing``, ``get_webhook``,
    ``set_webhook`` or ``other``) and, for a mark-read or typing, the message id it names."""
    if path == WEBHOOK_PATH:
        return {"GET": "get_webhook", "POST": "set_webhook"}.get(method, "other"), None
    if shape == "onprem":
        if method == "POST" and path == "/v1/messages":
            return "send", None
        if method == "PUT" and path.startswith("/v1/messages/"):
            segment = raw_path.split("?", 1)[0].rsplit("/", 1)[-1]
            return "mark_read", unquote(segment)
    elif method == "POST" and path == "/messages":
        if isinstance(parsed, dict) and parsed.get("status") == "read":
            message_id = parsed.get("message_id")
            # The typing indicator rides on the mark-read call; the fake tells them apart.
            kind = "typing" if "typing_indicator" in parsed else "mark_read"
            return kind, message_id if isinstance(message_id, str) else None
        return "send", None
    return "other", None


def bad_request(shape: ApiShape, code: int, problem: str) -> web.Response:
    """The 400 of ``shape`` for a malformed request: a Graph error on Cloud, an ``errors``
    list on-premises (with ``code``)."""
    if shape == "cloud":
        return json_response(400, graph_error_body(100, f"(#100) {problem}"))
    return json_response(400, errors_list_body(code, "Invalid request", problem))


def answer_send(shape: ApiShape, parsed: Any, new_id: Callable[[], str]) -> web.Response:
    """The answer to a send: the id ``new_id()`` gives, or a 400 (no id used) if malformed."""
    if not isinstance(parsed, dict):
        return bad_request(shape, 1008, "the body must be a JSON object")
    if shape == "cloud" and parsed.get("messaging_product") != "whatsapp":
        return bad_request(shape, 100, "The parameter messaging_product is required.")
    to = parsed.get("to")
    if not isinstance(to, str) or not to:
        return bad_request(shape, 1008, "The parameter to is required.")
    kind = parsed.get("type", "text")
    if not isinstance(kind, str) or kind not in parsed:
        return bad_request(shape, 1008, f"The parameter {kind} is required.")
    message_id = new_id()
    if shape == "cloud":
        answer: dict[str, Any] = {
            "messaging_product": "whatsapp",
            "contacts": [{"input": to, "wa_id": to}],
            "messages": [{"id": message_id}],
        }
    else:
        answer = {"messages": [{"id": message_id}], "meta": dict(ONPREM_META)}
    return json_response(200, answer)


def answer_mark_read(shape: ApiShape, parsed: Any) -> web.Response:
    """The answer to a mark-read: success, or a 400 if malformed."""
    if shape == "cloud":
        if parsed.get("messaging_product") != "whatsapp" or not parsed.get("message_id"):
            return bad_request(shape, 100, "messaging_product and message_id are required.")
        return json_response(200, {"success": True})
    if not isinstance(parsed, dict) or parsed.get("status") != "read":
        return bad_request(shape, 1009, 'The body must be {"status": "read"}.')
    return json_response(200, {})


def sent_id(response: web.Response) -> str | None:
    """The message id a 2xx answer to a send carries, or None (an injected body without one)."""
    try:
        message_id = orjson.loads(response.body)["messages"][0]["id"]  # type: ignore[arg-type]
    except (orjson.JSONDecodeError, TypeError, LookupError):
        return None
    return message_id if isinstance(message_id, str) else None
