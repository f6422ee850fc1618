"""Mistakes a bot author makes when registering a handler are refused there, saying the fix."""

from __future__ import annotations

from typing import Any

import pytest

from whizrouter import (
    Context,
    F,
    ImageMessage,
    Message,
    Router,
    Status,
    TextMessage,
    UnknownMessage,
    VideoMessage,
    WhizRouter,
)


def test_a_misspelt_type_is_refused_with_a_did_you_mean_and_the_valid_values() -> None:
    app = WhizRouter(inbox="memory")
    with pytest.raises(ValueError, match="type='txet' would never match") as refused:
        app.on_message(type="txet")
    message = str(refused.value)
    assert "did you mean 'text'?" in message
    assert "image, interactive, location" in message
    assert "lambda event: event.type == 'txet'" in message
    with pytest.raises(ValueError, match="did you mean 'image'"):
        F.type(["text", "imgae"])


def test_a_misspelt_status_is_refused_with_a_did_you_mean() -> None:
    router = Router()
    with pytest.raises(ValueError, match="status='faild' would never match") as refused:
        router.on_status(status="faild")
    assert "did you mean 'failed'?" in str(refused.value)
    assert "delivered, failed, played, read, sent, warning" in str(refused.value)


def test_types_without_a_class_of_their_own_can_still_be_filtered() -> None:
    router = Router()

    @router.on_message(type=["edit", "revoke"])
    async def edits(message: UnknownMessage, ctx: Context) -> None: ...

    assert len(router.handlers()) == 1


def test_a_plain_function_is_refused_saying_to_write_async_def() -> None:
    router = Router()
    with pytest.raises(TypeError, match="write it as `async def`") as refused:

        @router.on_message(type="text")  # type: ignore[arg-type]
        def echo(message: TextMessage, ctx: Context) -> None: ...

    assert "test_registration_checks.test_a_plain_function" in str(refused.value)
    with pytest.raises(TypeError, match="async def"):
        router.on_raw()(lambda raw, ctx: None)  # type: ignore[type-var]
    assert router.handlers() == []


def test_an_object_with_an_async_call_is_a_handler() -> None:
    class Handler:
        async def __call__(self, message: Message, ctx: Context) -> None: ...

    router = Router()
    router.on_message()(Handler())
    assert len(router.handlers()) == 1


def test_an_annotation_the_type_filter_never_delivers_is_refused_naming_the_fix() -> None:
    app = WhizRouter(inbox="memory")
    with pytest.raises(TypeError) as refused:

        @app.on_message(type="image")
        async def on_image(message: TextMessage, ctx: Context) -> None: ...

    assert str(refused.value).endswith(
        "takes a TextMessage, but type='image' delivers ImageMessage: annotate it as "
        "ImageMessage, or filter type='text'"
    )
    with pytest.raises(TypeError, match="type='video' delivers VideoMessage"):

        @app.on_message(type=["image", "video"])
        async def on_media(message: ImageMessage, ctx: Context) -> None: ...

    assert app.router.handlers() == []


def test_annotations_that_fit_the_filter_are_accepted() -> None:
    router = Router()

    @router.on_message(type="image")
    async def any_message(message: Message, ctx: Context) -> None: ...

    @router.on_message(type=["image", "video"])
    async def media(message: ImageMessage | VideoMessage, ctx: Context) -> None: ...

    @router.on_message(F.text("menu"))
    async def menu(message: TextMessage, ctx: Context) -> None: ...

    @router.on_message(type="text")
    async def unannotated(message, ctx):  # type: ignore[no-untyped-def]
        ...

    @router.on_message(type="text")
    async def loose(message: Any, ctx: Context) -> None: ...

    @router.on_status(status=["failed", "warning"])
    async def failed(status: Status, ctx: Context) -> None: ...

    assert len(router.handlers()) == 6
