"""``GET /readyz``: whether this process should be sent callbacks now, and if not, why.

``/healthz`` is the liveness check: it fails when the process should be restarted. Readiness
is narrower: 200 only while the process takes callbacks: started (its inbox open, a sqlite
inbox's consumer lock held), accepting (not starting, draining or failed), its inbox
reachable and storing (no failed store in the last ``STORE_FAILURE_MEMORY`` seconds without a
stored callback since) and its backlog under the bound. Otherwise 503, with the reason in the
JSON body, so a load balancer or Kubernetes sends callbacks elsewhere meanwhile. A worker is
ready while it handles events.
"""

from __future__ import annotations

from time import monotonic
from typing import TYPE_CHECKING, Final, Protocol

import orjson
from aiohttp import hdrs, web

from whizrouter.dispatcher.state import State

if TYPE_CHECKING:
    from whizrouter.dispatcher import Dispatcher
    from whizrouter.inbox.base import Inbox
    from whizrouter.receiver import Receiver

#: Where readiness is served.
READY_PATH: Final = "/readyz"
#: Seconds a failed store keeps the process unready unless a callback is stored meanwhile.
#: Not for ever: a load balancer that stops sending callbacks would never see one succeed, so
#: readiness comes back after this long and the next callback tries the storage again.
STORE_FAILURE_MEMORY: Final = 10.0


class ReadyApp(Protocol):
    """What readiness reads of a ``WhizRouter`` (declared here: the app imports this)."""

    @property
    def receiver(self) -> Receiver: ...
    @property
    def inbox(self) -> Inbox: ...
    @property
    def dispatcher(self) -> Dispatcher | None: ...
    @property
    def started(self) -> bool: ...
    @property
    def role(self) -> str: ...
    @property
    def failure(self) -> BaseException | None: ...


def not_ready_because(app: ReadyApp) -> str | None:
    """Why ``app`` should not be sent callbacks now, or None when it is ready."""
    if app.failure is not None:
        return f"event handling stopped: {app.failure}"
    if not app.started:
        return "not started: the inbox is not open yet, or the app is stopping"
    receiver = app.receiver
    if app.role == "worker":
        dispatcher = app.dispatcher
        if dispatcher is None or dispatcher.state is not State.RUNNING:
            return "draining: the worker is stopping"
    elif not receiver.accepting:
        return "draining: new callbacks are refused while running handlers finish"
    inbox = app.inbox
    if inbox.health().get("connected") is False:
        return f"the inbox {inbox.description} cannot reach its server"
    failure = receiver.last_store_failure
    if failure is not None:
        when, acknowledged, error = failure
        if receiver.acknowledged == acknowledged and monotonic() - when < STORE_FAILURE_MEMORY:
            return f"the inbox could not store the last callback: {error}"
    if app.role != "worker":
        backlog = inbox.backlog()
        if backlog >= receiver.max_backlog:
            return (
                f"the backlog is full ({backlog} unsettled events, bound "
                f"{receiver.max_backlog}): handlers are slower than callbacks arrive"
            )
    return None


class Readiness:
    """The ``GET /readyz`` handler of one app."""

    def __init__(self, app: ReadyApp) -> None:
        self._app = app

    async def handle(self, request: web.BaseRequest) -> web.Response:
        """200 ``{"ready": true}``, or 503 ``{"ready": false, "reason": ...}``."""
        if request.method not in (hdrs.METH_GET, hdrs.METH_HEAD):
            raise web.HTTPMethodNotAllowed(request.method, [hdrs.METH_GET, hdrs.METH_HEAD])
        reason = not_ready_because(self._app)
        body = {"ready": True} if reason is None else {"ready": False, "reason": reason}
        return web.Response(
            status=200 if reason is None else 503,
            body=orjson.dumps(body),
            content_type="application/json",
        )
