"""Handler types are checked by mypy: the strict run in ``test_lint`` covers this file.

Each ``type: ignore[type-var]`` below must be needed: mypy --strict warns about an unused
ignore, so if registering a handler for the wrong event type stopped being an error, the
lint test would fail. The same mistakes are refused at run time too, when registered, for the
bots that are not type-checked.
"""

from __future__ import annotations

from typing import Any

import pytest

from whizrouter import Context, Message, Router, Status, TextMessage


def register(router: Router) -> None:
    @router.on_message(type="text")
    async def text(message: TextMessage, ctx: Context) -> None: ...

    @router.on_message()
    async def any_message(message: Message, ctx: Context) -> None: ...

    @router.on_status(status="failed")
    async def failed(status: Status, ctx: Context) -> None: ...

    @router.on_raw()
    async def raw(payload: dict[str, Any], ctx: Context) -> None: ...


def test_correct_registrations_work_at_runtime() -> None:
    router = Router()
    register(router)
    assert [spec.kind for spec in router.handlers()] == ["message", "message", "status", "raw"]


def test_registrations_for_the_wrong_event_type_are_refused_by_mypy_and_at_runtime() -> None:
    router = Router()
    with pytest.raises(TypeError, match="register it with on_status"):

        @router.on_message()  # type: ignore[type-var]
        async def status_as_message(status: Status, ctx: Context) -> None: ...

    with pytest.raises(TypeError, match="annotate it `status: Status`"):

        @router.on_status()  # type: ignore[type-var]
        async def message_as_status(message: TextMessage, ctx: Context) -> None: ...

    assert router.handlers() == []
