"""The server's settings that list others: the proxies whose forwarded headers it believes, the web
origins whose pages may call it and the host names requests may give (:class:`~nextword.serve.config.
ServeConfig`'s ``forwarded_allow_ips``, ``cors_origins`` and ``allowed_hosts``)."""

from __future__ import annotations

import contextlib
import ipaddress
import re

from nextword.runtime.checks import shown, wrong_type
from nextword.runtime.errors import WrongTypeError

__all__ = ["host_of", "hosts_checked", "origins_checked", "proxies_checked"]

# What a browser sends as Origin: scheme, host and an optional port, nothing after.
_ORIGIN = re.compile(r"https?://(?:[A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\])(?::\d{1,5})?", re.ASCII | re.IGNORECASE)


def proxies_checked(value: object, name: str = "forwarded_allow_ips") -> tuple[str, ...] | None:
    """``forwarded_allow_ips`` checked: ``None`` (uvicorn's default), else the IP addresses and networks
    in a list, tuple or comma-separated string (``()``: no proxy is believed), or ``("*",)`` for any.
    uvicorn would take a mistyped entry as a name that no client ever has, and trust nothing. ``name``:
    where the value came from, in the message (``$FORWARDED_ALLOW_IPS``)."""
    if value is None:
        return None
    entries = tuple(_comma_list(name, value, "a list of IP addresses or networks, or *"))
    if "*" in entries:
        return ("*",)
    for entry in entries:
        try:
            ipaddress.ip_network(entry) if "/" in entry else ipaddress.ip_address(entry)
        except ValueError:
            problem = "is not an IP address or network"
            with contextlib.suppress(ValueError):  # 10.0.0.1/8: an address with its network's length
                problem = f"has host bits set (the network is {ipaddress.ip_network(entry, strict=False)})"
            raise ValueError(
                f"{name} has {entry!r}, which {problem}: give the proxy's address (10.0.0.5; "
                "host names are not looked up), a network (10.0.0.0/8), or * for any"
            ) from None
    return entries


def origins_checked(value: object) -> tuple[str, ...]:
    """``cors_origins`` checked: origins as :func:`_comma_list` takes them, each once, each written as
    a browser sends it in ``Origin`` (which is compared as a string): scheme and host in lowercase, no
    default port (``:80`` for http, ``:443`` for https), an IPv6 address in its shortest form."""
    origins = _comma_list("cors_origins", value, "an origin (http://example.com:8080) or a list of them")
    for origin in origins:
        if origin != "*" and not _ORIGIN.fullmatch(origin):
            raise ValueError(
                f"cors_origins has {origin!r}, which is not an origin: give scheme://host[:port] with no "
                "path or trailing slash (http://localhost:5173), or * for any"
            )
    return tuple(dict.fromkeys(_as_sent(origin) for origin in origins))


def _as_sent(origin: str) -> str:
    """``origin`` (matching :data:`_ORIGIN`, or ``*``) as a browser writes it."""
    if origin == "*":
        return origin
    scheme, rest = origin.lower().split("://", 1)
    host, _, port = rest.rpartition(":") if not rest.endswith("]") else (rest, "", "")
    if not host or not port.isdigit():  # no port (a colon only inside an IPv6 address's brackets)
        host, port = rest, ""
    if host.startswith("["):
        with contextlib.suppress(ValueError):
            host = f"[{_as_browsers_write(ipaddress.IPv6Address(host[1:-1]))}]"
    if port and int(port) > 65535:
        raise ValueError(f"cors_origins has {origin!r}, whose port is past 65535: give the page's own port")
    if port and int(port) == {"http": 80, "https": 443}[scheme]:
        port = ""
    return f"{scheme}://{host}" + (f":{int(port)}" if port else "")


def _as_browsers_write(address: ipaddress.IPv6Address) -> str:
    """An IPv6 address as a URL writes it: hexadecimal groups only (Python 3.13 writes an IPv4-mapped
    one ``::ffff:1.2.3.4``, browsers ``::ffff:102:304``)."""
    mapped = address.ipv4_mapped
    if mapped is None:
        return address.compressed
    a, b, c, d = mapped.packed
    return f"::ffff:{a << 8 | b:x}:{c << 8 | d:x}"


# A host name as a Host header gives it (letters, digits, hyphens, dots), or *. before one for its subdomains.
_HOST_NAME = re.compile(r"(?:\*\.)?[a-z0-9_](?:[a-z0-9_.-]*[a-z0-9_])?", re.ASCII)


def hosts_checked(value: object) -> tuple[str, ...]:
    """``allowed_hosts`` checked: host names (lowercase, without a final dot), ``*.example.com`` for the
    subdomains of a domain of two labels or more, IP addresses (answered anyway), or ``("*",)`` for any;
    each once."""
    names = [
        name.lower().rstrip(".")
        for name in _comma_list("allowed_hosts", value, "a host name or a list of them")
    ]
    if "*" in names:
        return ("*",)
    kept = []
    for name in names:
        address = _address(name)
        if address is not None:
            kept.append(address)
            continue
        if _HOST_NAME.fullmatch(name) and not (name.startswith("*.") and "." not in name[2:]):
            kept.append(name)
            continue
        port = re.fullmatch(r"(.+):\d+", name)
        if port:
            hint = f"give it without its port ({port.group(1)})"
        elif name.startswith("*.") and _HOST_NAME.fullmatch(name):
            hint = f"a wildcard covers the subdomains of a domain, not of all {name[1:]} names"
        elif not name.isascii():
            hint = f"write it as a Host header does, in ASCII ({_punycode(name)})"
        else:
            hint = "give a name such as example.com"
        raise ValueError(
            f"allowed_hosts has {name!r}, which is not a host name: {hint}; *.example.com for the "
            "subdomains of one, or * for any (addresses and localhost are always answered)"
        )
    return tuple(dict.fromkeys(kept))


def _address(name: str) -> str | None:
    """``name`` as an IP address (``::1``, ``[::1]``, ``[::1]:8000``, ``10.0.0.5:80``), else None."""
    try:
        return str(ipaddress.ip_address(host_of(name.encode("utf-8"))))
    except ValueError:
        return None


def host_of(header: bytes) -> str:
    """The host name or address of a ``Host`` header, without its port, brackets or a final dot,
    lowercase: ``b"[::1]:8000"`` is ``"::1"``, ``b"Example.COM.:80"`` is ``"example.com"``."""
    text = header.decode("latin-1").strip().lower()
    if text.startswith("["):  # [IPv6]:port
        return text[1 : text.find("]")] if "]" in text else text
    if text.count(":") == 1:
        text = text.split(":", 1)[0]
    return text.rstrip(".")


def _punycode(name: str) -> str:
    try:
        return name.encode("idna").decode("ascii")
    except UnicodeError:
        return "its punycode, xn--..."


def _comma_list(name: str, value: object, wanted: str) -> list[str]:
    """The entries of a setting that takes a string or a list or tuple of them, each string split at its
    commas (as a flag or an environment variable writes several), empty parts dropped."""
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, (list, tuple)):
        raise wrong_type(name, wanted, value)
    for item in items:
        if not isinstance(item, str):
            raise WrongTypeError(f"{name} has {shown(item)}, which is not a string: give {wanted}")
    return [part.strip() for item in items for part in item.split(",") if part.strip()]
