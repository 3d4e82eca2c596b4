"""The server answers only requests that name this computer: a page of another site whose name was rebound
to 127.0.0.1 (DNS rebinding) gets 403, for the page, its files and the connection that drives the app.

Streamlit's ``server.allowedHosts`` (set in .streamlit/config.toml) guards only the WebSocket; this
middleware, put in front of every route by app.py, applies the same list to every request. An empty
list means the addresses of this computer and ``server.address``, never "any host".
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlparse

from streamlit import config

LOCAL_HOSTS = ("localhost", "127.0.0.1", "::1")
REFUSED = b"403: this server answers only to the address it listens on (see server.allowedHosts).\n"

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict]]
Send = Callable[[dict], Awaitable[None]]


def allowed_hosts() -> tuple[str, ...]:
    """The host names a request may name: ``server.allowedHosts``, else this computer's and ``server.address``."""
    listed = tuple(h.strip().lower().rstrip(".") for h in config.get_option("server.allowedHosts") or ())
    if listed:
        return listed
    address = (config.get_option("server.address") or "").strip().lower()
    return LOCAL_HOSTS + ((address,) if address and address not in ("0.0.0.0", "::") else ())


def host_allowed(host: str | None, allowed: tuple[str, ...]) -> bool:
    """Whether a Host header (``name`` or ``name:port``, ``[v6]:port``) names one of ``allowed``."""
    if not host:
        return False
    try:
        parsed = urlparse(f"//{host}")
        parsed.port  # noqa: B018 (reading it checks the port is a number)
    except ValueError:
        return False
    name = (parsed.hostname or "").lower().rstrip(".")
    if not name or parsed.username is not None or parsed.path or parsed.query or parsed.fragment:
        return False
    for pattern in allowed:
        if pattern == "*" or name == pattern or (pattern.startswith("*.") and name.endswith(pattern[1:])):
            return True
    return False


class OwnHostOnly:
    """ASGI middleware: 403 for an HTTP request, a refused handshake for a WebSocket, whose Host is not allowed."""

    def __init__(self, app: Callable[[Scope, Receive, Send], Awaitable[None]]) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket"):
            host = dict(scope.get("headers") or ()).get(b"host", b"").decode("latin-1")
            if not host_allowed(host, allowed_hosts()):
                if scope["type"] == "websocket":
                    await send({"type": "websocket.close", "code": 1008})  # before accept: the handshake gets 403
                    return
                headers = [(b"content-type", b"text/plain; charset=utf-8"), (b"content-length", b"%d" % len(REFUSED))]
                await send({"type": "http.response.start", "status": 403, "headers": headers})
                await send({"type": "http.response.body", "body": REFUSED})
                return
        await self.app(scope, receive, send)
