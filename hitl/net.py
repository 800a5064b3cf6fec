"""Outbound HTTP to URLs tenants configure (webhooks, judge endpoints), guarded against SSRF.

A tenant's admin chooses these URLs, so an unguarded call would let one tenant reach the
platform's own network. Three rules keep every call where it was vetted:

1. The URL is parsed once, with urllib3's parser (the one requests and urllib3 use to
   pick the host they connect to), and refused when a parser could read it two ways:
   user-info (``user:password@``), a backslash, spaces or control characters, a
   malformed host. ``outbound_url_parse`` applies these rules when a URL is saved.
2. At call time the host is resolved once, every address it resolves to must be globally
   routable (``address_refusal``), and the connection goes to those very addresses:
   ``pinned_session`` hands out a requests session that never resolves the name again, so
   a DNS answer that changes between the check and the connection (rebinding) is never
   used. TLS still sends the name (SNI) and verifies the certificate against it.
3. The session talks to the vetted origin only (another host, port or scheme, as a
   redirect would need, is refused), ignores proxy variables and ``.netrc`` from the
   environment (a proxy would resolve the name itself; ``.netrc`` would add credentials),
   and callers do not follow redirects.

Development and tests may call private addresses (``HITL_WEBHOOK_ALLOW_PRIVATE``,
``HITL_JUDGE_ALLOW_PRIVATE``; both default to DEBUG): the URL rules and the pinning
still apply, the address check does not.
"""

import ipaddress
import re
import socket
import sys
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import requests
from requests.adapters import HTTPAdapter
from urllib3 import HTTPConnectionPool, HTTPSConnectionPool, PoolManager
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.exceptions import ConnectTimeoutError, LocationParseError, NewConnectionError
from urllib3.util import connection as urllib3_connection
from urllib3.util import parse_url

DEFAULT_PORTS = {"http": 80, "https": 443}

# Not globally routable in practice, whatever the ipaddress module's tables say (they vary
# between Python releases): refused explicitly.
REFUSED_NETWORKS = tuple(
    ipaddress.ip_network(network)
    for network in (
        "0.0.0.0/8",  # "this network"; 0.0.0.0 reaches the local host on Linux
        "100.64.0.0/10",  # shared address space (RFC 6598): carrier NAT, and some clouds' metadata services
        "192.88.99.0/24",  # 6to4 relay anycast (deprecated)
        "2001::/32",  # Teredo: embeds an IPv4 address
        "2002::/16",  # 6to4: embeds an IPv4 address, which may be a private one
        "64:ff9b:1::/48",  # local-use NAT64 (RFC 8215): translates to addresses of the local network
        "fec0::/10",  # site-local (deprecated, still routed inside some networks)
    )
)
NAT64_WELL_KNOWN = ipaddress.ip_network("64:ff9b::/96")  # RFC 6052: the last 32 bits are the IPv4 address

# A host name: labels of letters, digits, hyphens (and underscores, which some private DNS
# names carry), 1 to 63 characters, not starting or ending with a hyphen.
_LABEL = re.compile(r"(?!-)[a-z0-9_-]{1,63}(?<!-)")
# A last label that is a number: browsers and inet_aton read such a host as an IPv4 address
# (``2130706433``, ``0x7f.1``, ``127.1`` are all 127.0.0.1), so only the dotted quad is accepted.
_NUMERIC_LABEL = re.compile(r"(?:0x[0-9a-f]*|[0-9]+)")
_SPACE_OR_CONTROL = re.compile(r"[\x00-\x20\x7f]")


class OutboundRefused(ValueError):
    """The URL may not be called: malformed, unresolvable, or it leads to a refused address."""


@dataclass(frozen=True)
class OutboundUrl:
    """A URL as the HTTP client will read it."""

    scheme: str
    host: str  # lower case, IDNA-encoded; an IPv6 address without brackets
    port: int  # explicit, or the scheme's default

    @property
    def origin(self) -> tuple[str, str, int]:
        return self.scheme, self.host, self.port


@dataclass(frozen=True)
class Destination:
    """A vetted URL and the addresses its host resolved to when it was vetted."""

    url: OutboundUrl
    addresses: tuple[str, ...]


def outbound_url_parse(url: str) -> OutboundUrl:
    """The URL's scheme, host and port, or ``OutboundRefused`` saying what is wrong with it.

    Called when a URL is saved (so the error names the field) and again before each call
    (so that a URL saved under older rules is refused too). No name is resolved here.
    """
    if not isinstance(url, str) or not url:
        raise OutboundRefused("the URL must be an http or https URL")
    if "\\" in url:
        # Browsers and urllib.parse read a backslash as a slash, urllib3 does not:
        # http://127.0.0.1:8799\@1.1.1.1/ names 1.1.1.1 to one and 127.0.0.1 to the other.
        raise OutboundRefused("the URL must not contain a backslash")
    if _SPACE_OR_CONTROL.search(url):
        raise OutboundRefused("the URL must not contain spaces or control characters")
    try:
        parsed = parse_url(url)
        authority = urlsplit(url).netloc
    except (LocationParseError, ValueError) as error:
        raise OutboundRefused(f"the URL is not valid ({error})") from None
    if parsed.scheme not in DEFAULT_PORTS:
        raise OutboundRefused("the URL must be an http or https URL")
    if parsed.auth is not None or "@" in authority:
        raise OutboundRefused("the URL must not contain user-info (user:password@)")
    if not parsed.host:
        raise OutboundRefused("the URL has no host")
    host = _host_validate(parsed.host)
    if parsed.port == 0:
        raise OutboundRefused("the URL has an invalid port: 0")
    return OutboundUrl(scheme=parsed.scheme, host=host, port=parsed.port or DEFAULT_PORTS[parsed.scheme])


def _host_validate(host: str) -> str:
    if host.startswith("["):
        literal = host[1:-1]
        try:
            ipaddress.IPv6Address(literal)
        except ValueError:
            raise OutboundRefused(f"the URL has an invalid host: {host}") from None
        return literal
    try:
        ipaddress.IPv4Address(host)
        return host
    except ValueError:
        pass
    name = host[:-1] if host.endswith(".") else host  # a trailing dot (fully qualified) is allowed
    labels = name.split(".")
    if len(name) > 253 or not all(_LABEL.fullmatch(label) for label in labels):
        raise OutboundRefused(f"the URL has an invalid host name: {host}")
    if _NUMERIC_LABEL.fullmatch(labels[-1]):
        raise OutboundRefused(f"the URL has an invalid host: {host} (write an IPv4 address as four decimal numbers)")
    return host


def address_refusal(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str:
    """Why a connection to this address is refused (not globally routable), or ''."""
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:  # ::ffff:a.b.c.d is a.b.c.d
            return address_refusal(address.ipv4_mapped)
        if address in NAT64_WELL_KNOWN:  # translated to the IPv4 address in its last 32 bits
            return address_refusal(ipaddress.IPv4Address(int(address) & 0xFFFFFFFF))
    if any(address in network for network in REFUSED_NETWORKS if network.version == address.version):
        return "not globally routable"
    if address.is_multicast:
        return "multicast"
    if not address.is_global or address.is_reserved:
        return "not globally routable"
    return ""


def outbound_resolve(url: str, *, allow_private: bool) -> Destination:
    """Parse the URL, resolve its host once and check every address (``OutboundRefused`` if any fails).

    Every address must pass, not just one: the connection may go to any of them.
    """
    try:
        parsed = outbound_url_parse(url)
    except OutboundRefused as error:  # saved under older rules
        raise OutboundRefused(f"refused: {error}") from None
    try:
        infos = socket.getaddrinfo(parsed.host, parsed.port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError, ValueError) as error:
        # UnicodeError: a label the IDNA codec refuses (too long, say).
        raise OutboundRefused(f"cannot resolve {parsed.host}: {error}") from None
    addresses = tuple(dict.fromkeys(str(info[4][0]) for info in infos))
    if not addresses:
        raise OutboundRefused(f"cannot resolve {parsed.host}: no address")
    if not allow_private:
        for address in addresses:
            try:
                ip = ipaddress.ip_address(address.split("%")[0])  # without an IPv6 zone (fe80::1%eth0)
            except ValueError:
                raise OutboundRefused(f"refused: {parsed.host} resolves to {address!r}, not an IP address") from None
            reason = address_refusal(ip)
            if reason:
                raise OutboundRefused(f"refused: {parsed.host} resolves to the non-public address {ip} ({reason})")
    return Destination(url=parsed, addresses=addresses)


def pinned_session(url: str, *, allow_private: bool) -> requests.Session:
    """A requests session for this URL's origin that connects only to the addresses checked now.

    Raises ``OutboundRefused`` when the URL is refused or its host does not resolve. Use it
    as a context manager (it closes its connections) and pass ``allow_redirects=False``.
    """
    destination = outbound_resolve(url, allow_private=allow_private)
    session = requests.Session()
    session.trust_env = False  # no proxy variables (the proxy would resolve the name), no .netrc credentials
    adapter = _PinnedAdapter(destination)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


class _PinnedConnectionMixin:
    """Connects to the pinned addresses instead of resolving ``self.host``.

    ``self.host`` stays the name: it is what the Host header carries, what TLS sends as
    SNI and what the certificate is verified against.
    """

    def __init__(self, *args: Any, pinned_addresses: tuple[str, ...], **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.pinned_addresses = pinned_addresses

    def _new_conn(self) -> socket.socket:
        # urllib3's own _new_conn resolves self.host again: the window a rebinding DNS answer
        # would use. This one tries the checked addresses in the resolver's order, as urllib3 would.
        error: Exception = NewConnectionError(self, "no address to connect to")
        for address in self.pinned_addresses:
            try:
                sock = urllib3_connection.create_connection(
                    (address, self.port),
                    self.timeout,
                    source_address=self.source_address,
                    socket_options=self.socket_options,
                )
            except TimeoutError:  # socket.timeout
                error = ConnectTimeoutError(
                    self, f"Connection to {self.host} ({address}) timed out. (connect timeout={self.timeout})"
                )
            except OSError as exc:
                error = NewConnectionError(self, f"Failed to establish a new connection to {address}: {exc}")
            else:
                sys.audit("http.client.connect", self, self.host, self.port)
                return sock
        raise error


class _PinnedHTTPConnection(_PinnedConnectionMixin, HTTPConnection):
    pass


class _PinnedHTTPSConnection(_PinnedConnectionMixin, HTTPSConnection):
    pass


class _PinnedHTTPConnectionPool(HTTPConnectionPool):
    ConnectionCls = _PinnedHTTPConnection


class _PinnedHTTPSConnectionPool(HTTPSConnectionPool):
    ConnectionCls = _PinnedHTTPSConnection


class _PinnedPoolManager(PoolManager):
    """Pools for the vetted origin only, whose connections go to its pinned addresses."""

    def __init__(self, destination: Destination, **kwargs: Any):
        super().__init__(**kwargs)
        self.destination = destination
        self.pool_classes_by_scheme = {"http": _PinnedHTTPConnectionPool, "https": _PinnedHTTPSConnectionPool}

    def _new_pool(self, scheme: str, host: str, port: int, request_context: dict | None = None):
        # requests parses the URL again: should it read another origin (or follow a redirect
        # to one), nothing was checked for it.
        origin = (scheme, host.strip("[]").lower(), port)
        if origin != self.destination.url.origin:
            raise OutboundRefused(f"refused: {scheme}://{host}:{port} is not the vetted destination")
        context = dict(self.connection_pool_kw if request_context is None else request_context)
        context["pinned_addresses"] = self.destination.addresses
        return super()._new_pool(scheme, host, port, context)


class _PinnedAdapter(HTTPAdapter):
    def __init__(self, destination: Destination):
        self.destination = destination  # before super().__init__, which makes the pool manager
        super().__init__(max_retries=0)

    def init_poolmanager(self, connections: int, maxsize: int, block: bool = False, **pool_kwargs: Any) -> None:
        self._pool_connections, self._pool_maxsize, self._pool_block = connections, maxsize, block
        self.poolmanager = _PinnedPoolManager(
            self.destination, num_pools=connections, maxsize=maxsize, block=block, **pool_kwargs
        )

    def proxy_manager_for(self, proxy: str, **proxy_kwargs: Any):
        raise OutboundRefused("refused: outbound calls to tenant URLs do not go through a proxy")
