"""The SSRF guard: URLs read as the client reads them, addresses checked, connections pinned.

Decisions are tested on parsed URLs and a scripted resolver (tests/fake_network.py);
connections go only to listeners on 127.0.0.1, and a guard refuses any other destination
before a packet is sent.
"""

import http.server
import ipaddress
import shutil
import ssl
import subprocess
import threading

import pytest
import requests

from hitl.net import (
    OutboundRefused,
    address_refusal,
    outbound_resolve,
    outbound_url_parse,
    pinned_session,
)


class Listener:
    """An HTTP(S) server on 127.0.0.1 recording the Host header (and TLS server name) of each request."""

    def __init__(self, *, tls: ssl.SSLContext | None = None, status: int = 204, headers: dict | None = None):
        self.hosts: list[str] = []
        self.server_names: list[str | None] = []
        listener = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def _answer(self):
                length = int(self.headers.get("Content-Length") or 0)
                self.rfile.read(length)
                listener.hosts.append(self.headers["Host"])
                self.send_response(status)
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.send_header("Content-Length", "0")
                self.end_headers()

            do_GET = do_POST = _answer

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        if tls is not None:
            tls.sni_callback = lambda sock, name, context: self.server_names.append(name)
            self.server.socket = tls.wrap_socket(self.server.socket, server_side=True)
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def listener():
    server = Listener()
    yield server
    server.close()


# URLs as the client reads them ------------------------------------------------


@pytest.mark.parametrize(
    ("url", "message"),
    [
        # urllib.parse reads host 1.1.1.1, urllib3 (what requests connects with) 127.0.0.1.
        ("http://127.0.0.1:8799\\@1.1.1.1/x", "must not contain a backslash"),
        ("http://example.com\\x/", "must not contain a backslash"),
        ("http://user:pass@example.com/", "must not contain user-info"),
        ("http://user@example.com/", "must not contain user-info"),
        ("http://@example.com/", "must not contain user-info"),
        ("http://a..b/", "invalid host name: a..b"),
        ("http://-x.example/", "invalid host name"),
        ("http://" + "a" * 64 + ".example/", "invalid host name"),
        ("http://2130706433/", "four decimal numbers"),  # 127.0.0.1 to inet_aton and browsers
        ("http://0x7f.1/", "four decimal numbers"),
        ("http://127.1/", "four decimal numbers"),
        ("http://[::1/", "not valid"),
        ("http://[zz::1]/", "not valid"),
        ("http://example.com:99999/", "not valid"),
        ("http://example.com:0/", "invalid port"),
        ("http://exa mple.com/", "spaces or control characters"),
        ("http://example.com/\r\nX: y", "spaces or control characters"),
        ("http:///path", "has no host"),
        ("ftp://example.com/", "http or https"),
        ("file:///etc/passwd", "http or https"),
        ("example.com/x", "http or https"),
        ("", "http or https"),
    ],
)
def test_urls_a_client_could_read_two_ways_are_refused(url, message):
    with pytest.raises(OutboundRefused, match=message):
        outbound_url_parse(url)


@pytest.mark.parametrize(
    ("url", "origin"),
    [
        ("https://api.openai.com/v1", ("https", "api.openai.com", 443)),
        ("HTTP://Hooks.Example.COM:8080/x?y#z", ("http", "hooks.example.com", 8080)),
        ("http://ollama:11434/v1", ("http", "ollama", 11434)),
        ("http://127.0.0.1/", ("http", "127.0.0.1", 80)),
        ("http://[2001:db8::1]:81/", ("http", "2001:db8::1", 81)),
        ("https://münchen.example/", ("https", "xn--mnchen-3ya.example", 443)),
        ("https://example.com./", ("https", "example.com.", 443)),
        ("http://svc_a.internal/", ("http", "svc_a.internal", 80)),
    ],
)
def test_well_formed_urls_give_the_origin_the_client_will_use(url, origin):
    assert outbound_url_parse(url).origin == origin


# Addresses -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "10.1.2.3",
        "172.16.0.1",
        "192.168.1.1",
        "169.254.169.254",  # cloud metadata
        "100.64.0.1",  # shared address space (some clouds' metadata, carrier NAT)
        "100.127.255.254",
        "0.0.0.0",  # noqa: S104 (an address to refuse, not one to bind)
        "0.1.2.3",
        "192.0.2.1",  # documentation
        "198.18.0.1",  # benchmarking
        "240.0.0.1",
        "255.255.255.255",
        "224.0.1.1",  # multicast that ipaddress calls global
        "::1",
        "::",
        "fe80::1",
        "fc00::1",
        "fd00:ec2::254",  # AWS metadata over IPv6
        "fec0::1",  # site-local
        "ff0e::1",  # global-scope multicast
        "::ffff:127.0.0.1",  # IPv4-mapped: the mapped address decides
        "::ffff:169.254.169.254",
        "::7f00:1",  # IPv4-compatible (deprecated)
        "2002:7f00:1::",  # 6to4 of 127.0.0.1
        "2002:808:808::",  # 6to4, whatever it embeds
        "2001::1",  # Teredo
        "64:ff9b::7f00:1",  # NAT64 of 127.0.0.1
        "64:ff9b::a9fe:a9fe",  # NAT64 of 169.254.169.254
        "64:ff9b:1::1",  # local-use NAT64
        "2001:db8::1",  # documentation
    ],
)
def test_addresses_that_are_not_globally_routable_are_refused(address):
    assert address_refusal(ipaddress.ip_address(address)) != ""


@pytest.mark.parametrize(
    "address", ["8.8.8.8", "1.1.1.1", "2606:4700:4700::1111", "::ffff:8.8.8.8", "64:ff9b::808:808"]
)
def test_globally_routable_addresses_are_allowed(address):
    assert address_refusal(ipaddress.ip_address(address)) == ""


# Resolution ----------------------------------------------------------------------


def test_a_name_is_refused_when_any_of_its_addresses_is(fake_dns):
    fake_dns.script("hook.test", ["8.8.8.8", "100.64.0.1"])

    with pytest.raises(OutboundRefused, match=r"non-public address 100\.64\.0\.1"):
        outbound_resolve("https://hook.test/x", allow_private=False)


def test_a_name_whose_addresses_are_all_public_resolves_to_them(fake_dns):
    fake_dns.script("hook.test", ["8.8.8.8", "2606:4700:4700::1111"])

    destination = outbound_resolve("https://hook.test/x", allow_private=False)

    assert destination.addresses == ("8.8.8.8", "2606:4700:4700::1111")
    assert destination.url.origin == ("https", "hook.test", 443)


def test_an_unknown_name_is_refused_not_raised(fake_dns):
    with pytest.raises(OutboundRefused, match=r"cannot resolve nowhere\.test"):
        outbound_resolve("http://nowhere.test/", allow_private=True)


def test_a_name_the_idna_codec_refuses_is_refused_not_raised(monkeypatch):
    def refusing(*args, **kwargs):
        raise UnicodeError("encoding with 'idna' codec failed (UnicodeError: label empty or too long)")

    monkeypatch.setattr("socket.getaddrinfo", refusing)

    with pytest.raises(OutboundRefused, match="cannot resolve"):
        outbound_resolve("http://hook.test/", allow_private=False)


def test_a_url_saved_under_older_rules_is_refused_before_any_lookup(fake_dns):
    with pytest.raises(OutboundRefused, match="refused: the URL must not contain a backslash"):
        outbound_resolve("http://127.0.0.1:8799\\@1.1.1.1/x", allow_private=True)
    with pytest.raises(OutboundRefused, match="refused: the URL has an invalid host name"):
        outbound_resolve("http://a..b/", allow_private=False)
    assert fake_dns.calls == []


def test_private_addresses_pass_when_the_operator_allows_them(fake_dns):
    fake_dns.script("hook.test", ["100.64.0.1", "10.0.0.1"])

    assert outbound_resolve("http://hook.test/", allow_private=True).addresses == ("100.64.0.1", "10.0.0.1")


# Pinning -------------------------------------------------------------------------


def test_the_connection_goes_to_the_address_checked_not_to_a_later_answer(fake_dns, loopback_only, listener):
    # The first answer is checked; a rebinding resolver would answer differently on the next lookup.
    fake_dns.script("hook.test", ["127.0.0.1"], ["127.0.0.2"])
    url = f"http://hook.test:{listener.port}/hook"

    with pinned_session(url, allow_private=True) as session:
        first = session.post(url, data=b"{}", timeout=5, allow_redirects=False)
        second = session.post(url, data=b"{}", timeout=5, allow_redirects=False)

    assert (first.status_code, second.status_code) == (204, 204)
    assert fake_dns.calls == ["hook.test"]  # one lookup for the session, none at connection time
    assert listener.hosts == [f"hook.test:{listener.port}"] * 2  # the Host header keeps the name
    assert {destination[0] for destination in loopback_only.destinations} == {"127.0.0.1"}


def test_a_public_answer_is_what_gets_connected_to_even_if_the_name_then_rebinds_to_loopback(fake_dns, loopback_only):
    # 8.8.8.8 passes the check; the guard stops the connection to it before any packet is sent,
    # which shows where the client went: to the checked address, never to the rebinding answer.
    fake_dns.script("hook.test", ["8.8.8.8"], ["127.0.0.1"])

    with (
        pinned_session("http://hook.test:8080/x", allow_private=False) as session,
        pytest.raises(requests.ConnectionError),
    ):
        session.post("http://hook.test:8080/x", timeout=2, allow_redirects=False)

    assert loopback_only.destinations == [("8.8.8.8", 8080)]
    assert fake_dns.calls == ["hook.test"]


def test_every_checked_address_is_tried_in_order(fake_dns, loopback_only, listener):
    fake_dns.script("hook.test", ["127.0.0.2", "127.0.0.1"])  # nothing listens on 127.0.0.2
    url = f"http://hook.test:{listener.port}/"

    with pinned_session(url, allow_private=True) as session:
        assert session.get(url, timeout=5, allow_redirects=False).status_code == 204

    assert [destination[0] for destination in loopback_only.destinations] == ["127.0.0.2", "127.0.0.1"]


def test_the_session_refuses_another_origin(fake_dns, loopback_only, listener):
    fake_dns.script("hook.test", ["127.0.0.1"])

    with pinned_session(f"http://hook.test:{listener.port}/", allow_private=True) as session:
        for other in (f"http://127.0.0.1:{listener.port}/", f"http://hook.test:{listener.port + 1}/"):
            with pytest.raises(OutboundRefused, match="not the vetted destination"):
                session.get(other, timeout=5)

    assert listener.hosts == [] and loopback_only.destinations == []


def test_a_redirect_to_another_origin_is_refused_even_if_followed(fake_dns, loopback_only, listener):
    redirecting = Listener(status=302, headers={"Location": f"http://127.0.0.1:{listener.port}/internal"})
    try:
        fake_dns.script("hook.test", ["127.0.0.1"])
        url = f"http://hook.test:{redirecting.port}/"

        with pinned_session(url, allow_private=True) as session, pytest.raises(OutboundRefused):
            session.get(url, timeout=5, allow_redirects=True)

        assert len(redirecting.hosts) == 1 and listener.hosts == []
    finally:
        redirecting.close()


def test_proxy_settings_in_the_environment_are_ignored(fake_dns, loopback_only, listener, monkeypatch):
    proxy = Listener()
    try:
        for name in ("HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "ALL_PROXY"):
            monkeypatch.setenv(name, f"http://127.0.0.1:{proxy.port}")
        fake_dns.script("hook.test", ["127.0.0.1"])
        url = f"http://hook.test:{listener.port}/"

        with pinned_session(url, allow_private=True) as session:
            assert session.get(url, timeout=5).status_code == 204

        assert proxy.hosts == [] and len(listener.hosts) == 1
    finally:
        proxy.close()


# TLS still verifies the name ----------------------------------------------------


@pytest.fixture
def certificate(tmp_path):
    """A self-signed certificate for hook.test (made with the openssl command)."""
    if shutil.which("openssl") is None:
        pytest.skip("needs the openssl command")
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(
        [
            *("openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"),
            *("-keyout", str(key), "-out", str(cert), "-days", "1", "-subj", "/CN=hook.test"),
            *("-addext", "subjectAltName=DNS:hook.test"),
        ],
        check=True,
        capture_output=True,
        timeout=30,
    )
    return key, cert


@pytest.fixture
def tls_listener(certificate):
    key, cert = certificate
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server = Listener(tls=context)
    yield server
    server.close()


def test_tls_sends_and_verifies_the_name_while_connecting_to_the_pinned_address(
    fake_dns, loopback_only, certificate, tls_listener
):
    fake_dns.script("hook.test", ["127.0.0.1"])
    url = f"https://hook.test:{tls_listener.port}/hook"

    with pinned_session(url, allow_private=True) as session:
        response = session.post(url, data=b"{}", timeout=5, allow_redirects=False, verify=str(certificate[1]))

    assert response.status_code == 204
    assert tls_listener.server_names == ["hook.test"]  # SNI carries the name, not the address
    assert tls_listener.hosts == [f"hook.test:{tls_listener.port}"]
    assert loopback_only.destinations == [("127.0.0.1", tls_listener.port)]


def test_a_certificate_for_another_name_is_refused(fake_dns, loopback_only, certificate, tls_listener):
    fake_dns.script("other.test", ["127.0.0.1"])  # the same listener, reached under a name its certificate lacks
    url = f"https://other.test:{tls_listener.port}/hook"

    with pinned_session(url, allow_private=True) as session, pytest.raises(requests.exceptions.SSLError):
        session.post(url, data=b"{}", timeout=5, allow_redirects=False, verify=str(certificate[1]))

    assert tls_listener.hosts == []
