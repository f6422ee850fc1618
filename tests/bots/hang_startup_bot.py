"""A bot whose plugin's startup hook never returns (a provider that never answers, say).

It logs "hook started" once it hangs, so a test knows startup is under way.
"""

from __future__ import annotations

import asyncio
import logging

from whizrouter import WhizRouter


class HangingStartup:
    """A plugin whose ``startup`` waits forever."""

    name = "hang-startup"

    async def startup(self, app: WhizRouter) -> None:
        logging.getLogger("tests.hang").warning("hook started")
        await asyncio.Event().wait()


app = WhizRouter(plugins=[HangingStartup()])
