"""What ``GET /healthz`` reports: whether callbacks are taken, and the counts behind it.

The status is ``ok`` while the bot takes callbacks (a worker: while it handles events),
``unavailable`` while it starts, stops or cannot reach its inbox's server (a load balancer
should send callbacks elsewhere), and ``failed`` once event handling stopped for good.
"""

from __future__ import annotations

from whizrouter.dispatcher import Dispatcher
from whizrouter.inbox.base import Inbox
from whizrouter.receiver import Receiver


def health_report(
    *,
    role: str,
    started: bool,
    failed: bool,
    receiver: Receiver,
    inbox: Inbox,
    dispatcher: Dispatcher | None,
) -> dict[str, object]:
    """The fields ``GET /healthz`` reports, the inbox's own (``Inbox.health``) included."""
    report: dict[str, object] = {
        "status": "failed"
        if failed
        else "ok"
        if started and (receiver.accepting or role == "worker")
        else "unavailable",
        "role": role,
        "inbox": inbox.description,
        "backlog": inbox.backlog() if started else 0,
        "acknowledged": receiver.acknowledged,
        "unwanted": receiver.unwanted,
        "refused_full": receiver.refused_full,
        "refused": {str(code): n for code, n in sorted(receiver.refused.items())},
        "in_flight": dispatcher.in_flight if dispatcher else 0,
        "handled": dispatcher.handled if dispatcher else 0,
        "dead_lettered": dispatcher.dead_lettered if dispatcher else 0,
    }
    if started:
        # Backend-specific fields (NATS: connected, worker_id, ...).
        report.update(inbox.health())
        # An inbox that cannot reach its server stores nothing: a load balancer should send
        # callbacks elsewhere until it is back.
        if report.get("connected") is False and report["status"] == "ok":
            report["status"] = "unavailable"
    return report
