"""What keeps the UI's server to the person who started it: hosts, cross-site writes, headers.

Owns one ASGI middleware. A request whose ``Host`` is not one the server answers to is refused
(a page on another site cannot reach 127.0.0.1 through a DNS name it rebinds); a request that
changes something (any method but GET and HEAD) is refused when the browser says it comes from
another site (``Sec-Fetch-Site``) or names another origin (``Origin``); every answer but a
profile artifact served as it is carries a Content-Security-Policy allowing only this server's
own scripts, styles and images, so nothing is loaded from a CDN even by mistake.

A client that is not a browser sends neither header and is let through: cross-site requests
are a browser's, and a local program can already read the store file itself.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from typing import Any
from urllib.parse import urlsplit

import orjson

__all__ = ["LOOPBACK_HOSTS", "Guard", "is_loopback"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1", "[::1]"})
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_SAME_SITE = frozenset({"same-origin", "none"})
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
)
#: Paths whose answer is a file served as it is (memray's flame graph has scripts of its own).
_AS_IS_PREFIX = "/api/profiles/"
_AS_IS_SUFFIX = "/artifact"


def is_loopback(host: str) -> bool:
    return host in LOOPBACK_HOSTS or host.startswith("127.")


def _hostname(value: str) -> str:
    """``127.0.0.1:8765`` -> ``127.0.0.1``; ``[::1]:8765`` -> ``::1``."""
    if value.startswith("["):
        return value[1 : value.find("]")] if "]" in value else value
    return value.rsplit(":", 1)[0] if value.count(":") == 1 else value


class Guard:
    """The middleware: ``allowed_hosts`` of ``None`` answers to any host (``--host`` given)."""

    def __init__(self, app: ASGIApp, *, allowed_hosts: Iterable[str] | None) -> None:
        self.app = app
        self.allowed = None if allowed_hosts is None else frozenset(map(str.lower, allowed_hosts))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        host = headers.get("host", "")
        refusal = self._refusal(scope, headers, host)
        if refusal is not None:
            await _refuse(send, *refusal)
            return
        path: str = scope.get("path", "")
        as_is = path.startswith(_AS_IS_PREFIX) and path.endswith(_AS_IS_SUFFIX)

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                extra = [
                    (b"x-content-type-options", b"nosniff"),
                    (b"referrer-policy", b"no-referrer"),
                ]
                if not as_is:
                    extra += [
                        (b"content-security-policy", CSP.encode()),
                        (b"x-frame-options", b"DENY"),
                    ]
                message["headers"] = [*message.get("headers", []), *extra]
            await send(message)

        await self.app(scope, receive, with_headers)

    def _refusal(self, scope: Scope, headers: dict[str, str], host: str) -> tuple[int, str] | None:
        if self.allowed is not None and _hostname(host).lower() not in self.allowed:
            return 421, (
                f"this workbench UI answers to {', '.join(sorted(self.allowed))} only, not to "
                f"host {host!r}; open it at http://127.0.0.1:PORT/, or start it with --host to "
                f"serve other names"
            )
        if scope["method"] in _SAFE_METHODS:
            return None
        site = headers.get("sec-fetch-site")
        if site is not None and site not in _SAME_SITE:
            return 403, (
                f"refused a {scope['method']} from another site (Sec-Fetch-Site: {site}); "
                f"actions that change something are taken from this UI's own pages only"
            )
        origin = headers.get("origin")
        if origin is not None:
            parts = urlsplit(origin)
            if origin == "null" or parts.netloc.lower() != host.lower():
                return 403, (
                    f"refused a {scope['method']} from origin {origin!r}, which is not this "
                    f"server ({host}); actions are taken from this UI's own pages only"
                )
        return None


async def _refuse(send: Send, status: int, message: str) -> None:
    body = orjson.dumps({"error": {"type": "RequestRefused", "message": message}})
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"content-security-policy", CSP.encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
