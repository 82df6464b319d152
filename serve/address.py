"""Whether the server's host and port can be bound: one line naming the cause and the option to change,
before uvicorn starts, in the terms of whoever asked (``nextword serve``'s flags, or ``ServeConfig``'s
fields from Python)."""

from __future__ import annotations

import errno
import socket

__all__ = ["AddressUnavailableError", "check_address"]


class AddressUnavailableError(OSError):
    """The server's host and port cannot be bound; the message names the cause and the option to change.

    ``strerror`` names the option as ``nextword serve``'s flag (``--port``): what the command prints.
    ``str()`` does too, except for an error raised by :func:`~nextword.serve.serve`,
    :func:`~nextword.serve.start` or :func:`~nextword.serve.serve_async`, which names it as the Python
    API takes it (``ServeConfig(port=...)``)."""

    advised = True  # the message says what to do: the command line adds no advice on files to it

    def __init__(self, code: int, why: str, in_python: str | None = None) -> None:
        super().__init__(code, why)
        self.in_python = in_python  # the message in the Python API's terms, where it differs

    def __str__(self) -> str:
        return self.in_python or self.strerror or super().__str__()


def check_address(host: str, port: int, *, in_python: bool = False) -> None:
    """Bind ``host``:``port`` as uvicorn will (``SO_REUSEADDR``), then let go: a port another server
    holds, a host that is not this machine's, is reported in one line with the option to change, before
    uvicorn starts. Port 0 (any free one) checks the host alone. Raises :class:`AddressUnavailableError`,
    whose ``str()`` names the option as ``ServeConfig``'s field with ``in_python``, else as the flag.
    (Another process may still take the port in between; uvicorn then reports it itself.)"""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET  # as uvicorn chooses
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:  # socket.gaierror too: a name that does not resolve
            code = errno.EINVAL if isinstance(exc, socket.gaierror) else exc.errno or errno.EINVAL
            python = _why(exc, host, port, family, python=True) if in_python else None
            raise AddressUnavailableError(code, _why(exc, host, port, family), python) from None


def _why(exc: OSError, host: str, port: int, family: int, *, python: bool = False) -> str:
    """What went wrong binding ``host``:``port``, and the option to change: as a flag (``--port``), or
    with ``python`` as ``ServeConfig``'s field."""
    if python:
        host_option, port_option = "ServeConfig(host=...)", "ServeConfig(port=...)"
    else:
        host_option, port_option = "--host", "--port"
    if isinstance(exc, socket.gaierror):
        if host.startswith("[") and host.endswith("]"):  # copied from a URL
            bare = f"ServeConfig(host={host[1:-1]!r})" if python else f"--host {host[1:-1]}"
            return f"host {host!r} is an IPv6 address in a URL's brackets: give it without them, {bare}"
        return f"host {host!r} cannot be resolved ({exc.strerror}): check {host_option}"
    where = f"[{host}]:{port}" if family == socket.AF_INET6 else f"{host}:{port}"
    if exc.errno == errno.EADDRINUSE:
        # from Python, most often a server that start() returned, in a notebook's cell run again
        held = (
            "another server, or one that start() returned and nothing stopped yet"
            if python
            else "another server, or an earlier `nextword serve` still running"
        )
        return (
            f"port {port} is already in use on {host} ({held}): stop it, or choose another port with "
            f"{port_option} (0: any free one)"
        )
    if exc.errno == errno.EACCES:
        return f"binding {where} is not permitted (ports below 1024 need privileges): raise {port_option}"
    if exc.errno == errno.EADDRNOTAVAIL:
        return f"{host} is not an address of this machine: check {host_option} (127.0.0.1 by default)"
    return f"cannot listen on {where}: {exc.strerror or exc}; check {host_option} and {port_option}"
