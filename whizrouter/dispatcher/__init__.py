"""The dispatcher: from the inbox to the handlers, in conversation order.

One module per part, in the order an event meets them:

- ``dispatcher``: ``Dispatcher`` claims events and composes the parts below; ``drain``.
- ``lanes``: a lane per conversation, the ready queue, the workers and their lane turns.
- ``attempts``: a handler's runs, retries with backoff, crash accounting, dead letters.
- ``timeouts``: the handler timeouts, a run past its own cancelled by one sweep.
- ``run_counts``: the counts of handler runs by outcome, and their timings.
- ``acks``: settling events, the batching ack flusher, a durable inbox's replay slots.
- ``state``: the one state (RUNNING, DRAINING, LEAVING, STOPPED) and the waits on it.
"""

from whizrouter.dispatcher.dispatcher import Dispatcher

__all__ = ["Dispatcher"]
