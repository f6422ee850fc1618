"""The front door: exactly these names, each documented."""

from __future__ import annotations

import whizrouter

EXPECTED = {
    "AudioMessage",
    "BootstrapError",
    "ButtonMessage",
    "ConfigurationError",
    "Contact",
    "ContactsMessage",
    "Context",
    "ContextKey",
    "ConversationState",
    "DeadLetter",
    "DocumentMessage",
    "F",
    "Filter",
    "HandlerTimeoutError",
    "ImageMessage",
    "Inbox",
    "InboxError",
    "InboxFullError",
    "InboxUnavailableError",
    "InteractiveMessage",
    "LocationMessage",
    "MediaInfo",
    "MediaIntegrityError",
    "MediaNotFoundError",
    "MediaStream",
    "MediaTooLargeError",
    "MemoryInbox",
    "Message",
    "MessageValidationError",
    "Number",
    "Numbers",
    "OrderMessage",
    "Plugin",
    "PluginError",
    "ProviderError",
    "ProviderErrorInfo",
    "RateLimited",
    "RawEvent",
    "ReactionMessage",
    "RegistrationClosedError",
    "RetryPolicy",
    "Router",
    "State",
    "StateGroup",
    "StateWrite",
    "Status",
    "StickerMessage",
    "StoredEvent",
    "StoredState",
    "SystemMessage",
    "TextMessage",
    "Typing",
    "UnknownMessage",
    "UnknownNumberError",
    "VideoMessage",
    "VoiceMessage",
    "WhizRouter",
    "WhizardClient",
    "WhizrouterError",
    "__version__",
}


def test_all_is_exact_and_sorted() -> None:
    assert set(whizrouter.__all__) == EXPECTED
    assert whizrouter.__all__ == sorted(whizrouter.__all__)


def test_every_public_name_is_importable_and_documented() -> None:
    for name in whizrouter.__all__:
        value = getattr(whizrouter, name)
        if name != "__version__":
            assert value.__doc__, f"{name} has no docstring"
