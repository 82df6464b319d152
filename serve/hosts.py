"""The Host check (``--allowed-host``): the names a request may give in its ``Host`` header.

A server reached on the loopback address is out of other machines' reach, but not out of a web page's:
a page on a site the user visits can have its own name resolve to 127.0.0.1 a moment after it loaded
(DNS rebinding), and its scripts then call the server as their own origin, CORS or not, with the user's
browser as the client. What gives such a request away is its ``Host`` header, a name in a domain of the
attacker's. So a request that came in on a loopback address (whatever address the server listens on:
127.0.0.1, or 0.0.0.0 reached from this machine) is answered only for ``localhost``, ``*.localhost``,
this machine's own name, an IP address (a page reached by address cannot be rebound), or a name given
with ``--allowed-host`` (the name a reverse proxy passes on); others get 400 ``host_not_allowed``. A
server given ``--allowed-host`` checks every request, whatever address it came in on; without it,
requests from other machines are not checked (they reach the server by whatever names its network
gives it, and an API key is what guards it). The connection's own address is what ASGI servers give
as ``scope["server"]``: the check holds under any of them, not only ``nextword serve``; a connection
on a Unix socket (a proxy on this machine forwards to it) is checked as a loopback one.
"""

from __future__ import annotations

import ipaddress
import logging
import socket
from collections.abc import Sequence
from typing import Any

from nextword.runtime.errors import shorten

from .allowed import host_of
from .errors import send_error

__all__ = ["MAX_SAID", "HostCheck", "host_allowed", "host_of", "local_connection", "loopback_address"]

logger = logging.getLogger(__name__)

MAX_SAID = 20  # host names whose refusal is logged, each once: more are a client's noise, not a setup


def host_allowed(host: str, names: Sequence[str], own: Sequence[str] = ()) -> bool:
    """Whether a request for ``host`` (as :func:`host_of` gives it) is answered: ``localhost`` and its
    subdomains, an IP address, this machine's names ``own``, one of ``names``, or a subdomain of a
    ``*.example.com`` among them. An empty ``host`` (no header: HTTP/1.0, which no browser sends) is."""
    if host in ("", "localhost") or host.endswith(".localhost") or host in names or host in own:
        return True
    try:
        ipaddress.ip_address(host)
        return True
    except ValueError:
        pass
    return any(name.startswith("*.") and host.endswith(name[1:]) for name in names)


def loopback_address(address: object) -> bool:
    """Whether ``address`` (a connection's local address, as ASGI's ``scope["server"]`` gives it) is a
    loopback one (``::ffff:127.0.0.1`` too); not for a name or a Unix socket's path."""
    try:
        ip = ipaddress.ip_address(str(address))
    except ValueError:
        return False
    mapped = getattr(ip, "ipv4_mapped", None)
    return ip.is_loopback or (mapped is not None and mapped.is_loopback)


def local_connection(server: object, client: object = None) -> bool:
    """Whether a connection whose ASGI ``scope["server"]`` is ``server`` (and ``scope["client"]``,
    ``client``) may come from this machine's browser: one on a loopback address, one from this
    machine to its own network address (the client's address is the server's: a name rebound to the
    machine's LAN address, on a server on 0.0.0.0), or one on a Unix socket (``None``, or a path
    without a port: a proxy on this machine forwards to it). Not a name with a port that is no address
    (Starlette's test client, ``("testserver", 80)``), nor another machine's connection."""
    if server is None:
        return True
    if not isinstance(server, (tuple, list)) or not server:
        return False
    if loopback_address(server[0]) or (len(server) > 1 and server[1] is None):
        return True
    return isinstance(client, (tuple, list)) and bool(client) and client[0] == server[0] and bool(server[0])


def machine_names() -> tuple[str, ...]:
    """This machine's own name, and its first label (``build-01.corp.example``, ``build-01``)."""
    name = socket.gethostname().lower().rstrip(".")
    return tuple(dict.fromkeys(filter(None, (name, name.split(".")[0]))))


class HostCheck:
    """ASGI middleware: a request whose ``Host`` is not :func:`host_allowed` gets 400
    ``host_not_allowed`` naming the setting that allows it, before anything else reads it (and the
    reason in the log, once a name). With ``always``, every request is checked; else those that may come
    from this machine's browser (:func:`local_connection`)."""

    def __init__(self, app: Any, names: Sequence[str], always: bool) -> None:
        self.app = app
        self.names = tuple(names)
        self.always = always
        self.own = machine_names()
        self.said: set[str] = set()  # the names refused in the log so far (a few: an operator's clue)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http" and (
            self.always or local_connection(scope.get("server"), scope.get("client"))
        ):
            header = next((value for name, value in scope.get("headers") or () if name == b"host"), b"")
            host = host_of(header)
            if not host_allowed(host, self.names, self.own):
                message = (
                    f"this server does not answer for the host {shorten(host)}: open it as localhost or "
                    f"by its address, or, where that name is yours (a reverse proxy's), start it with "
                    f"--allowed-host {shorten(host)} (ServeConfig(allowed_hosts=...)); a page that "
                    "reached it by another name may be a DNS rebinding attack"
                )
                if host not in self.said and len(self.said) < MAX_SAID:  # the access line says only 400
                    self.said.add(host)
                    logger.warning("refused a request: %s", message)
                await send_error(send, 400, message, "host_not_allowed")
                return
        await self.app(scope, receive, send)
