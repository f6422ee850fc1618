"""System messages: number and identity changes in both shapes."""

from __future__ import annotations

import pytest

from tests.events.samples import one
from whizrouter.events import SystemMessage


@pytest.mark.parametrize(
    ("name", "new_wa_id"),
    [
        ("onprem/system_user_changed_number.json", "15551230099"),
        ("cloud/system_user_changed_number.json", "972912345678"),
    ],
)
def test_system_number_change_both_shapes(name: str, new_wa_id: str) -> None:
    msg = one(name, SystemMessage)
    assert msg.new_wa_id == new_wa_id
    assert msg.system_type == "user_changed_number"
    assert msg.contact is None


def test_system_identity_changed() -> None:
    msg = one("onprem/system_identity_changed.json", SystemMessage)
    assert msg.system_type == "user_identity_changed"
    assert msg.system.identity == "Zk3xQe9Rl0A="
    assert msg.system.user == "15551230003"
    assert msg.new_wa_id is None
