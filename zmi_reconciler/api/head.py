"""HEAD for every GET route (RFC 9110 §9.3.2): the same status and headers as the GET, no content.

Litestar routes a method only to handlers declared for it, so a HEAD (``curl -I``, a load balancer's health
check, a client reading the ETag before a write) got 405. :class:`HeadAsGet` wraps the ASGI app: a HEAD request
is handled as the GET it stands for (the same guards, handlers and headers, ``Content-Length`` included) and
the body is dropped on the way out. Everything else passes through untouched.
"""

from __future__ import annotations

from typing import Any

from litestar.types import ASGIApp, Message, Receive, Scope, Send


class HeadAsGet:
    """ASGI wrapper: ``HEAD`` -> the app's ``GET``, without the content. ``app``: the wrapped ASGI app; its
    attributes stay reachable through the wrapper (uvicorn and tests look at the Litestar app)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    def __getattr__(self, name: str) -> Any:
        return getattr(self.app, name)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "HEAD":
            await self.app(scope, receive, send)
            return

        async def headers_only(message: Message) -> None:
            if message["type"] != "http.response.body":
                await send(message)
            elif not message.get("more_body", False):
                await send({"type": "http.response.body", "body": b"", "more_body": False})

        await self.app({**scope, "method": "GET"}, receive, headers_only)  # type: ignore[arg-type]
