"""HEAD for every GET route (RFC 9110 §9.3.2): the same status and headers as the GET, no content.

Litestar routes a method only to handlers declared for it, so a HEAD (``curl -I``, a load balancer's health
check, a client reading the ETag before a write) got 405. :class:`HeadAsGet` wraps the ASGI app: a HEAD request
is handled as the GET it stands for (the same guards, handlers and headers, ``Content-Length`` included) and
the body is dropped on the way out. An ``Allow`` header that names GET (a 405, an OPTIONS answer) names HEAD too
(RFC 9110 §10.2.1: the methods the resource supports). Everything else passes through untouched.
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
        app = self.__dict__.get("app")  # (absent while copy or pickle rebuilds the wrapper)
        if app is None or name.startswith("__"):
            raise AttributeError(name)
        return getattr(app, name)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        head = scope["method"] == "HEAD"

        async def out(message: Message) -> None:
            kind = message["type"]
            if kind == "http.response.start" and (message["status"] == 405 or scope["method"] == "OPTIONS"):
                message = {**message, "headers": _with_head_allowed(message.get("headers") or [])}
            elif kind == "http.response.body" and head:
                if message.get("more_body", False):
                    return
                message = {"type": "http.response.body", "body": b"", "more_body": False}
            await send(message)

        await self.app({**scope, "method": "GET"} if head else scope, receive, out)  # type: ignore[arg-type]


def _with_head_allowed(headers: Any) -> list[tuple[bytes, bytes]]:
    """``headers`` (ASGI pairs) with HEAD added to an ``Allow`` value that has GET but no HEAD."""
    fixed = []
    for name, value in headers:
        if name.lower() == b"allow":
            methods = [m.strip() for m in value.split(b",") if m.strip()]
            if b"GET" in methods and b"HEAD" not in methods:
                value = b", ".join([*methods, b"HEAD"])
        fixed.append((name, value))
    return fixed
