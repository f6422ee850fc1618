"""The app's replaceable parts: the provider client and the inbox.

Each is built from the settings on first use, unless one was given (to the constructor, or by
``WhizRouter.replace_parts`` before start: custom wiring and the test kit). The app closes
the inbox at every stop, and the client when it built it or was handed it by
``replace_parts``; a client given to the constructor stays its owner's.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from whizrouter.client import WhizardClient
from whizrouter.inbox.base import Inbox
from whizrouter.inbox.factory import inbox_from_url
from whizrouter.settings import Settings


@dataclass(slots=True)
class Parts:
    """The client and inbox of one app, built lazily from ``settings``."""

    settings: Settings
    given_client: WhizardClient | None = None
    given_inbox: Inbox | None = None
    owns_client: bool = True
    built_client: WhizardClient | None = None
    built_inbox: Inbox | None = None

    @property
    def client(self) -> WhizardClient:
        """The given client, or one built from the settings (once)."""
        if self.given_client is not None:
            return self.given_client
        if self.built_client is None:
            self.built_client = WhizardClient(
                api_key=self.settings.api_key,
                base_url=self.settings.base_url,
                shape=self.settings.shape,
            )
        return self.built_client

    @property
    def inbox(self) -> Inbox:
        """The given inbox, or one built from the settings' inbox URL (once)."""
        if self.given_inbox is not None:
            return self.given_inbox
        if self.built_inbox is None:
            self.built_inbox = inbox_from_url(
                self.settings.inbox_url, max_backlog=self.settings.max_backlog
            )
        return self.built_inbox

    def replace(self, client: WhizardClient | None, inbox: Inbox | None) -> Callable[[], None]:
        """Use ``client`` (closed at stop, like a built one) and ``inbox`` from now on.

        Returns:
            a function that puts back the parts there were before.
        """
        before = (self.given_client, self.given_inbox, self.owns_client, self.built_inbox)
        if client is not None:
            self.given_client, self.owns_client = client, True
        if inbox is not None:
            self.given_inbox, self.built_inbox = inbox, None

        def restore() -> None:
            self.given_client, self.given_inbox, self.owns_client, self.built_inbox = before

        return restore

    async def close(self) -> None:
        """Close the inbox if it was used, and the client if it was used and is the app's."""
        inbox = self.given_inbox if self.given_inbox is not None else self.built_inbox
        if inbox is not None:
            await inbox.close()
        client = self.given_client if self.given_client is not None else self.built_client
        if client is not None and self.owns_client:
            await client.close()
