"""Name resolution and connections for tests of outbound calls: nothing leaves the machine.

``fake_dns`` stands in for ``socket.getaddrinfo``: names answer from a script (one answer
a call, the last one repeating), addresses answer as themselves, and any other name is
unknown, so DNS is never asked. ``loopback_only`` refuses, before any packet, a connection
to anything but a loopback address, and records every destination tried::

    fake_dns.script("hook.test", ["127.0.0.1"], ["127.0.0.2"])  # first answer, then a rebinding one
    ...
    assert loopback_only.destinations == [("127.0.0.1", port)]

Both fixtures are available to every test (tests/conftest.py imports them); neither is autouse.
"""

import ipaddress
import socket

import pytest

_real_getaddrinfo = socket.getaddrinfo
_real_connect = socket.socket.connect
_real_connect_ex = socket.socket.connect_ex


def _is_address(host) -> bool:
    try:
        ipaddress.ip_address(str(host).split("%")[0])
    except ValueError:
        return False
    return True


class FakeResolver:
    """``socket.getaddrinfo`` from a script; ``calls`` lists the names asked (addresses are not counted)."""

    def __init__(self):
        self.answers: dict[str, list[list[str]]] = {}
        self.calls: list[str] = []

    def script(self, name: str, *answers: list[str]) -> None:
        self.answers[name] = [list(answer) for answer in answers]

    def __call__(self, host, port, family=0, type=0, proto=0, flags=0):
        if _is_address(host):
            return _real_getaddrinfo(host, port, family, type, proto, flags | socket.AI_NUMERICHOST)
        name = host.decode() if isinstance(host, bytes) else str(host)
        self.calls.append(name)
        answers = self.answers.get(name)
        if not answers:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        addresses = answers.pop(0) if len(answers) > 1 else answers[0]
        port = int(port or 0)
        return [
            (socket.AF_INET6, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", (address, port, 0, 0))
            if ":" in address
            else (socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", (address, port))
            for address in addresses
        ]


class LoopbackGuard:
    """Refuses connections to non-loopback addresses; ``destinations`` lists every one tried."""

    def __init__(self):
        self.destinations: list[tuple] = []

    def check(self, sock, address) -> None:
        if sock.family not in (socket.AF_INET, socket.AF_INET6):
            return
        self.destinations.append(tuple(address[:2]))
        if not ipaddress.ip_address(str(address[0]).split("%")[0]).is_loopback:
            raise ConnectionRefusedError(f"test guard: {address[0]} is off this machine; not connecting")


@pytest.fixture(name="fake_dns")
def fake_dns_fixture(monkeypatch) -> FakeResolver:
    resolver = FakeResolver()
    monkeypatch.setattr(socket, "getaddrinfo", resolver)
    return resolver


@pytest.fixture(name="loopback_only")
def loopback_only_fixture(monkeypatch) -> LoopbackGuard:
    guard = LoopbackGuard()

    def connect(sock, address):
        guard.check(sock, address)
        return _real_connect(sock, address)

    def connect_ex(sock, address):
        guard.check(sock, address)
        return _real_connect_ex(sock, address)

    monkeypatch.setattr(socket.socket, "connect", connect)
    monkeypatch.setattr(socket.socket, "connect_ex", connect_ex)
    return guard
