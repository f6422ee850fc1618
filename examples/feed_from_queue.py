"""Run the bot inside your own asyncio program and feed it callbacks you received elsewhere.

``async with app:`` starts the inbox, plugins and dispatcher without any web server;
``await app.feed(body)`` stores a callback body exactly as the webhook would. Run it with
``python examples/feed_from_queue.py``: it feeds two callbacks and a redelivery of the
first, and exits after handling the two.
"""

from __future__ import annotations

import asyncio

from whizrouter import Context, TextMessage, WhizRouter

app = WhizRouter(inbox="memory")
handled: asyncio.Queue[str] = asyncio.Queue()


@app.on_message(type="text")
async def collect(message: TextMessage, ctx: Context) -> None:
    """Hand each text to the rest of the program."""
    await handled.put(f"{ctx.conversation}: {message.text.body}")


def callback(text: str, message_id: str) -> dict[str, object]:
    """A minimal on-premises callback body, as a queue consumer might receive it."""
    return {
        "contacts": [{"profile": {"name": "Ana"}, "wa_id": "15551230001"}],
        "messages": [
            {
                "from": "15551230001",
                "id": message_id,
                "timestamp": "1718000001",
                "type": "text",
                "text": {"body": text},
            }
        ],
    }


async def main() -> list[str]:
    """Feed two callbacks (and one redelivery, which is dropped) and return what was handled."""
    async with app:
        await app.feed(callback("hello", "wamid.feed-1"))
        await app.feed(callback("hello", "wamid.feed-1"))  # a redelivery: not handled twice
        await app.feed(callback("bye", "wamid.feed-2"))
        return [await asyncio.wait_for(handled.get(), timeout=5) for _ in range(2)]


if __name__ == "__main__":
    for line in asyncio.run(main()):
        print(line)
