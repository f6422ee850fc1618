"""The wire-model base: frozen models that keep extra fields and read numbers as strings, and
error objects that normalize alike in both shapes."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from tests.events.samples import BASE, events, message
from whizrouter.events import ProviderErrorInfo, TextMessage


@pytest.mark.parametrize("name", ["onprem/text.json", "cloud/status_sent.json"])
def test_events_are_frozen(name: str) -> None:
    (event,) = events(name)
    with pytest.raises(ValidationError):
        event.id = "changed"  # type: ignore[misc]


def test_extra_fields_are_kept() -> None:
    msg = message(
        {**BASE, "type": "text", "text": {"body": "hi", "lang": "en"}, "brand_new": {"a": 1}}
    )
    assert isinstance(msg, TextMessage)
    assert msg.model_extra == {"brand_new": {"a": 1}}
    assert msg.text.model_extra == {"lang": "en"}
    assert msg.model_dump(by_alias=True)["brand_new"] == {"a": 1}


def test_numbers_where_strings_are_expected() -> None:
    msg = message({**BASE, "timestamp": 1718000001, "type": "text", "text": {"body": "hi"}})
    assert isinstance(msg, TextMessage)
    assert msg.timestamp == "1718000001"


def test_cloud_and_onprem_errors_normalize_alike() -> None:
    cloud = ProviderErrorInfo.model_validate(
        {
            "code": 131000,
            "title": "Something went wrong",
            "message": "Something went wrong",
            "error_data": {"details": "Unsupported webhook payload"},
        }
    )
    onprem = ProviderErrorInfo.model_validate(
        {
            "code": 400,
            "title": "Media download error",
            "details": "Failed to download",
            "href": "https://example.com/errors",
        }
    )
    assert cloud.details == "Unsupported webhook payload"
    assert onprem.details == "Failed to download"
    assert onprem.href == "https://example.com/errors"
