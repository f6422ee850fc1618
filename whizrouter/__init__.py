"""whizrouter: WhatsApp bots whose acknowledged messages are never lost.

Import everything from here::

    from whizrouter import WhizRouter, Router, Context
"""

from whizrouter.app import WhizRouter
from whizrouter.backoff import RetryPolicy
from whizrouter.client import WhizardClient
from whizrouter.context import Context, ContextKey
from whizrouter.errors import (
    BootstrapError,
    ConfigurationError,
    HandlerTimeoutError,
    InboxError,
    InboxFullError,
    InboxUnavailableError,
    MessageValidationError,
    PluginError,
    ProviderError,
    RateLimited,
    RegistrationClosedError,
    WhizrouterError,
)
from whizrouter.events import (
    AudioMessage,
    ButtonMessage,
    Contact,
    ContactsMessage,
    DocumentMessage,
    ImageMessage,
    InteractiveMessage,
    LocationMessage,
    Message,
    OrderMessage,
    ProviderErrorInfo,
    ReactionMessage,
    Status,
    StickerMessage,
    SystemMessage,
    TextMessage,
    UnknownMessage,
    VideoMessage,
    VoiceMessage,
)
from whizrouter.filters import F, Filter
from whizrouter.inbox.base import DeadLetter, Inbox, RawEvent, StoredEvent
from whizrouter.inbox.memory import MemoryInbox
from whizrouter.plugins import Plugin
from whizrouter.routing import Router

__version__ = "0.1.0"

__all__ = [
    "AudioMessage",
    "BootstrapError",
    "ButtonMessage",
    "ConfigurationError",
    "Contact",
    "ContactsMessage",
    "Context",
    "ContextKey",
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
    "MemoryInbox",
    "Message",
    "MessageValidationError",
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
    "Status",
    "StickerMessage",
    "StoredEvent",
    "SystemMessage",
    "TextMessage",
    "UnknownMessage",
    "VideoMessage",
    "VoiceMessage",
    "WhizRouter",
    "WhizardClient",
    "WhizrouterError",
    "__version__",
]
