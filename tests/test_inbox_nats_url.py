"""The ``nats://`` inbox URL and the settings of an inbox built in code
(``whizrouter.inbox.nats.url``)."""

from __future__ import annotations

import math
import re
from typing import Any

import pytest

from whizrouter.errors import ConfigurationError
from whizrouter.inbox.base import Inbox
from whizrouter.inbox.factory import inbox_from_url
from whizrouter.inbox.nats import NatsInbox


async def test_from_url_reads_options_and_keeps_credentials_out_of_the_description() -> None:
    inbox = inbox_from_url(
        "nats://alice:s3cret@h1:4222,h2:4223?stream=BOT&partitions=8&name=bot&creds=/x.creds",
        max_backlog=10,
    )
    assert isinstance(inbox, NatsInbox)
    assert isinstance(inbox, Inbox)
    assert inbox.durable is True
    assert inbox.description == "nats://h1:4222,nats://h2:4223?stream=BOT"
    assert "s3cret" not in inbox.description
    with pytest.raises(ConfigurationError, match="unknown NATS option 'partition'"):
        NatsInbox.from_url("nats://h1?partition=3")
    with pytest.raises(ConfigurationError, match="partitions='many'"):
        NatsInbox.from_url("nats://h1?partitions=many")
    with pytest.raises(ConfigurationError, match="stream="):
        NatsInbox.from_url("nats://h1?stream=a.b")


@pytest.mark.parametrize(
    "option",
    ["ack_wait=nan", "ack_wait=inf", "lease_ttl=1e308", "connect_timeout=-1", "duplicate_window=0"],
)
def test_a_duration_that_is_not_a_sane_number_of_seconds_is_refused_by_name(option: str) -> None:
    # NaN passed a "> 0" check: such a worker took partitions and never handled them.
    name, _, value = option.partition("=")
    with pytest.raises(ConfigurationError, match=f"{name}='{value}' must be a number of seconds"):
        NatsInbox.from_url(f"nats://h1?{option}")


@pytest.mark.parametrize(
    "option",
    [
        {"ack_wait": math.nan},
        {"lease_ttl": 1e308},
        {"duplicate_window": 0.0},
        {"dedupe_seconds": -1.0},
        {"dedupe_seconds": math.inf},
    ],
)
def test_an_inbox_built_in_code_checks_its_durations_as_the_url_does(
    option: dict[str, Any],
) -> None:
    ((name, value),) = option.items()
    with pytest.raises(ConfigurationError, match=re.escape(f"{name}={value!r} must be")):
        NatsInbox(["nats://h1:4222"], **option)
