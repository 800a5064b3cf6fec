"""Outbound HTTP to addresses tenants configure (webhooks, judge endpoints): refuse private networks.

A tenant's admin chooses these URLs, so an unguarded call would let one tenant reach
the platform's own network (SSRF). Development and tests allow private addresses
(``HITL_WEBHOOK_ALLOW_PRIVATE``, ``HITL_JUDGE_ALLOW_PRIVATE``; both default to DEBUG).
"""

import ipaddress
import socket
from urllib.parse import urlparse


def refused_address(url: str, *, allow_private: bool) -> str:
    """Why the URL may not be called (a private, loopback or link-local address), or ''."""
    if allow_private:
        return ""
    host = urlparse(url).hostname or ""
    try:
        addresses = {info[4][0] for info in socket.getaddrinfo(host, None)}
    except OSError as error:
        return f"cannot resolve {host}: {error}"
    for address in addresses:
        ip = ipaddress.ip_address(address.split("%")[0])
        if ip.is_private or ip.is_loopback or ip.is_link_local or ip.is_reserved or ip.is_multicast:
            return f"refused: {host} resolves to the non-public address {ip}"
    return ""
