"""Mount the bot's webhook inside an aiohttp app that serves other routes too.

Run it with ``python examples/embedded_aiohttp.py`` (serves on port 8080). The bot starts
when the aiohttp app starts and drains when it shuts down.
"""

from __future__ import annotations

from aiohttp import web

from whizrouter import Context, TextMessage, WhizRouter

bot = WhizRouter(inbox="memory")


@bot.on_message(type="text")
async def shout(message: TextMessage, ctx: Context) -> None:
    """Answer in capitals."""
    await ctx.reply(message.text.body.upper())


async def index(request: web.Request) -> web.Response:
    """The host app's own page."""
    return web.Response(text="the shop's own site")


def create_app() -> web.Application:
    """The host app: its own routes plus the bot at /whatsapp/webhook."""
    web_app = web.Application()
    web_app.router.add_get("/", index)
    bot.attach(web_app, path="/whatsapp/webhook", health_path="/whatsapp/healthz")
    return web_app


if __name__ == "__main__":
    web.run_app(create_app(), port=8080)
