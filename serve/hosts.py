"""The Host check (``--allowed-host``): the names a request may give in its ``Host`` header.

A server on the loopback address is out of other machines' reach, but not out of a web page's: a page
on a site the user visits can have its own name resolve to 127.0.0.1 a moment after it loaded (DNS
rebinding), and its scripts then call the server as their own origin, CORS or not, with the user's
browser as the client. What gives such a request away is its ``Host`` header, a name in a domain of the
attacker's. So a server listening on loopback answers only requests for a name of one label
(``localhost``, a machine's own name from its hosts file, which no outside DNS server answers for),
``*.localhost``, an IP address (a page reached by address cannot be rebound), or a name given with
``--allowed-host`` (the name a reverse proxy passes on); others get 400 ``host_not_allowed``. A server
given ``--allowed-host`` checks every request against them, on any address; one on another address
without it checks nothing (it is reachable by any name its network gives it, and an API key is what
guards it).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from typing import Any

from nextword.runtime.errors import shorten

from .errors import send_error

__all__ = ["HostCheck", "host_allowed", "host_of"]


def host_of(header: bytes) -> str:
    """The host name or address of a ``Host`` header, without its port, brackets or a final dot,
    lowercase: ``b"[::1]:8000"`` is ``"::1"``, ``b"Example.COM.:80"`` is ``"example.com"``."""
    text = header.decode("latin-1").strip().lower()
    if text.startswith("["):  # [IPv6]:port
        return text[1 : text.find("]")] if "]" in text else text
    if text.count(":") == 1:
        text = text.split(":", 1)[0]
    return text.rstrip(".")


def host_allowed(host: str, names: Sequence[str]) -> bool:
    """Whether a request for ``host`` (as :func:`host_of` gives it) is answered: a name of one label
    (``localhost``), a subdomain of ``localhost``, an IP address, one of ``names``, or a subdomain of a
    ``*.example.com`` among them."""
    if "." not in host or host.endswith(".localhost") or host in names:
        return True
    try:
        ipaddress.ip_address(host)
        return True
    except ValueError:
        pass
    return any(name.startswith("*.") and host.endswith(name[1:]) for name in names)


class HostCheck:
    """ASGI middleware: a request whose ``Host`` is not :func:`host_allowed` gets 400
    ``host_not_allowed`` naming the flag that allows it, before anything else reads it. A request
    without a ``Host`` (HTTP/1.0, which no browser sends) is answered."""

    def __init__(self, app: Any, names: Sequence[str]) -> None:
        self.app = app
        self.names = tuple(names)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            header = next((value for name, value in scope.get("headers") or () if name == b"host"), b"")
            host = host_of(header)
            if not host_allowed(host, self.names):
                await send_error(
                    send,
                    400,
                    f"this server does not answer for the host {shorten(host)}: open it as localhost or "
                    f"by its address, or start it with --allowed-host {shorten(host)} where that name is "
                    "yours (a reverse proxy's); a page that reached it by another name may be a DNS "
                    "rebinding attack",
                    "host_not_allowed",
                )
                return
        await self.app(scope, receive, send)
