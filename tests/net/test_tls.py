"""TLS on loopback with trustme certificates: netrepl to netrepl, to Python's ssl, to openssl."""

from __future__ import annotations

import contextlib
import itertools
import shutil
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import trustme

from netrepl.errors import ConnectError, SendError, UsageError
from netrepl.events import Closed, Connected, HalfClosed, Listening, TlsEstablished
from netrepl.transport import Endpoint, TlsOptions, open_transport
from tests.net import transport_helpers
from tests.net.conftest import WAIT, EventTap
from tests.net.transport_helpers import payload, port_of, recv_exact, wait_noticed

raw = transport_helpers.raw
transports = transport_helpers.transports

VERSIONS = ("TLSv1.2", "TLSv1.3")


@dataclass(frozen=True)
class Certs:
    ca: str
    server: str
    """The server's key and certificate in one PEM file."""
    server_cert: str
    server_key: str
    client_cert: str
    client_key: str
    stranger_cert: str
    """A client certificate from a CA nobody here trusts."""
    stranger_key: str


@pytest.fixture(scope="module")
def certs(tmp_path_factory) -> Certs:
    folder: Path = tmp_path_factory.mktemp("certs")
    ca = trustme.CA()
    server = ca.issue_cert("localhost", "127.0.0.1", "::1")
    client = ca.issue_cert("client.example.org")
    stranger = trustme.CA().issue_cert("stranger.example.org")

    def write(name: str, blob: trustme.Blob) -> str:
        path = folder / name
        blob.write_to_path(str(path))
        return str(path)

    return Certs(
        ca=write("ca.pem", ca.cert_pem),
        server=write("server.pem", server.private_key_and_cert_chain_pem),
        server_cert=write("server-cert.pem", server.cert_chain_pems[0]),
        server_key=write("server-key.pem", server.private_key_pem),
        client_cert=write("client-cert.pem", client.cert_chain_pems[0]),
        client_key=write("client-key.pem", client.private_key_pem),
        stranger_cert=write("stranger-cert.pem", stranger.cert_chain_pems[0]),
        stranger_key=write("stranger-key.pem", stranger.private_key_pem),
    )


def tls_listen(tls: TlsOptions, host: str = "127.0.0.1") -> Endpoint:
    return Endpoint(listen=True, host=host, port=0, tls=tls)


def tls_connect(port: int, tls: TlsOptions, host: str = "127.0.0.1") -> Endpoint:
    return Endpoint(host=host, port=port, tls=tls, connect_timeout=WAIT)


def established(tap: EventTap) -> TlsEstablished:
    tap.wait_until(lambda: bool(tap.of_type(TlsEstablished)), "TlsEstablished")
    return tap.of_type(TlsEstablished)[0]


@pytest.fixture
def tls_server(transports, certs):
    """A netrepl TLS listener on 127.0.0.1: (server, tap, port)."""
    server, tap = transports.open(tls_listen(TlsOptions(cert=certs.server)))
    return server, tap, port_of(server.address)


# ---- netrepl to netrepl ----------------------------------------------------------------------


def test_handshake_and_data_both_ways(tls_server, transports, certs):
    server, s_tap, port = tls_server
    assert s_tap.of_type(Listening) == [Listening(f"127.0.0.1:{port}", "tcp", True)]
    client, c_tap = transports.open(tls_connect(port, TlsOptions(cafile=certs.ca)))

    mine = established(c_tap)
    assert mine.conn == 1 and mine.version in VERSIONS and mine.cipher
    assert mine.verified is True and mine.alpn is None
    leaf = mine.chain[0]
    assert "127.0.0.1" in " ".join(leaf.alt_names) and "DNS:localhost" in leaf.alt_names
    assert leaf.subject and leaf.issuer and leaf.not_after.endswith("UTC")
    assert leaf.days_left is not None and leaf.days_left > 0
    assert client.chain(None) == mine.chain
    kinds = [type(e) for e in c_tap.snapshot()]
    assert kinds[:2] == [Connected, TlsEstablished]

    theirs = established(s_tap)
    assert theirs.version == mine.version and theirs.cipher == mine.cipher
    assert theirs.chain == (), "no client certificate was asked for"
    with pytest.raises(UsageError, match="sent no certificate"):
        server.chain(theirs.conn)

    data = bytes(range(256)) * 64
    client.send(data, "all", as_hex=False)
    assert s_tap.wait_received(len(data)) == data
    server.send(b"and back\n", "all", as_hex=False)
    assert c_tap.wait_received(9) == b"and back\n"
    assert client.sent == len(data) and client.received == 9


def test_data_sent_during_the_server_handshake_is_held(tls_server, raw, certs):
    server, s_tap, port = tls_server
    plain = raw.tcp("127.0.0.1", port)
    s_tap.wait_until(lambda: bool(s_tap.of_type(Connected)), "Connected")
    server.send(b"queued early", "all", as_hex=False)  # the handshake has not even begun

    context = ssl.create_default_context(cafile=certs.ca)
    with context.wrap_socket(plain, server_hostname="localhost") as tls:
        assert recv_exact(tls, 12) == b"queued early"
    established(s_tap)


def test_unknown_ca_fails_with_certificate_verify_failed(tls_server):
    server, s_tap, port = tls_server
    with pytest.raises(ConnectError) as caught:
        open_transport(tls_connect(port, TlsOptions()), EventTap(), itertools.count(1))
    message = str(caught.value)
    assert message.startswith(f"TLS handshake with 127.0.0.1:{port} failed: ")
    assert "certificate verify failed" in message and "\n" not in message

    closed = s_tap.wait_closed()
    assert closed.failed is True and closed.reason.startswith("TLS handshake failed")
    assert s_tap.of_type(TlsEstablished) == []
    assert server.is_open, "a failed handshake ends only that client"


def test_hostname_mismatch_fails(tls_server, certs):
    _, _, port = tls_server
    with pytest.raises(ConnectError) as caught:
        open_transport(
            tls_connect(port, TlsOptions(cafile=certs.ca, sni="example.com")),
            EventTap(),
            itertools.count(1),
        )
    assert "certificate verify failed" in str(caught.value)
    assert "example.com" in str(caught.value)


def test_connecting_by_name_checks_that_name(tls_server, transports, certs):
    _, _, port = tls_server
    _, tap = transports.open(tls_connect(port, TlsOptions(cafile=certs.ca), host="localhost"))
    assert established(tap).verified


def test_insecure_connects_and_warns(tls_server, transports):
    _, _, port = tls_server
    _, tap = transports.open(tls_connect(port, TlsOptions(insecure=True)))
    info = established(tap)
    assert info.verified is False
    assert info.chain, "the certificate is shown even when it is not checked"
    warning = wait_noticed(tap, "--insecure")
    assert warning.text.startswith("warning:") and warning.level == "error"


def test_alpn_is_negotiated(transports, certs):
    server, s_tap = transports.open(tls_listen(TlsOptions(cert=certs.server, alpn=("h2",))))
    _, c_tap = transports.open(
        tls_connect(port_of(server.address), TlsOptions(cafile=certs.ca, alpn=("h2", "http/1.1")))
    )
    assert established(c_tap).alpn == "h2"
    assert established(s_tap).alpn == "h2"


def test_client_certificate_is_shown_to_the_server(transports, certs):
    server, s_tap = transports.open(tls_listen(TlsOptions(cert=certs.server, cafile=certs.ca)))
    client, c_tap = transports.open(
        tls_connect(
            port_of(server.address),
            TlsOptions(cafile=certs.ca, cert=certs.client_cert, key=certs.client_key),
        )
    )
    established(c_tap)
    theirs = established(s_tap)
    assert theirs.verified is True
    assert "DNS:client.example.org" in theirs.chain[0].alt_names
    assert server.chain(None) == theirs.chain == server.chain(theirs.conn)
    client.send(b"authenticated", "all", as_hex=False)
    assert s_tap.wait_received(13) == b"authenticated"


def test_client_certificate_from_an_unknown_ca_is_refused(transports, certs):
    server, s_tap = transports.open(tls_listen(TlsOptions(cert=certs.server, cafile=certs.ca)))
    options = TlsOptions(cafile=certs.ca, cert=certs.stranger_cert, key=certs.stranger_key)
    c_tap = EventTap()
    with contextlib.suppress(ConnectError):  # TLS 1.2 fails in the handshake, 1.3 just after
        transports.open(tls_connect(port_of(server.address), options), tap=c_tap)

    closed = s_tap.wait_closed()
    assert closed.failed is True and closed.reason.startswith("TLS handshake failed")
    assert s_tap.of_type(TlsEstablished) == []
    if c_tap.of_type(Connected):
        assert c_tap.wait_closed().failed is True


def test_half_close_over_tls(tls_server, transports, certs):
    server, s_tap, port = tls_server
    client, c_tap = transports.open(tls_connect(port, TlsOptions(cafile=certs.ca)))
    s_conn = established(s_tap).conn
    server.send(b"before eof", "all", as_hex=False)
    assert c_tap.wait_received(10) == b"before eof"

    client.send(b"last words", "all", as_hex=False)
    client.send_eof("all")
    c_tap.wait_until(lambda: bool(c_tap.of_type(HalfClosed)), "HalfClosed")
    assert s_tap.wait_received(10, conn=s_conn) == b"last words"
    with pytest.raises(SendError):  # half-closed, or closed already by the server's reaction
        client.send(b"more", "all", as_hex=False)

    # Measured behaviour: the server ends the connection when the client half-closes, so the
    # client's read side then ends cleanly too (TLS itself could carry data after our EOF).
    assert s_tap.wait_closed(s_conn).failed is False
    c_closed = c_tap.wait_closed(1)
    assert c_closed.failed is False
    assert (c_closed.received, c_closed.sent) == (10, 10)


def test_tls_over_unix_needs_a_name_to_check(transports, certs, tmp_path):
    path = str(tmp_path / "t.sock")
    if len(path) > 100:
        pytest.skip("the temporary directory's path is too long for a unix socket")
    server, s_tap = transports.open(
        Endpoint(protocol="unix", path=path, listen=True, tls=TlsOptions(cert=certs.server))
    )
    with pytest.raises(ConnectError, match="--sni"):
        open_transport(
            Endpoint(protocol="unix", path=path, tls=TlsOptions(cafile=certs.ca)),
            EventTap(),
            itertools.count(1),
        )
    client, c_tap = transports.open(
        Endpoint(protocol="unix", path=path, tls=TlsOptions(cafile=certs.ca, sni="localhost"))
    )
    assert established(c_tap).verified
    client.send(b"unix+tls", "all", as_hex=False)
    assert s_tap.wait_received(8, conn=2) == b"unix+tls"
    server.send(b"ok", 2, as_hex=False)
    assert c_tap.wait_received(2) == b"ok"


# ---- data that rides with the last handshake flight -----------------------------------------


def handshake_over_bio(sock: socket.socket, tls: ssl.SSLObject, incoming, outgoing) -> None:
    """Run a handshake on memory BIOs, leaving the last flight in `outgoing` (not yet sent),
    so the caller can put application data in the same write, as many servers do."""
    for _ in range(50):
        try:
            tls.do_handshake()
            return
        except ssl.SSLWantReadError:
            sock.sendall(outgoing.read())
            data = sock.recv(65536)
            if not data:
                raise AssertionError("the peer closed during the handshake") from None
            incoming.write(data)
    raise AssertionError("no handshake after 50 round trips")


class BioTlsServer:
    """A one-client TLS 1.2 server that sends its Finished and a greeting in one write, like an
    SMTPS or IMAPS server that speaks first; then it waits for a line."""

    def __init__(self, certs: Certs) -> None:
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.context.load_cert_chain(certs.server_cert, certs.server_key)
        self.context.maximum_version = ssl.TLSVersion.TLSv1_2
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(WAIT)
        self.port = self.listener.getsockname()[1]
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        with contextlib.suppress(OSError, ssl.SSLError):
            sock, _ = self.listener.accept()
            with sock:
                sock.settimeout(WAIT)
                incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
                tls = self.context.wrap_bio(incoming, outgoing, server_side=True)
                handshake_over_bio(sock, tls, incoming, outgoing)
                tls.write(b"220 ready\r\n")
                sock.sendall(outgoing.read())
                sock.recv(100)

    def close(self) -> None:
        self.listener.close()
        self.thread.join(WAIT)


def test_greeting_sent_with_the_servers_finished_arrives(transports, certs):
    peer = BioTlsServer(certs)
    try:
        _, tap = transports.open(tls_connect(peer.port, TlsOptions(cafile=certs.ca), "localhost"))
        assert established(tap).version == "TLSv1.2"
        assert tap.wait_received(11, timeout=2.0) == b"220 ready\r\n"
    finally:
        transports.close_all()
        peer.close()


def test_data_sent_with_the_clients_finished_arrives(tls_server, raw, certs):
    _, s_tap, port = tls_server
    sock = raw.tcp("127.0.0.1", port)
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    context = ssl.create_default_context(cafile=certs.ca)
    tls = context.wrap_bio(incoming, outgoing, server_hostname="localhost")
    handshake_over_bio(sock, tls, incoming, outgoing)
    tls.write(b"EHLO right away\r\n")
    sock.sendall(outgoing.read())  # the client's Finished and its first line in one write
    assert s_tap.wait_received(17) == b"EHLO right away\r\n"


# ---- handshake failures ----------------------------------------------------------------------


def test_plain_client_on_a_tls_listener_ends_only_itself(tls_server, raw, transports, certs):
    server, s_tap, port = tls_server
    plain = raw.tcp("127.0.0.1", port)
    plain.sendall(b"GET / HTTP/1.0\r\n\r\n")
    closed = s_tap.wait_closed(1)
    assert closed.failed is True and closed.reason.startswith("TLS handshake failed")
    assert server.received == 0, "nothing of a failed handshake counts as data"

    _, c_tap = transports.open(tls_connect(port, TlsOptions(cafile=certs.ca)))
    assert established(c_tap).verified, "the listener still serves TLS clients"


def test_handshake_with_a_silent_server_times_out(raw):
    listener = raw.listener()
    endpoint = Endpoint(
        host="127.0.0.1",
        port=listener.getsockname()[1],
        tls=TlsOptions(insecure=True),
        connect_timeout=0.5,
    )
    with pytest.raises(ConnectError, match=r"failed: no TLS answer came \(the handshake timed out"):
        open_transport(endpoint, EventTap(), itertools.count(1))


def test_handshake_with_a_server_that_hangs_up(raw):
    listener = raw.listener()
    port = listener.getsockname()[1]
    closer = threading.Thread(target=lambda: raw.accept(listener).close(), daemon=True)
    closer.start()
    with pytest.raises(ConnectError, match="failed: the peer closed"):
        open_transport(tls_connect(port, TlsOptions(insecure=True)), EventTap(), itertools.count(1))
    closer.join(WAIT)


def test_two_megabytes_each_way_over_tls(tls_server, transports, certs):
    server, s_tap, port = tls_server
    client, c_tap = transports.open(tls_connect(port, TlsOptions(cafile=certs.ca)))
    conn = established(s_tap).conn
    up, down = payload(2 * 1024 * 1024, seed=7), payload(2 * 1024 * 1024, seed=8)
    client.send(up, "all", as_hex=False)
    server.send(down, conn, as_hex=False)
    assert s_tap.wait_received(len(up), conn=conn, timeout=20) == up
    assert c_tap.wait_received(len(down), timeout=20) == down


# ---- interop with Python's ssl module --------------------------------------------------------


class PythonTlsServer:
    """A one-client TLS server from Python's ssl module: greets, echoes one line, then does a
    full TLS shutdown (close_notify both ways), waiting `unwrap_timeout` for the reply."""

    def __init__(self, certs: Certs, unwrap_timeout: float = 2.0) -> None:
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.context.load_cert_chain(certs.server_cert, certs.server_key)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(WAIT)
        self.port = self.listener.getsockname()[1]
        self.unwrap_timeout = unwrap_timeout
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        try:
            sock, _ = self.listener.accept()
            sock.settimeout(WAIT)
            with self.context.wrap_socket(sock, server_side=True) as tls:
                tls.sendall(b"hello from python ssl\n")
                line = bytearray()
                while not line.endswith(b"\n") and len(line) < 1000:
                    chunk = tls.recv(1000)
                    if not chunk:
                        break
                    line += chunk
                tls.sendall(b"echo: " + bytes(line))
                tls.settimeout(self.unwrap_timeout)
                tls.unwrap()
        except BaseException as error:  # reported by the test through .error
            self.error = error

    def close(self) -> None:
        self.listener.close()
        self.thread.join(WAIT)


@pytest.fixture
def python_server(certs) -> Iterator[PythonTlsServer]:
    peer = PythonTlsServer(certs)
    yield peer
    peer.close()


def test_client_against_python_ssl_server(python_server, transports, certs):
    client, tap = transports.open(
        tls_connect(python_server.port, TlsOptions(cafile=certs.ca), host="localhost")
    )
    assert established(tap).version in VERSIONS
    assert tap.wait_received(22) == b"hello from python ssl\n"
    client.send(b"ping\n", "all", as_hex=False)
    assert tap.wait_received(33) == b"hello from python ssl\necho: ping\n"

    client.close()  # our close_notify completes the server's TLS shutdown
    python_server.thread.join(WAIT)
    assert python_server.error is None, python_server.error
    assert tap.of_type(Closed)[0].failed is False


def test_client_sees_the_servers_close_notify(python_server, transports, certs):
    client, tap = transports.open(
        tls_connect(python_server.port, TlsOptions(cafile=certs.ca), host="localhost")
    )
    client.send(b"ping\n", "all", as_hex=False)
    tap.wait_received(33)
    closed = tap.wait_closed(1)  # the server sends close_notify and waits for ours
    python_server.thread.join(WAIT)
    assert "close_notify" in closed.reason
    assert python_server.error is None, "the server's TLS shutdown got no reply"


def test_server_against_python_ssl_client(tls_server, raw, certs):
    server, s_tap, port = tls_server
    context = ssl.create_default_context(cafile=certs.ca)
    with context.wrap_socket(raw.tcp("127.0.0.1", port), server_hostname="localhost") as tls:
        conn = established(s_tap).conn
        tls.sendall(b"from python\n")
        assert s_tap.wait_received(12, conn=conn) == b"from python\n"
        server.send(b"from netrepl\n", conn, as_hex=False)
        assert recv_exact(tls, 13) == b"from netrepl\n"
    assert s_tap.wait_closed(conn).failed is False


def test_server_answers_a_clients_close_notify(tls_server, raw, certs):
    _, s_tap, port = tls_server
    context = ssl.create_default_context(cafile=certs.ca)
    with context.wrap_socket(raw.tcp("127.0.0.1", port), server_hostname="localhost") as tls:
        conn = established(s_tap).conn
        tls.settimeout(2.0)
        with contextlib.suppress(TimeoutError):
            tls.unwrap()  # sends close_notify, waits for the server's
        closed = s_tap.wait_closed(conn, timeout=1.0)
    assert "close_notify" in closed.reason


# ---- interop with openssl s_server -----------------------------------------------------------


class Pipe:
    """Collects a child's output on a thread; tests wait for text with a timeout."""

    def __init__(self, stream) -> None:
        self.data = bytearray()
        self._changed = threading.Condition()
        self._thread = threading.Thread(target=self._drain, args=(stream,), daemon=True)
        self._thread.start()

    def _drain(self, stream) -> None:
        while chunk := stream.read1(65536):
            with self._changed:
                self.data += chunk
                self._changed.notify_all()

    def wait_for(self, expected: bytes, timeout: float = WAIT) -> bytes:
        with self._changed:
            if not self._changed.wait_for(lambda: expected in self.data, timeout):
                raise AssertionError(f"never saw {expected!r}: {bytes(self.data)!r}")
            return bytes(self.data)


@pytest.fixture
def openssl_server(certs) -> Iterator[Callable[[], tuple[subprocess.Popen, Pipe, int]]]:
    if shutil.which("openssl") is None:
        pytest.skip("no openssl binary")
    started: list[subprocess.Popen] = []

    def start() -> tuple[subprocess.Popen, Pipe, int]:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        process = subprocess.Popen(
            [
                *("openssl", "s_server", "-accept", f"127.0.0.1:{port}", "-quiet"),
                *("-cert", certs.server_cert, "-key", certs.server_key),
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        started.append(process)
        Pipe(process.stderr)  # drained so a chatty server never blocks on a full pipe
        stdout = Pipe(process.stdout)
        wait_accepting(process, port)
        return process, stdout, port

    yield start
    for process in started:
        process.kill()
        process.wait(WAIT)
        for pipe in (process.stdin, process.stdout, process.stderr):
            with contextlib.suppress(OSError):
                pipe.close()


def wait_accepting(process: subprocess.Popen, port: int, timeout: float = WAIT) -> None:
    """Poll connect until the server accepts, with a deadline; fail if it exits instead."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=WAIT).close()
            return
        except ConnectionRefusedError:
            pass
        # Between attempts, wait on the process itself: this also notices an early exit.
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(0.05)
            raise AssertionError(f"openssl s_server exited with {process.returncode}")
    raise AssertionError(f"openssl s_server not accepting on {port} after {timeout} s")


def test_client_against_openssl_s_server(openssl_server, transports, certs):
    process, stdout, port = openssl_server()
    client, tap = transports.open(tls_connect(port, TlsOptions(cafile=certs.ca), host="localhost"))
    assert established(tap).version in VERSIONS

    client.send(b"hello from netrepl\n", "all", as_hex=False)
    stdout.wait_for(b"hello from netrepl\n")
    process.stdin.write(b"hello from openssl\n")
    process.stdin.flush()
    assert tap.wait_received(19) == b"hello from openssl\n"
