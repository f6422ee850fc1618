"""``GET /metrics``: the app's counts as Prometheus metrics, with ``prometheus-client``.

Nothing here runs on the hot path. The receiver, the dispatcher's attempts and the client's
transport keep plain counts (:mod:`whizrouter.tallies`); :class:`AppCollector` reads them
when Prometheus scrapes, so a callback costs a few increments, not a library call per
metric. The exposition itself is ``prometheus-client``'s. Served on the bot's port behind the
webhook's Basic auth when that is set, or, with ``WHIZROUTER_METRICS_PORT``, on a port of its
own without auth (:class:`Metrics`); each process of a receiver/worker split exposes its own
share.
"""

from __future__ import annotations

import hmac
import logging
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Protocol

from aiohttp import hdrs, web
from prometheus_client import CollectorRegistry
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.exposition import choose_encoder
from prometheus_client.gc_collector import GCCollector
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import Collector

from whizrouter.errors import WhizrouterError
from whizrouter.inbox.base import Inbox
from whizrouter.tallies import Timings

if TYPE_CHECKING:
    from whizrouter.client import WhizardClient
    from whizrouter.dispatcher import Dispatcher
    from whizrouter.receiver import Receiver
    from whizrouter.settings import Settings

log = logging.getLogger("whizrouter.metrics")

#: Where the metrics are served.
METRICS_PATH = "/metrics"


class MeteredApp(Protocol):
    """What the metrics read of a ``WhizRouter`` (declared here: the app imports this)."""

    @property
    def receiver(self) -> Receiver: ...
    @property
    def inbox(self) -> Inbox: ...
    @property
    def dispatcher(self) -> Dispatcher | None: ...
    @property
    def client(self) -> WhizardClient: ...
    @property
    def started(self) -> bool: ...
    @property
    def settings(self) -> Settings: ...


def _histogram(name: str, doc: str, labels: list[str]) -> HistogramMetricFamily:
    return HistogramMetricFamily(name, doc, labels=labels)


def _add(family: HistogramMetricFamily, labels: list[str], timings: Timings) -> None:
    family.add_metric(labels, timings.cumulative(), timings.total)


class AppCollector(Collector):
    """Turns one app's plain counts into Prometheus metrics at each scrape.

    ``refresh`` first reads what needs the inbox (dead letters, the oldest event's age);
    ``collect``, called by ``prometheus-client``, only reads attributes.
    """

    def __init__(self, app: MeteredApp) -> None:
        self._app = app
        self._dead: int | None = None
        self._oldest: float | None = None

    async def refresh(self) -> None:
        """Ask the inbox what it alone knows; a failure leaves those metrics out."""
        self._dead = self._oldest = None
        if not self._app.started:
            return
        inbox = self._app.inbox
        try:
            self._dead = (await inbox.stats()).get("dead")
            self._oldest = await inbox.oldest_waiting()
        except Exception as exc:  # a scrape must not fail because the storage does
            log.debug("metrics: the inbox could not be asked: %s", exc)

    def collect(self) -> Iterator[Metric]:
        """The metrics, as ``prometheus-client`` asks for them."""
        app = self._app
        receiver = app.receiver
        callbacks = CounterMetricFamily(
            "whizrouter_callbacks", "Webhook callbacks answered, by HTTP status.", labels=["code"]
        )
        if receiver.acknowledged:
            callbacks.add_metric(["200"], receiver.acknowledged)
        for code, count in sorted(receiver.refused.items()):
            callbacks.add_metric([str(code)], count)
        yield callbacks
        events = CounterMetricFamily(
            "whizrouter_events",
            "Events split from acknowledged callbacks, by kind and outcome "
            "(stored, duplicate: already stored, unwanted: of a kind no handler here takes).",
            labels=["kind", "outcome"],
        )
        for kind in sorted({*receiver.appended, *receiver.unwanted_kinds}):
            duplicates = receiver.duplicates.get(kind, 0)
            events.add_metric([kind, "stored"], receiver.appended.get(kind, 0) - duplicates)
            events.add_metric([kind, "duplicate"], duplicates)
            events.add_metric([kind, "unwanted"], receiver.unwanted_kinds.get(kind, 0))
        yield events
        ack = _histogram(
            "whizrouter_ack_seconds",
            "Seconds from a callback's arrival to its 200, the inbox's commit included.",
            [],
        )
        _add(ack, [], receiver.ack_timings)
        yield ack
        yield from self._inbox_metrics()
        yield from self._handler_metrics()
        yield from self._provider_metrics()

    def _inbox_metrics(self) -> Iterator[Metric]:
        app = self._app
        backlog = app.inbox.backlog() if app.started else 0
        yield GaugeMetricFamily(
            "whizrouter_backlog_events", "Events stored and not yet settled.", value=backlog
        )
        if self._oldest is not None or not backlog:
            age = max(0.0, time.time() - self._oldest) if self._oldest is not None else 0.0
            yield GaugeMetricFamily(
                "whizrouter_oldest_event_age_seconds",
                "Seconds the oldest unsettled event has waited (0 when none waits).",
                value=age,
            )
        if self._dead is not None:
            yield GaugeMetricFamily(
                "whizrouter_dead_letters", "Dead letters waiting.", value=self._dead
            )

    def _handler_metrics(self) -> Iterator[Metric]:
        dispatcher = self._app.dispatcher
        seconds = _histogram(
            "whizrouter_handler_seconds", "Seconds each handler run took.", ["handler"]
        )
        handled = CounterMetricFamily(
            "whizrouter_handled",
            "Handler runs by outcome: ok; retry, a failure retried; timeout, a run cancelled "
            "at its timeout; dead, an event dead-lettered.",
            labels=["handler", "outcome"],
        )
        if dispatcher is not None:
            for handler, timings in sorted(dispatcher.handler_timings.items()):
                _add(seconds, [handler], timings)
            for (handler, outcome), count in sorted(dispatcher.handler_outcomes.items()):
                handled.add_metric([handler, outcome], count)
        yield seconds
        yield handled

    def _provider_metrics(self) -> Iterator[Metric]:
        calls = self._app.client.calls
        requests = CounterMetricFamily(
            "whizrouter_provider_requests",
            "Requests to the provider API (each try of a retried one), by endpoint and HTTP "
            "status (0: no answer).",
            labels=["endpoint", "code"],
        )
        for (endpoint, code), count in sorted(calls.answers.items()):
            requests.add_metric([endpoint, str(code)], count)
        yield requests
        seconds = _histogram(
            "whizrouter_provider_request_seconds",
            "Seconds each provider request took.",
            ["endpoint"],
        )
        for endpoint, timings in sorted(calls.timings.items()):
            _add(seconds, [endpoint], timings)
        yield seconds


class Metrics:
    """The app's ``/metrics``: its registry, its handler, and the listener of its own port.

    Args:
        app: the app whose counts are exposed.
    """

    def __init__(self, app: MeteredApp) -> None:
        self._app = app
        self.collector = AppCollector(app)
        #: The registry scraped: the app's metrics and the process' (CPU, memory, open files).
        self.registry = CollectorRegistry(auto_describe=True)
        self.registry.register(self.collector)
        ProcessCollector(registry=self.registry)
        GCCollector(registry=self.registry)
        self._runner: web.ServerRunner | None = None

    @property
    def on_own_port(self) -> bool:
        """Whether the metrics have a port of their own (``WHIZROUTER_METRICS_PORT``)."""
        return self._app.settings.metrics_port is not None

    async def exposition(self, accept: str | None = None) -> tuple[bytes, str]:
        """The metrics and their content type, in the format the ``Accept`` header asks
        for (Prometheus' text format, or OpenMetrics), as a scrape gets them."""
        await self.collector.refresh()
        encode, content_type = choose_encoder(accept or "")
        return encode(self.registry), content_type

    async def handle(self, request: web.BaseRequest) -> web.Response:
        """Handle ``GET /metrics`` on the bot's port, behind the webhook's Basic auth."""
        wanted = self._app.settings.auth_header
        if wanted is not None:
            given = request.headers.get(hdrs.AUTHORIZATION, "").encode("utf-8", "surrogateescape")
            if not hmac.compare_digest(given, wanted.encode()):
                return web.Response(
                    status=401,
                    text="metrics need the webhook's credentials",
                    headers={hdrs.WWW_AUTHENTICATE: 'Basic realm="whizrouter"'},
                )
        return await self._unauthenticated(request)

    async def _unauthenticated(self, request: web.BaseRequest) -> web.Response:
        if request.method not in (hdrs.METH_GET, hdrs.METH_HEAD):
            raise web.HTTPMethodNotAllowed(request.method, [hdrs.METH_GET, hdrs.METH_HEAD])
        body, content_type = await self.exposition(request.headers.get(hdrs.ACCEPT))
        return web.Response(body=body, headers={hdrs.CONTENT_TYPE: content_type})

    async def open(self) -> None:
        """Listen on ``WHIZROUTER_METRICS_PORT`` if it is set (all interfaces, no auth)."""
        port = self._app.settings.metrics_port
        if port is None:
            return

        async def serve(request: web.BaseRequest) -> web.StreamResponse:
            if request.path != METRICS_PATH:
                raise web.HTTPNotFound()
            return await self._unauthenticated(request)

        runner = web.ServerRunner(web.Server(serve, access_log=None), handle_signals=False)
        await runner.setup()
        try:
            await web.TCPSite(runner, "0.0.0.0", port).start()
        except OSError as exc:
            await runner.cleanup()
            raise WhizrouterError(
                f"cannot serve metrics on port {port} (WHIZROUTER_METRICS_PORT): {exc}; "
                "choose a free port"
            ) from exc
        self._runner = runner
        log.info("metrics: GET %s on port %d, without auth (keep it private)", METRICS_PATH, port)

    async def close(self) -> None:
        """Stop listening on the metrics port."""
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()
