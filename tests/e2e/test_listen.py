"""The new transports in a real pty: a TCP listener with two clients, a UDP listener, a TLS
client against Python's own ssl server, /eof, and --reconnect. The other side is always a
plain socket (or Python's ssl) on loopback, never netrepl; waits are on the screen or the
output stream, with a timeout."""

from __future__ import annotations

import re
import socket

import pytest

from tests.e2e.test_interactive import rows, unwrapped
from tests.net.conftest import WAIT
from tests.net.test_cli_transports import Certs, TlsPeer, make_certs, not_after, recv_until
from tests.peers import PeerClient
from tests.terminal import Terminal

TOOLBAR = r"(?m)^ (?:TCP|UDP|TLS) \S+(?: → \S+)?  [^│]*  │  view .*  tx [\d,]+ B$"


def toolbar(kind: str, address: str, state: str) -> str:
    """A regex for the start of the toolbar line: ` TCP 127.0.0.1:PORT  connected  │  `."""
    return rf"(?m)^ {kind} {re.escape(address)}  {re.escape(state)}  │  "


def ready(terminal: Terminal) -> None:
    """Wait until the prompt is drawn whole (see test_interactive.ready): typing before the
    terminal answered prompt_toolkit's cursor query draws the next prompt too low."""
    terminal.expect_screen(TOOLBAR)


def enter(terminal: Terminal, line: str = "") -> None:
    ready(terminal)
    terminal.enter(line)


def listening_port(terminal: Terminal, kind: str) -> int:
    """The port of `listening on 127.0.0.1:PORT (KIND)`, the first status line."""
    match = terminal.expect(rf"listening on 127\.0\.0\.1:(\d+) \({re.escape(kind)}\)")
    return int(match.group(1))


def connect_client(port: int) -> tuple[PeerClient, int]:
    """A plain TCP client of netrepl's listener, recording what it reads; and its own port."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=WAIT)
    sock.settimeout(None)  # the reader blocks until end of stream; the waits have timeouts
    client = PeerClient(sock, lambda _client, _data: None)
    client.start()
    return client, sock.getsockname()[1]


@pytest.fixture
def clients():
    """connect(port) -> (client, its port); every client is closed at teardown."""
    opened: list[PeerClient] = []

    def connect(port: int) -> tuple[PeerClient, int]:
        client, local = connect_client(port)
        opened.append(client)
        return client, local

    yield connect
    for client in opened:
        client.close()


@pytest.fixture
def udp_socket():
    """udp_socket() -> a UDP socket bound to 127.0.0.1, with a timeout; closed at teardown."""
    opened: list[socket.socket] = []

    def make() -> socket.socket:
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        opened.append(sock)
        sock.settimeout(WAIT)
        sock.bind(("127.0.0.1", 0))
        return sock

    yield make
    for sock in opened:
        sock.close()


@pytest.fixture(scope="module")
def certs(tmp_path_factory) -> Certs:
    return make_certs(tmp_path_factory.mktemp("certs"))


# ---- (a) a TCP listener with two clients ---------------------------------------------------------


def test_listener_with_two_clients_to_clients_and_kick(spawn, clients):
    terminal = spawn("-l", "127.0.0.1", "0")
    port = listening_port(terminal, "TCP")
    address = f"127.0.0.1:{port}"
    terminal.expect_screen(toolbar("TCP", address, "listening, 0 clients"))

    first, first_port = clients(port)
    terminal.expect_screen(rf"(?m)^#1 connected from 127\.0\.0\.1:{first_port}$")
    second, second_port = clients(port)
    terminal.expect_screen(rf"(?m)^#2 connected from 127\.0\.0\.1:{second_port}$")
    terminal.expect_screen(toolbar("TCP", address, "listening, 2 clients"))

    # Two clients were seen: each change of source gets a label line naming the client.
    first.send(b"from the first\n")
    terminal.expect_screen(rows(f"── #1 127.0.0.1:{first_port}", "from the first"))
    second.send(b"from the second\n")
    terminal.expect_screen(
        rows(
            f"── #1 127.0.0.1:{first_port}",
            "from the first",
            f"── #2 127.0.0.1:{second_port}",
            "from the second",
        )
    )

    enter(terminal, "to everyone")  # /to all is the default
    assert first.wait_for(b"to everyone\n") == b"to everyone\n"
    assert second.wait_for(b"to everyone\n") == b"to everyone\n"

    enter(terminal, "/to 2")
    terminal.expect_screen(rows("> /to 2", "#2>"))
    enter(terminal, "only to the second")
    assert second.wait_for(b"only to the second\n") == b"to everyone\nonly to the second\n"
    terminal.expect_screen(rows("#2> only to the second", "#2>"))

    enter(terminal, "/clients")
    terminal.expect_screen(
        r"(?m)^#2> /clients\n"
        r"\s+id\s+address\s+connected\s+received\s+sent\n"
        rf"\s+#1\s+127\.0\.0\.1:{first_port}\s+\d+s\s+15\s+12\n"
        rf"\s+#2\s+127\.0\.0\.1:{second_port}\s+\d+s\s+16\s+31$"
    )

    enter(terminal, "/kick 1")
    # The first client reads end of stream; the only line it got besides was the one to all.
    assert first.wait_closed() == b"to everyone\n"
    terminal.expect_screen(
        rf"(?m)^#1 127\.0\.0\.1:{first_port} connection closed \(15 bytes received, 12 sent\)$"
    )
    terminal.expect_screen(toolbar("TCP", address, "listening, 1 client"))
    assert not second.closed_by_client.is_set()

    enter(terminal, "/quit")
    assert terminal.wait_exit() == 0
    assert second.wait_closed() == b"to everyone\nonly to the second\n"


# ---- (b) a UDP listener --------------------------------------------------------------------------


def test_udp_listener_shows_datagrams_and_replies_to_the_last_sender(spawn, udp_socket):
    terminal = spawn("-u", "-l", "127.0.0.1", "0")
    port = listening_port(terminal, "UDP")
    address = f"127.0.0.1:{port}"
    terminal.expect_screen(toolbar("UDP", address, "listening, 0 senders"))

    first, second = udp_socket(), udp_socket()
    first_port, second_port = first.getsockname()[1], second.getsockname()[1]
    first.sendto(b"datagram1", ("127.0.0.1", port))
    first.sendto(b"second\n", ("127.0.0.1", port))
    # One block per datagram, each with its sender and size, even without a newline.
    terminal.expect_screen(
        rows(
            f"#1 datagrams from 127.0.0.1:{first_port}",
            f"── ← #1 127.0.0.1:{first_port} · 9 bytes",
            "datagram1",
            f"── ← #1 127.0.0.1:{first_port} · 7 bytes",
            "second",
        )
    )
    terminal.expect_screen(toolbar("UDP", address, "listening, 1 sender"))

    second.sendto(b"from another\n", ("127.0.0.1", port))
    terminal.expect_screen(rows(f"── ← #2 127.0.0.1:{second_port} · 13 bytes", "from another"))
    enter(terminal, "reply")
    assert second.recvfrom(100) == (b"reply\n", ("127.0.0.1", port))
    terminal.expect_screen(rows("> reply", ">"))

    # Now the first is the last sender: the reply goes to it, and it is the first datagram
    # it ever got (the earlier reply did not reach it).
    first.sendto(b"me again", ("127.0.0.1", port))
    terminal.expect_screen(rows(f"── ← #1 127.0.0.1:{first_port} · 8 bytes", "me again"))
    enter(terminal, "reply two")
    assert first.recvfrom(100) == (b"reply two\n", ("127.0.0.1", port))

    enter(terminal, "/quit")
    assert terminal.wait_exit() == 0


# ---- (c) a TLS client ----------------------------------------------------------------------------


def test_tls_client_shows_version_expiry_and_the_chain(spawn, certs):
    with TlsPeer(certs, greeting=b"hello over tls\n") as peer:
        terminal = spawn("--tls", "--cafile", certs.ca, "127.0.0.1", str(peer.port))
        terminal.expect(rf"connected to 127\.0\.0\.1:{peer.port} from 127\.0\.0\.1:\d+\n")
        # One status line, longer than the screen is wide: wrapped at spaces, its
        # continuation rows indented.
        expires = not_after(certs.server_cert)
        terminal.expect(r"days left\); verified\n")
        status = re.search(
            r"(?m)^(?:TLS )?(TLSv1\.[23]) \S+; certificate (.+), expires "
            rf"{re.escape(expires)} \(([\d,]+) days left\); verified$",
            unwrapped(terminal.plain),
        )
        assert status is not None, terminal.plain
        assert "OU=Testing cert" in status.group(2)
        # trustme certificates run until the year 3000.
        assert int(status.group(3).replace(",", "")) > 300_000
        terminal.expect_screen(rows("hello over tls"))
        terminal.expect_screen(toolbar("TLS", f"127.0.0.1:{peer.port}", "connected"))

        enter(terminal, "/cert")
        terminal.expect_screen(
            r"(?m)^> /cert\n"
            r"0: subject O=trustme[^\n]*, OU=Testing cert #\S+\n"
            r"   issuer  O=trustme[^\n]*, OU=Testing CA #\S+\n"
            rf"   valid   \d{{4}}-\d\d-\d\d \d\d:\d\d UTC \.\. {re.escape(expires)}"
            r" \([\d,]+ days left\)\n"
            r"   names   DNS:localhost, IP Address:127\.0\.0\.1"
        )

        enter(terminal, "ping")
        assert peer.wait_for(b"ping\n") == b"ping\n"
        terminal.expect_screen(rows("echo: ping"))
        enter(terminal, "/quit")
        assert terminal.wait_exit() == 0
        assert peer.wait_done() is None, "the server saw an error"


# ---- (d) /eof ------------------------------------------------------------------------------------


def test_eof_half_closes_and_the_reply_still_appears(spawn, make_peer):
    peer = make_peer()
    terminal = spawn(*peer.args)
    address = f"{peer.host}:{peer.port}"
    terminal.expect_screen(toolbar("TCP", address, "connected"))
    client = peer.wait_for_client()

    enter(terminal, "last words")
    enter(terminal, "/eof")
    # The peer reads what was typed before /eof, then end of stream.
    assert client.wait_closed() == b"last words\n"
    terminal.expect_screen(
        rf"(?m)^sent end of stream to {re.escape(address)}: half-closed, still reading"
    )
    terminal.expect_screen(toolbar("TCP", address, "half-closed"))

    client.send(b"the reply after eof\n")
    terminal.expect_screen(rows("the reply after eof"))
    enter(terminal, "more")
    terminal.expect_screen(
        rows(
            "> more", f"the connection to {address} is half-closed (/eof): nothing more can be sent"
        )
    )

    client.close()
    terminal.expect_screen(r"(?m)^connection closed by peer \(20 bytes received, 11 sent\)$")
    terminal.expect_screen(toolbar("TCP", address, "closed"))
    enter(terminal, "/quit")
    assert terminal.wait_exit() == 0


# ---- (e) --reconnect -----------------------------------------------------------------------------


def test_reconnect_after_the_peer_goes_away_and_comes_back(spawn):
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(WAIT)
    port = listener.getsockname()[1]
    address = f"127.0.0.1:{port}"
    accepted: list[socket.socket] = []
    try:
        terminal = spawn("127.0.0.1", str(port), "--reconnect", "0.2")
        sock, first = listener.accept()
        accepted.append(sock)
        terminal.expect(rf"connected to {re.escape(address)} from 127\.0\.0\.1:{first[1]}\n")
        terminal.expect_screen(toolbar("TCP", address, "connected"))

        # The peer goes away entirely: its connection and its listening socket.
        listener.close()
        sock.close()
        terminal.expect(r"connection closed by peer \(0 bytes received, 0 sent\)")
        terminal.expect(rf"reconnecting to {re.escape(address)} in 0\.2 s \(attempt 1\)")
        terminal.expect(rf"attempt 1: cannot connect to {re.escape(address)}: connection refused")
        terminal.expect_screen(toolbar("TCP", address, "reconnecting"))

        # It comes back on the same port (SO_REUSEADDR, set by create_server).
        listener = socket.create_server(("127.0.0.1", port))
        listener.settimeout(WAIT)
        sock, second = listener.accept()
        accepted.append(sock)
        terminal.expect(rf"connected to {re.escape(address)} from 127\.0\.0\.1:{second[1]}\n")
        terminal.expect_screen(toolbar("TCP", address, "connected"))

        enter(terminal, "back again")
        sock.settimeout(WAIT)
        assert recv_until(sock, b"\n") == b"back again\n"
        enter(terminal, "/quit")
        assert terminal.wait_exit() == 0
    finally:
        listener.close()
        for sock in accepted:
            sock.close()
