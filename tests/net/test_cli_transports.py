"""Batch mode over every transport: the real program with piped stdin against plain loopback
sockets and Python's own ssl module (never netrepl on the other side).

Covered: a TCP listener (--once), UDP client and listener (also --view raw), TLS client
(--cafile, verify failure, --insecure, client certificates, ALPN, SNI) and TLS listener, unix
client and listener, -4/-6, --source, --reconnect, and the usage errors between options.
"""

from __future__ import annotations

import re
import socket
import ssl
import threading
from dataclasses import dataclass
from pathlib import Path

import pytest
import trustme
from cryptography import x509

from tests.net.conftest import WAIT, run_netrepl
from tests.peers import free_port, has_ipv6_loopback

LONG_LINGER = ("--linger", "10")
"""For runs that end when the peer closes: the linger must never be what ends them."""
SHORT_LINGER = ("--linger", "0.2")
"""For runs whose data has all been checked before stdin is closed."""


def stderr_lines(result) -> list[str]:
    return result.stderr.decode().splitlines()


# ---- certificates and a TLS peer from Python's ssl module -------------------------------------


@dataclass(frozen=True)
class Certs:
    ca: str
    server_cert: str
    server_key: str
    client_cert: str
    client_key: str


def make_certs(folder: Path) -> Certs:
    """A trustme CA, a server certificate for localhost/127.0.0.1/::1 and a client one."""
    ca = trustme.CA()
    server = ca.issue_cert("localhost", "127.0.0.1", "::1")
    client = ca.issue_cert("client.example.org")

    def write(name: str, blob: trustme.Blob) -> str:
        path = folder / name
        blob.write_to_path(str(path))
        return str(path)

    return Certs(
        ca=write("ca.pem", ca.cert_pem),
        server_cert=write("server-cert.pem", server.cert_chain_pems[0]),
        server_key=write("server-key.pem", server.private_key_pem),
        client_cert=write("client-cert.pem", client.cert_chain_pems[0]),
        client_key=write("client-key.pem", client.private_key_pem),
    )


def not_after(cert_path: str) -> str:
    """The certificate's expiry as netrepl shows it (`3000-01-01 00:00 UTC`), read with
    cryptography rather than with anything netrepl uses."""
    cert = x509.load_pem_x509_certificate(Path(cert_path).read_bytes())
    return cert.not_valid_after_utc.strftime("%Y-%m-%d %H:%M UTC")


@pytest.fixture(scope="module")
def certs(tmp_path_factory) -> Certs:
    return make_certs(tmp_path_factory.mktemp("certs"))


class TlsPeer:
    """A one-client TLS server on 127.0.0.1 from Python's ssl module.

    It sends `greeting`, answers every line with `echo: LINE`, and after `lines` lines (if
    given) does a full TLS shutdown; otherwise it runs until the client closes. It records
    what it read, the SNI name it was sent and the client's certificate.
    """

    def __init__(
        self,
        certs: Certs,
        *,
        greeting: bytes = b"",
        lines: int | None = None,
        client_ca: str | None = None,
        alpn: tuple[str, ...] = (),
    ) -> None:
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.context.load_cert_chain(certs.server_cert, certs.server_key)
        if client_ca is not None:
            self.context.verify_mode = ssl.CERT_REQUIRED
            self.context.load_verify_locations(client_ca)
        if alpn:
            self.context.set_alpn_protocols(list(alpn))
        self.context.sni_callback = self._sni
        self.greeting = greeting
        self.lines = lines
        self.sni: str | None = None
        self.client_cert: dict | None = None  # type: ignore[type-arg]
        self.received = bytearray()
        self.error: BaseException | None = None
        self._done = threading.Event()
        self._changed = threading.Condition()
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(WAIT)
        self.port = self.listener.getsockname()[1]
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def __enter__(self) -> TlsPeer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.listener.close()
        self._thread.join(WAIT)

    def _sni(self, _sock: ssl.SSLObject, name: str | None, _context: ssl.SSLContext) -> None:
        self.sni = name

    def _serve(self) -> None:
        try:
            sock, _ = self.listener.accept()
            sock.settimeout(WAIT)
            with self.context.wrap_socket(sock, server_side=True) as tls:
                self.client_cert = tls.getpeercert()
                if self.greeting:
                    tls.sendall(self.greeting)
                self._answer(tls)
        except BaseException as error:  # the test reads it through wait_done()
            self.error = error
        finally:
            self._done.set()
            with self._changed:
                self._changed.notify_all()

    def _answer(self, tls: ssl.SSLSocket) -> None:
        answered = 0
        pending = bytearray()
        for _ in range(10_000):  # bounded: a test never sends this many chunks
            data = tls.recv(65536)
            if not data:
                return  # the client's close_notify (or end of stream)
            with self._changed:
                self.received += data
                self._changed.notify_all()
            pending += data
            while b"\n" in pending:
                line, _, rest = bytes(pending).partition(b"\n")
                pending[:] = rest
                tls.sendall(b"echo: " + line + b"\n")
                answered += 1
                if self.lines is not None and answered >= self.lines:
                    tls.settimeout(2.0)
                    tls.unwrap()  # close_notify, and wait for the client's
                    return

    def wait_for(self, expected: bytes, timeout: float = WAIT) -> bytes:
        with self._changed:
            if not self._changed.wait_for(
                lambda: expected in self.received or self._done.is_set(), timeout
            ):
                raise AssertionError(f"the TLS peer never read {expected!r}: {self.received!r}")
            return bytes(self.received)

    def wait_done(self, timeout: float = WAIT) -> BaseException | None:
        """Wait until the server thread has ended; return the error it ended with, if any."""
        if not self._done.wait(timeout):
            raise AssertionError("the TLS peer never finished")
        return self.error


# ---- netrepl with pipes, waited on -------------------------------------------------------------


@pytest.fixture
def netrepl(start_netrepl):
    """netrepl(*args) -> a started RunningNetrepl; killed, pipes closed, at teardown."""
    return start_netrepl


@pytest.fixture
def sockets():
    """Tracks plain sockets made by a test (each with a timeout); closes them at teardown."""
    opened: list[socket.socket] = []

    def track(sock: socket.socket) -> socket.socket:
        sock.settimeout(WAIT)
        opened.append(sock)
        return sock

    yield track
    for sock in opened:
        sock.close()


def udp_socket(track, host: str = "127.0.0.1") -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = track(socket.socket(family, socket.SOCK_DGRAM))
    sock.bind((host, 0))
    return sock


def recv_until(sock: socket.socket, expected: bytes) -> bytes:
    """Read until `expected` has arrived (or end of stream); bounded by the socket timeout."""
    data = bytearray()
    for _ in range(10_000):
        if expected in data:
            break
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    return bytes(data)


# ---- a TCP listener ----------------------------------------------------------------------------


def test_listen_once_feeds_stdin_to_the_client_and_prints_what_it_sends(netrepl, sockets):
    run = netrepl("-l", "127.0.0.1", "0", "--once")
    # Written before anyone connects: batch listen mode holds the lines for the first client.
    run.write(b"one\ntwo\n")
    run.close_stdin()
    port = run.listening_port("TCP")

    client = sockets(socket.create_connection(("127.0.0.1", port), timeout=WAIT))
    client_port = client.getsockname()[1]
    client.sendall(b"from the client\n")
    assert recv_until(client, b"two\n") == b"one\ntwo\n"
    client.close()  # --once: netrepl leaves when its first client does

    result = run.finish()
    assert result.returncode == 0, result.stderr
    assert result.stdout == b"from the client\n"
    # The end of stdin half-closes, unless the client has closed first: either is right.
    half_closed = f"netrepl: sent end of stream to #1 127.0.0.1:{client_port}: half-closed"
    lines = [line for line in stderr_lines(result) if not line.startswith(half_closed)]
    assert lines == [
        f"netrepl: listening on 127.0.0.1:{port} (TCP)",
        f"netrepl: #1 connected from 127.0.0.1:{client_port}",
        f"netrepl: #1 127.0.0.1:{client_port} connection closed by peer"
        " (16 bytes received, 8 sent)",
        f"netrepl: stopped listening on 127.0.0.1:{port}",
    ]


def test_max_clients_refuses_the_next_client_and_keeps_the_first(netrepl, sockets):
    run = netrepl("-l", "127.0.0.1", "0", "--max-clients", "1", *SHORT_LINGER)
    port = run.listening_port("TCP")
    first = sockets(socket.create_connection(("127.0.0.1", port), timeout=WAIT))
    run.wait_stderr(b"#1 connected from 127.0.0.1:%d\n" % first.getsockname()[1])

    refused = sockets(socket.create_connection(("127.0.0.1", port), timeout=WAIT))
    assert refused.recv(100) == b"", "the client beyond --max-clients is closed at once"
    run.wait_stderr(
        b"refused 127.0.0.1:%d: already 1 client" % refused.getsockname()[1],
    )
    run.write(b"still here\n")
    assert recv_until(first, b"\n") == b"still here\n"
    first.close()
    result = run.finish()
    assert result.returncode == 0, result.stderr


# ---- UDP ---------------------------------------------------------------------------------------


def test_udp_client_sends_each_stdin_line_as_one_datagram(netrepl, sockets):
    server = udp_socket(sockets)
    port = server.getsockname()[1]
    run = netrepl("-u", "127.0.0.1", str(port), *SHORT_LINGER)
    run.write(b"one\ntwo words\n\nlast\n")

    datagrams = [server.recvfrom(65536) for _ in range(4)]
    assert [data for data, _ in datagrams] == [b"one\n", b"two words\n", b"\n", b"last\n"]
    sender = datagrams[0][1]
    assert {address for _, address in datagrams} == {sender}
    run.wait_stderr_match(
        rb"sending datagrams to 127\.0\.0\.1:%d from 127\.0\.0\.1:%d\n" % (port, sender[1])
    )

    server.sendto(b"pong", sender)
    run.wait_stdout(b"pong\n")
    result = run.finish()
    assert result.returncode == 0, result.stderr
    assert result.stdout.decode() == f"── ← 127.0.0.1:{port} · 4 bytes\npong\n"


def test_udp_listener_replies_to_the_sender(netrepl, sockets):
    run = netrepl("-u", "-l", "127.0.0.1", "0", *SHORT_LINGER)
    run.write(b"reply one\nreply two\n")  # held until the first datagram names a sender
    port = run.listening_port("UDP")

    client = udp_socket(sockets)
    client_port = client.getsockname()[1]
    client.sendto(b"hello udp", ("127.0.0.1", port))
    assert client.recvfrom(100) == (b"reply one\n", ("127.0.0.1", port))
    assert client.recvfrom(100) == (b"reply two\n", ("127.0.0.1", port))
    run.wait_stdout(b"hello udp\n")

    result = run.finish()
    assert result.returncode == 0, result.stderr
    assert result.stdout.decode() == f"── ← #1 127.0.0.1:{client_port} · 9 bytes\nhello udp\n"
    assert f"netrepl: #1 datagrams from 127.0.0.1:{client_port}" in stderr_lines(result)


def test_udp_listener_to_an_address_in_batch(netrepl, sockets):
    other = udp_socket(sockets)
    run = netrepl("-u", "-l", "127.0.0.1", "0", *SHORT_LINGER)
    port = run.listening_port("UDP")
    client = udp_socket(sockets)
    client.sendto(b"first", ("127.0.0.1", port))
    run.wait_stdout(b"first\n")

    run.write(b"/to 127.0.0.1:%d\nto the other\n" % other.getsockname()[1])
    assert other.recvfrom(100) == (b"to the other\n", ("127.0.0.1", port))
    result = run.finish()
    assert result.returncode == 0, result.stderr


def test_udp_listener_raw_view_writes_datagram_bytes_unchanged(netrepl, sockets):
    datagrams = [
        bytes(range(256)),
        b"\x1b[2J\x1b]0;title\x07 no newline",
        b"",
        b"\xff\xfe\r\n\xe4\xb8",  # not UTF-8, and half a character at the end
        "中文\n".encode(),
    ]
    run = netrepl("-u", "-l", "127.0.0.1", "0", "--view", "raw", *SHORT_LINGER)
    port = run.listening_port("UDP")
    client = udp_socket(sockets)
    for data in datagrams:
        client.sendto(data, ("127.0.0.1", port))
    expected = b"".join(datagrams)
    run.wait_stdout(expected)

    result = run.finish()
    assert result.returncode == 0, result.stderr
    assert result.stdout == expected, "no label lines, no escapes, no decoding in the raw view"


@pytest.mark.parametrize("flag", ["--once", "--max-clients=2"])
def test_udp_listener_refuses_client_counting_options(flag):
    result = run_netrepl("-u", "-l", "127.0.0.1", "0", flag)
    assert result.returncode == 2
    [line] = result.stderr.decode().splitlines()
    assert line.startswith("netrepl: ") and flag.split("=")[0] in line and "UDP" in line


# ---- TLS client --------------------------------------------------------------------------------


def test_tls_client_with_cafile_data_both_ways(certs):
    with TlsPeer(certs, greeting=b"hello over tls\n", lines=1) as peer:
        result = run_netrepl(
            "--tls", "--cafile", certs.ca, "127.0.0.1", str(peer.port), *LONG_LINGER,
            stdin=b"ping\n",
        )  # fmt: skip
        assert peer.wait_done() is None, peer.error
    assert result.returncode == 0, result.stderr
    assert peer.received == b"ping\n"
    assert result.stdout == b"hello over tls\necho: ping\n"
    lines = stderr_lines(result)
    assert re.fullmatch(
        rf"netrepl: connected to 127\.0\.0\.1:{peer.port} from 127\.0\.0\.1:\d+", lines[0]
    ), lines
    assert re.fullmatch(
        r"netrepl: (?:TLS )?TLSv1\.[23] \S+; certificate .*OU=Testing cert.*, expires "
        + re.escape(not_after(certs.server_cert))
        + r" \([\d,]+ days left\); verified",
        lines[1],
    ), lines
    # The end of stdin half-closes (close_notify first); the peer has answered and closes.
    assert lines[2] == (
        f"netrepl: sent end of stream to 127.0.0.1:{peer.port}: half-closed, still reading"
        " until it closes"
    ), lines
    assert re.fullmatch(
        r"netrepl: connection closed by peer \(TLS close_notify\) \(26 bytes received, 5 sent\)",
        lines[3],
    ), lines
    assert len(lines) == 4, lines
    assert peer.sni is None, "an IP address is never sent as SNI (RFC 6066)"


def test_tls_verify_failure_exits_1_with_one_line(certs):
    with TlsPeer(certs) as peer:
        result = run_netrepl("--tls", "127.0.0.1", str(peer.port), stdin=b"never sent\n")
        assert isinstance(peer.wait_done(), ssl.SSLError), "the server saw a refused handshake"
    assert result.returncode == 1
    assert result.stdout == b""
    lines = stderr_lines(result)
    assert len(lines) == 1, lines
    assert lines[0].startswith(f"netrepl: TLS handshake with 127.0.0.1:{peer.port} failed: ")
    assert "certificate verify failed" in lines[0]
    assert peer.received == b""


def test_tls_hostname_mismatch_exits_1(certs):
    with TlsPeer(certs) as peer:
        result = run_netrepl(
            "--tls", "--cafile", certs.ca, "--sni", "other.example.org",
            "127.0.0.1", str(peer.port), stdin=b"never sent\n",
        )  # fmt: skip
        peer.wait_done()
    assert result.returncode == 1
    lines = stderr_lines(result)
    assert len(lines) == 1 and "certificate verify failed" in lines[0], lines
    assert "other.example.org" in lines[0], lines


def test_tls_insecure_connects_and_warns(certs):
    with TlsPeer(certs, greeting=b"unverified\n", lines=1) as peer:
        result = run_netrepl(
            "--tls", "--insecure", "127.0.0.1", str(peer.port), *LONG_LINGER, stdin=b"ping\n"
        )
        assert peer.wait_done() is None, peer.error
    assert result.returncode == 0, result.stderr
    assert result.stdout == b"unverified\necho: ping\n"
    lines = stderr_lines(result)
    assert any(line.endswith("; NOT verified") for line in lines), lines
    warnings = [line for line in lines if "warning" in line]
    assert len(warnings) == 1, lines
    assert warnings[0].startswith("netrepl: warning: --insecure")
    assert "not verified" in warnings[0]


def test_tls_client_certificate_alpn_and_sni(certs):
    with TlsPeer(certs, lines=1, client_ca=certs.ca, alpn=("http/1.1",)) as peer:
        result = run_netrepl(
            "--tls", "--cafile", certs.ca, "--sni", "localhost", "--alpn", "h2,http/1.1",
            "--cert", certs.client_cert, "--key", certs.client_key,
            "127.0.0.1", str(peer.port), *LONG_LINGER, stdin=b"with a certificate\n",
        )  # fmt: skip
        assert peer.wait_done() is None, peer.error
    assert result.returncode == 0, result.stderr
    assert result.stdout == b"echo: with a certificate\n"
    assert peer.sni == "localhost"
    assert peer.client_cert is not None
    assert ("DNS", "client.example.org") in peer.client_cert["subjectAltName"]
    status = next(line for line in stderr_lines(result) if "TLSv1." in line)
    assert "; ALPN http/1.1;" in status, status


# ---- TLS listener ------------------------------------------------------------------------------


def test_tls_listener_with_a_python_ssl_client(netrepl, certs, sockets):
    run = netrepl(
        "-l", "127.0.0.1", "0", "--tls", "--cert", certs.server_cert, "--key", certs.server_key,
        "--once",
    )  # fmt: skip
    run.write(b"from the netrepl server\n")
    run.close_stdin()
    port = run.listening_port("TCP+TLS")

    context = ssl.create_default_context(cafile=certs.ca)
    plain = sockets(socket.create_connection(("127.0.0.1", port), timeout=WAIT))
    with context.wrap_socket(plain, server_hostname="localhost") as tls:
        client_port = tls.getsockname()[1]
        tls.sendall(b"from the python client\n")
        assert recv_until(tls, b"\n") == b"from the netrepl server\n"
        tls.settimeout(2.0)
        tls.unwrap()  # close_notify both ways

    result = run.finish()
    assert result.returncode == 0, result.stderr
    assert result.stdout == b"from the python client\n"
    lines = stderr_lines(result)
    assert lines[0] == f"netrepl: listening on 127.0.0.1:{port} (TCP+TLS)"
    assert lines[1] == f"netrepl: #1 connected from 127.0.0.1:{client_port}"
    assert re.fullmatch(
        rf"netrepl: #1 127\.0\.0\.1:{client_port}: TLSv1\.[23] \S+; no certificate from the peer",
        lines[2],
    ), lines


# ---- unix sockets ------------------------------------------------------------------------------


def test_unix_client(netrepl, sockets, tmp_path):
    path = str(tmp_path / "device.sock")
    listener = sockets(socket.socket(socket.AF_UNIX, socket.SOCK_STREAM))
    listener.bind(path)
    listener.listen()
    run = netrepl("--unix", path, *LONG_LINGER)
    run.write(b"over unix\n")

    peer = sockets(listener.accept()[0])
    assert recv_until(peer, b"\n") == b"over unix\n"
    peer.sendall(b"unix reply\n")
    peer.close()

    result = run.finish()
    assert result.returncode == 0, result.stderr
    assert result.stdout == b"unix reply\n"
    lines = stderr_lines(result)
    assert lines[0].startswith(f"netrepl: connected to unix:{path}"), lines
    assert lines[-1] == "netrepl: connection closed by peer (11 bytes received, 10 sent)"


def test_unix_listener(netrepl, sockets, tmp_path):
    path = tmp_path / "listen.sock"
    run = netrepl("-l", "--unix", str(path), "--once")
    run.write(b"hello unix client\n")
    run.close_stdin()
    run.wait_stderr(f"listening on unix:{path} (unix)\n".encode())

    client = sockets(socket.socket(socket.AF_UNIX, socket.SOCK_STREAM))
    client.connect(str(path))
    client.sendall(b"from the unix client\n")
    assert recv_until(client, b"\n") == b"hello unix client\n"
    client.close()

    result = run.finish()
    assert result.returncode == 0, result.stderr
    assert result.stdout == b"from the unix client\n"
    assert re.search(rb"#1 connected from unix:", result.stderr), result.stderr
    assert not path.exists(), "the listener removes its socket file when it stops"


# ---- address families and --source -------------------------------------------------------------


@pytest.mark.skipif(not has_ipv6_loopback(), reason="no IPv6 loopback here")
def test_ipv6_client_and_listener(netrepl, make_peer, sockets):
    peer = make_peer(host="::1", echo=True)
    run = netrepl("-6", "::1", str(peer.port), *SHORT_LINGER)
    run.write(b"six\n")
    assert peer.wait_for_client().wait_for(b"six\n") == b"six\n"
    run.wait_stdout(b"six\n")
    result = run.finish()
    assert result.returncode == 0, result.stderr
    assert re.match(
        rb"netrepl: connected to \[::1\]:%d from \[::1\]:\d+\n" % peer.port, result.stderr
    )

    listener = netrepl("-6", "-l", "::1", "0", "--once")
    listener.write(b"to the v6 client\n")
    listener.close_stdin()
    port = listener.listening_port("TCP")
    client = sockets(socket.create_connection(("::1", port), timeout=WAIT))
    assert recv_until(client, b"\n") == b"to the v6 client\n"
    client.close()
    result = listener.finish()
    assert result.returncode == 0, result.stderr
    assert re.search(rb"#1 connected from \[::1\]:\d+\n", result.stderr), result.stderr


@pytest.mark.parametrize(
    ("family", "host"), [("-6", "127.0.0.1"), ("-4", "::1")], ids=["-6 with IPv4", "-4 with IPv6"]
)
def test_family_that_does_not_fit_the_address_exits_1(family, host):
    result = run_netrepl(family, host, str(free_port()), stdin=b"x\n")
    assert result.returncode == 1
    lines = stderr_lines(result)
    assert len(lines) == 1 and lines[0].startswith("netrepl: cannot connect to "), lines


def test_source_port_is_seen_by_the_peer(make_peer):
    peer = make_peer()
    source = free_port()
    result = run_netrepl("--source", f"127.0.0.1:{source}", *peer.args, *SHORT_LINGER, stdin=b"x\n")
    assert result.returncode == 0, result.stderr
    client = peer.wait_for_client()
    assert client.address == ("127.0.0.1", source)
    assert client.wait_for(b"x\n") == b"x\n"
    assert stderr_lines(result)[0] == (
        f"netrepl: connected to 127.0.0.1:{peer.port} from 127.0.0.1:{source}"
    )


def test_udp_source_port_is_seen_by_the_peer(sockets):
    server = udp_socket(sockets)
    source = free_port()
    result = run_netrepl(
        "-u", "--source", f"127.0.0.1:{source}", "127.0.0.1", str(server.getsockname()[1]),
        *SHORT_LINGER, stdin=b"from a chosen port\n",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert server.recvfrom(100) == (b"from a chosen port\n", ("127.0.0.1", source))


@pytest.mark.parametrize("case", ["tcp listen", "udp listen", "source", "unix"])
def test_addresses_in_use_or_missing_exit_1_with_one_line(case, sockets, tmp_path):
    busy = sockets(socket.create_server(("127.0.0.1", 0)))
    busy_udp = udp_socket(sockets)
    port, udp_port = busy.getsockname()[1], busy_udp.getsockname()[1]
    args, message = {
        "tcp listen": (
            ["-l", "127.0.0.1", str(port)],
            f"cannot listen on 127.0.0.1:{port}: address already in use",
        ),
        "udp listen": (
            ["-u", "-l", "127.0.0.1", str(udp_port)],
            f"cannot listen on 127.0.0.1:{udp_port}: address already in use",
        ),
        "source": (
            ["--source", f"127.0.0.1:{port}", "127.0.0.1", str(port)],
            f"cannot bind the local end to 127.0.0.1:{port}: address already in use",
        ),
        "unix": (
            ["--unix", str(tmp_path / "nobody.sock")],
            f"cannot connect to unix:{tmp_path / 'nobody.sock'}: no such file or directory",
        ),
    }[case]
    result = run_netrepl(*args, stdin=b"x\n")
    assert result.returncode == 1
    assert result.stdout == b""
    assert stderr_lines(result) == [f"netrepl: {message}"]


# ---- --reconnect -------------------------------------------------------------------------------


def test_reconnect_after_the_peer_closes_and_comes_back(netrepl, sockets):
    listener = sockets(socket.create_server(("127.0.0.1", 0)))
    port = listener.getsockname()[1]
    run = netrepl("127.0.0.1", str(port), "--reconnect", "0.2", *SHORT_LINGER)
    first, first_address = listener.accept()
    sockets(first)
    run.write(b"first\n")
    assert recv_until(first, b"\n") == b"first\n"
    first.sendall(b"one\n")
    run.wait_stdout(b"one\n")

    # The peer goes away (its listener too), and is refused once before it comes back.
    listener.close()
    first.close()
    run.wait_stderr(b"connection closed by peer (4 bytes received, 6 sent)\n")
    run.wait_stderr(b"reconnecting to 127.0.0.1:%d in 0.2 s (attempt 1)\n" % port)
    run.wait_stderr(b"attempt 1: cannot connect to 127.0.0.1:%d: connection refused\n" % port)
    listener = sockets(socket.create_server(("127.0.0.1", port)))
    second, second_address = listener.accept()
    sockets(second)
    run.wait_stderr(b"connected to 127.0.0.1:%d from 127.0.0.1:%d\n" % (port, second_address[1]))

    run.write(b"second\n")
    assert recv_until(second, b"\n") == b"second\n"
    second.sendall(b"two\n")
    run.wait_stdout(b"one\ntwo\n")
    result = run.finish()
    assert result.returncode == 0, result.stderr
    assert result.stdout == b"one\ntwo\n"
    assert first_address != second_address


# ---- usage errors ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "reason"),
    [
        (["--cafile", "ca.pem", "127.0.0.1", "PORT"], "--cafile needs --tls"),
        (["--insecure", "127.0.0.1", "PORT"], "--insecure needs --tls"),
        (["-u", "--tls", "127.0.0.1", "PORT"], "-u (UDP) goes with neither --tls nor --unix"),
        (["-u", "--unix", "/tmp/x.sock"], "-u (UDP) goes with neither --tls nor --unix"),
        (["--broadcast", "127.0.0.1", "PORT"], "--broadcast is for UDP (-u)"),
        (["--max-clients", "2", "127.0.0.1", "PORT"], "--max-clients is for listen mode (-l)"),
        (["--once", "127.0.0.1", "PORT"], "--once is for listen mode (-l)"),
        (["-l", "--reconnect", "1", "PORT"], "--reconnect is for clients, not listen mode (-l)"),
        (["-l", "--tls", "127.0.0.1", "PORT"], "a TLS listener needs --cert FILE"),
        (["--unix", "/tmp/x.sock", "127.0.0.1", "PORT"], "--unix PATH takes no HOST or PORT"),
        (["--unix", "/tmp/x.sock", "-4"], "--source, -4 and -6 are for TCP, UDP and WebSocket"),
        (
            ["-u", "-l", "--max-clients", "2", "PORT"],
            "--max-clients is for TCP, unix and WebSocket",
        ),
        (["--max-clients", "0", "-l", "PORT"], "'0' is not a whole number of clients from 1"),
    ],
    ids=lambda value: " ".join(value) if isinstance(value, list) else None,
)
def test_usage_errors_exit_2_with_one_line(args, reason):
    # A port nobody listens on: had netrepl tried to connect, it would exit 1, not 2.
    port = str(free_port())
    result = run_netrepl(*(port if arg == "PORT" else arg for arg in args), stdin=b"x\n")
    assert result.returncode == 2, result.stderr
    assert result.stdout == b""
    lines = stderr_lines(result)
    assert len(lines) == 1, lines
    assert lines[0].startswith("netrepl: ") and reason in lines[0], lines


@pytest.mark.parametrize("option", ["--cert", "--cafile"])
def test_missing_tls_file_is_named(option, tmp_path):
    missing = str(tmp_path / "missing.pem")
    if option == "--cert":
        args = ["-l", "127.0.0.1", "0", "--tls", "--cert", missing]
    else:
        args = ["--tls", "--cafile", missing, "127.0.0.1", str(free_port())]
    result = run_netrepl(*args, stdin=b"")
    assert result.returncode == 2
    lines = stderr_lines(result)
    assert len(lines) == 1 and missing in lines[0], lines
