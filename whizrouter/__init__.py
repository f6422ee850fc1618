"""whizrouter: WhatsApp bots whose acknowledged messages are never lost.

Import everything from here::

    from whizrouter import WhizRouter, Router, Context
"""

from whizrouter.app import WhizRouter
from whizrouter.backoff import RetryPolicy
from whizrouter.client import WhizardClient
from whizrouter.context import Context, ContextKey
from whizrouter.conversation_state import ConversationState
from whizrouter.errors import (
    BootstrapError,
    ConfigurationError,
    HandlerTimeoutError,
    InboxError,
    InboxFullError,
    InboxUnavailableError,
    MediaIntegrityError,
    MediaNotFoundError,
    MediaTooLargeError,
    MessageValidationError,
    PluginError,
    ProviderError,
    RateLimited,
    RegistrationClosedError,
    UnknownNumberError,
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
from whizrouter.inbox.stored_state import StateWrite, StoredState
from whizrouter.media import MediaInfo, MediaStream
from whizrouter.numbers import Number, Numbers
from whizrouter.plugins import Plugin
from whizrouter.routing import Router
from whizrouter.state import State, StateGroup
from whizrouter.typing_indicator import Typing

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
]
