"""--proxy over loopback: through a real proxy server (pproxy, a subprocess: SOCKS5, SOCKS4,
HTTP CONNECT, with and without credentials) and a scripted one for what a real proxy will
not do on demand (each refusal code, a greeting in the reply's segment, silence).

pproxy shuts a tunnel whole when one side ends its half, so the batch runs here wait for
their answer (/expect) before stdin ends rather than racing the end of stream.
"""

from __future__ import annotations

import socket
import ssl
import threading
import time

import pytest
import trustme

from netrepl.errors import ConnectError
from netrepl.events import Connected, Received
from netrepl.proxy import ProxySettings
from netrepl.transport import Endpoint, Interrupted, open_transport
from tests.net.conftest import WAIT, EventTap, run_netrepl
from tests.peers import free_port
from tests.proxies import RealProxy, ScriptedProxy, real_proxy

USER = "alice:s%40cret"  # percent-encoded in the URL: the proxy is told s@cret
CREDENTIALS = "alice:s@cret"
METHOD_NONE = b"\x05\x00"  # SOCKS5: no authentication


@pytest.fixture(scope="module")
def socks5():
    with real_proxy("socks5") as proxy:
        yield proxy


@pytest.fixture(scope="module")
def socks5_auth():
    with real_proxy("socks5", CREDENTIALS) as proxy:
        yield proxy


@pytest.fixture(scope="module")
def socks4():
    with real_proxy("socks4") as proxy:
        yield proxy


@pytest.fixture(scope="module")
def http():
    with real_proxy("http") as proxy:
        yield proxy


@pytest.fixture(scope="module")
def http_auth():
    with real_proxy("http", CREDENTIALS) as proxy:
        yield proxy


@pytest.fixture
def scripted():
    proxies: list[ScriptedProxy] = []

    def make(*args, **kwargs) -> ScriptedProxy:
        proxy = ScriptedProxy(*args, **kwargs)
        proxies.append(proxy)
        return proxy

    yield make
    for proxy in proxies:
        proxy.stop()


def ping(target_port: int, url: str, *more: str, host: str = "127.0.0.1"):
    return run_netrepl(host, str(target_port), "--proxy", url, *more, stdin=b"PING\n/expect PONG\n")


# ---- through each real proxy


@pytest.mark.parametrize(
    ("fixture", "scheme", "credentials", "says"),
    [
        ("socks5", "socks5", None, "socks5 proxy"),
        ("socks5", "socks5h", None, "socks5 proxy"),
        ("socks5_auth", "socks5", USER, "socks5 proxy"),
        ("socks5_auth", "socks5h", USER, "socks5 proxy"),
        ("socks4", "socks4", None, "socks4 proxy"),
        ("http", "http", None, "http proxy"),
        ("http_auth", "http", USER, "http proxy"),
    ],
)
def test_batch_ping_through_each_proxy(request, redis_peer, fixture, scheme, credentials, says):
    proxy: RealProxy = request.getfixturevalue(fixture)
    result = ping(redis_peer.port, proxy.url(scheme, credentials))

    assert result.returncode == 0, result.stderr
    assert result.stdout == b"+PONG\n"
    first = result.stderr.decode().splitlines()[0]
    assert first.startswith(
        f"netrepl: connected to 127.0.0.1:{redis_peer.port} via {says} 127.0.0.1:{proxy.port}"
    )
    assert redis_peer.wait_for(b"PING\n")


def test_socks5h_and_http_let_the_proxy_resolve_the_name(socks5, http, redis_peer, scripted):
    # `localhost` through the real proxies, which look it up themselves...
    for url in (socks5.url("socks5h"), http.url("http")):
        result = ping(redis_peer.port, url, "-4", host="localhost")
        assert result.returncode == 0, result.stderr
        assert result.stdout == b"+PONG\n"
        assert f"connected to localhost:{redis_peer.port} via" in result.stderr.decode()
    # ...and on the wire the name, not an address, is what netrepl sends (socks5 sends the
    # address it looked up itself).
    for scheme, request in (
        ("socks5h", b"\x05\x01\x00\x03\x09localhost"),
        ("socks5", b"\x05\x01\x00\x01\x7f\x00\x00\x01"),
    ):
        proxy = scripted([3, 4 + 10 + 2 if scheme == "socks5h" else 10], [b"\x05\x00", None])
        run_netrepl(
            "-4", "localhost", "80", "--proxy", f"{scheme}://{proxy.address}",
            "--connect-timeout", "0.3",
        )  # fmt: skip
        assert request in proxy.received


def test_socks5_credentials_refused(socks5_auth, redis_peer):
    result = ping(redis_peer.port, socks5_auth.url("socks5", "alice:wrong"))
    assert result.returncode == 1
    assert result.stderr.decode() == (
        f"netrepl: cannot connect to 127.0.0.1:{redis_peer.port}: via socks5 proxy"
        f" 127.0.0.1:{socks5_auth.port}: authentication failed (the proxy hung up on our user"
        " name and password)\n"
    )


def test_socks5_without_the_credentials_it_wants(socks5_auth, redis_peer):
    result = ping(redis_peer.port, socks5_auth.url("socks5"))
    assert result.returncode == 1
    assert "without answering (does it want USER:PASSWORD@?)" in result.stderr.decode()


def test_http_credentials_refused_shows_the_status(http_auth, redis_peer):
    result = ping(redis_peer.port, http_auth.url("http", "alice:wrong"))
    assert result.returncode == 1
    assert result.stderr.decode() == (
        f"netrepl: cannot connect to 127.0.0.1:{redis_peer.port}: via http proxy"
        f" 127.0.0.1:{http_auth.port}: 407 Proxy Authentication Required\n"
    )


def test_the_proxy_down_is_named_as_the_hop_that_failed():
    port = free_port()
    result = ping(80, f"socks5://127.0.0.1:{port}")
    assert result.returncode == 1
    assert result.stderr.decode() == (
        f"netrepl: cannot connect to the socks5 proxy 127.0.0.1:{port}: connection refused\n"
    )


# ---- refusals a real proxy gives only for a real network's failures


@pytest.mark.parametrize(
    ("scheme", "expect", "answers", "says"),
    [
        ("socks5", [3, 10], [METHOD_NONE, b"\x05\x05\x00\x01" + bytes(6)],
         "the proxy says connection refused (reply 5)"),
        ("socks5", [3, 10], [METHOD_NONE, b"\x05\x04\x00\x01" + bytes(6)],
         "the proxy says host unreachable (reply 4)"),
        ("socks5", [4, 5], [b"\x05\x02", b"\x01\x01"],
         "authentication failed (user name or password refused)"),
        ("socks4", [9], [b"\x00\x5b" + bytes(6)],
         "the proxy says request rejected or failed (reply 91)"),
        ("http", [b"\r\n\r\n"], [b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n"],
         "502 Bad Gateway"),
        ("socks5", [3], [b"HTTP/1.1 400 Bad Request\r\n\r\n"],
         "not a SOCKS5 reply: it answers in HTTP (an http:// proxy?)"),
    ],
)  # fmt: skip
def test_each_refusal_says_which_hop_failed_and_why(scripted, scheme, expect, answers, says):
    proxy = scripted(expect, answers)
    credentials = "u:p@" if answers[0] == b"\x05\x02" else ""
    result = run_netrepl("127.0.0.1", "9", "--proxy", f"{scheme}://{credentials}{proxy.address}")
    assert result.returncode == 1
    label = scheme if scheme != "socks5h" else "socks5"
    assert result.stderr.decode() == (
        f"netrepl: cannot connect to 127.0.0.1:9: via {label} proxy {proxy.address}: {says}\n"
    )


def test_a_silent_proxy_times_out_with_the_connect_timeout(scripted):
    proxy = scripted([3], [None])
    started = time.monotonic()
    result = run_netrepl(
        "127.0.0.1", "9", "--proxy", f"socks5://{proxy.address}", "--connect-timeout", "0.5"
    )
    assert result.returncode == 1
    assert result.stderr.decode() == (
        f"netrepl: cannot connect to 127.0.0.1:9: via socks5 proxy {proxy.address}:"
        " no answer from the proxy (timed out after 0.5 s)\n"
    )
    assert time.monotonic() - started < WAIT


def test_ctrl_c_stops_a_proxy_handshake(scripted):
    proxy = scripted([3], [None])
    cancel = threading.Event()
    endpoint = Endpoint(
        host="127.0.0.1",
        port=9,
        connect_timeout=None,
        proxy=ProxySettings("socks5", "127.0.0.1", proxy.port),
    )
    errors: list[BaseException] = []

    def connect() -> None:
        try:
            open_transport(endpoint, EventTap(), iter(range(1, 100)), cancel)
        except ConnectError as error:
            errors.append(error)

    thread = threading.Thread(target=connect, daemon=True)
    thread.start()
    assert proxy.handshake_read.wait(WAIT)
    cancel.set()
    thread.join(WAIT)
    assert not thread.is_alive()
    assert isinstance(errors[0], Interrupted)
    assert str(errors[0]).endswith(f"via socks5 proxy {proxy.address}: interrupted")


# ---- the target's first bytes, arriving with the proxy's reply


@pytest.mark.parametrize(
    ("scheme", "expect", "answers"),
    [
        ("http", [b"\r\n\r\n"], [b"HTTP/1.1 200 Connection established\r\n\r\n220 ready\r\n"]),
        ("socks5", [3, 10], [b"\x05\x00", b"\x05\x00\x00\x01" + bytes(6) + b"220 ready\r\n"]),
        ("socks4a", [b"localhost\x00"], [b"\x00\x5a" + bytes(6) + b"220 ready\r\n"]),
    ],
)
def test_a_greeting_in_the_replys_segment_is_the_first_received(scripted, scheme, expect, answers):
    proxy = scripted(expect, answers)
    result = run_netrepl(
        "localhost", "25", "-4", "--proxy", f"{scheme}://{proxy.address}",
        stdin=b"/expect ready\nHELO x\n/expect HELO\n",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout == b"220 ready\nHELO x\n"


# ---- TLS through the proxy checks the target's name


@pytest.fixture(scope="module")
def ca():
    return trustme.CA()


class TlsTarget:
    """A TLS server on 127.0.0.1 with a certificate for `name` only; answers PING with PONG."""

    def __init__(self, ca: trustme.CA, name: str) -> None:
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ca.issue_cert(name).configure_cert(self.context)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        try:
            sock, _ = self.listener.accept()
            with self.context.wrap_socket(sock, server_side=True) as tls:
                tls.settimeout(WAIT)
                if tls.recv(100).startswith(b"PING"):
                    tls.sendall(b"+PONG\r\n")
                tls.recv(100)
        except (OSError, ssl.SSLError):
            pass  # a client that refused our certificate

    def close(self) -> None:
        self.listener.close()


@pytest.mark.parametrize(("certified", "works"), [("localhost", True), ("127.0.0.1", False)])
def test_tls_through_the_proxy_checks_the_targets_name(socks5, ca, tmp_path, certified, works):
    # The proxy is 127.0.0.1; the target is `localhost` (resolved by the proxy). A
    # certificate for the proxy's name only must not do for the target.
    target = TlsTarget(ca, certified)
    cafile = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(cafile))
    try:
        result = ping(
            target.port, socks5.url("socks5h"), "--tls", "--cafile", str(cafile), host="localhost"
        )
    finally:
        target.close()
    if works:
        assert result.returncode == 0, result.stderr
        assert result.stdout == b"+PONG\n"
        assert b"verified" in result.stderr
    else:
        assert result.returncode == 1
        assert f"TLS handshake with localhost:{target.port} failed" in result.stderr.decode()
        assert "Hostname mismatch" in result.stderr.decode()


# ---- /connect, --reconnect and a relay's upstream go through it too


def test_slash_connect_goes_through_the_proxy(socks5, redis_peer, make_server):
    from tests.net.conftest import redis_script

    other = make_server(redis_script)
    result = run_netrepl(
        "127.0.0.1", str(redis_peer.port), "--proxy", socks5.url("socks5"),
        stdin=f"/connect 127.0.0.1 {other.port}\nPING\n/expect PONG\n".encode(),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout == b"+PONG\n"
    assert (
        f"connected to 127.0.0.1:{other.port} via socks5 proxy 127.0.0.1:{socks5.port}"
        in result.stderr.decode()
    )
    assert other.wait_for(b"PING\n")


def test_reconnect_goes_through_the_proxy(socks5, make_server):
    def greet_and_hang_up(server, sock):
        sock.sendall(b"hello\n")
        sock.close()

    target = make_server(greet_and_hang_up)
    tap = EventTap()
    endpoint = Endpoint(
        host="127.0.0.1",
        port=target.port,
        reconnect=0.1,
        proxy=ProxySettings("socks5", "127.0.0.1", socks5.port),
    )
    transport = open_transport(endpoint, tap, iter(range(1, 100)))
    try:
        tap.wait_until(lambda: len(tap.of_type(Connected)) >= 2, "a reconnect")
        tap.wait_received(12)
    finally:
        transport.close()
    assert all(
        event.via == f"socks5 proxy 127.0.0.1:{socks5.port}" for event in tap.of_type(Connected)
    )
    assert target.accepted >= 2
    assert b"".join(e.data for e in tap.of_type(Received)).startswith(b"hello\nhello\n")


def test_a_relays_upstream_goes_through_the_proxy(http, redis_peer, start_netrepl):
    netrepl = start_netrepl(
        "-l",
        "127.0.0.1",
        "0",
        "--relay",
        f"127.0.0.1:{redis_peer.port}",
        "--proxy",
        http.url("http"),
    )
    port = int(
        netrepl.wait_stderr_match(
            rb"relaying 127\.0\.0\.1:(\d+) \(TCP\) to 127\.0\.0\.1:\d+ via http proxy"
        ).group(1)
    )
    with socket.create_connection(("127.0.0.1", port), timeout=WAIT) as client:
        netrepl.wait_stderr_match(
            rf"#1 upstream 127\.0\.0\.1:{redis_peer.port} via http proxy 127\.0\.0\.1:{http.port}"
            r" connected".encode()
        )
        client.sendall(b"PING\n")
        reply = b""
        while b"+PONG\r\n" not in reply:
            data = client.recv(100)
            assert data, reply
            reply += data
    netrepl.kill()


def test_tls_options_and_the_socks4_ipv4_rule_are_checked_before_connecting():
    # socks4 carries IPv4 only: an IPv6 target is refused with a hint, without a connection.
    result = run_netrepl("::1", "80", "--proxy", f"socks4://127.0.0.1:{free_port()}")
    assert result.returncode == 1
    assert "(socks4a:// lets the proxy look it up)" in result.stderr.decode()


def test_bytes_after_the_proxys_reply_reach_the_tls_handshake(scripted):
    # A plaintext banner right behind the proxy's 200 on a --tls connection: the handshake
    # reads it (and says the target does not speak TLS) instead of waiting past it for a
    # server answer that already came.
    proxy = scripted([b"\r\n\r\n"], [b"HTTP/1.1 200 OK\r\n\r\n220 ready\r\n"], echo=False)
    result = run_netrepl(
        "127.0.0.1", "25", "--tls", "--proxy", f"http://{proxy.address}", "--connect-timeout", "5"
    )
    assert result.returncode == 1
    assert "TLS handshake with 127.0.0.1:25 failed" in result.stderr.decode()
    assert "does not seem to speak TLS" in result.stderr.decode()
