"""TcpConnection against real loopback peers: events, exact bytes both ways, every way to end."""

from __future__ import annotations

import errno
import hashlib
import re
import socket
import threading

import pytest

from netrepl.errors import ConnectError, SendError, UsageError
from netrepl.events import Closed, Connected, Received
from netrepl.transport import describe_os_error, format_address, parse_port
from netrepl.transport.tcp import TcpConnection
from tests.net.conftest import WAIT, EventTap
from tests.peers import free_port, has_ipv6_loopback


def pattern(size: int, seed: bytes = b"netrepl") -> bytes:
    """`size` bytes that are not periodic, so a lost, doubled or reordered chunk shows."""
    blocks = []
    total = 0
    counter = 0
    while total < size:
        block = hashlib.sha256(seed + counter.to_bytes(8, "big")).digest()
        blocks.append(block)
        total += len(block)
        counter += 1
    return b"".join(blocks)[:size]


@pytest.fixture
def open_connection():
    """open_connection(peer, conn_id=1) -> (connection, tap), closed after the test."""
    connections: list[TcpConnection] = []

    def open_(peer, conn_id: int = 1, host: str | None = None):
        tap = EventTap()
        connection = TcpConnection.open(
            host or peer.host, peer.port, conn_id=conn_id, post=tap, timeout=WAIT
        )
        connections.append(connection)
        return connection, tap

    yield open_
    for connection in connections:
        connection.close()


# ---- opening -------------------------------------------------------------------------------


def test_open_posts_connected_with_both_addresses(make_peer, open_connection):
    peer = make_peer()
    connection, tap = open_connection(peer, conn_id=7)
    client = peer.wait_for_client()

    events = tap.snapshot()
    assert len(events) == 1
    connected = events[0]
    assert isinstance(connected, Connected)
    assert connected.conn == 7
    assert connected.peer == f"127.0.0.1:{peer.port}"
    # The peer sees us at exactly the local address the event names.
    assert connected.local == f"{client.address[0]}:{client.address[1]}"
    assert connection.peer == connected.peer and connection.local == connected.local
    assert connection.is_open
    assert connection.received == connection.sent == 0
    assert connection.failure is None


def test_connect_refused_is_one_line_reason():
    port = free_port()
    tap = EventTap()
    with pytest.raises(ConnectError) as caught:
        TcpConnection.open("127.0.0.1", port, conn_id=1, post=tap, timeout=WAIT)
    assert str(caught.value) == f"cannot connect to 127.0.0.1:{port}: connection refused"
    assert tap.snapshot() == [], "a failed connect must post nothing"


def test_unknown_host_says_so():
    with pytest.raises(ConnectError) as caught:
        TcpConnection.open("nosuch.invalid", 80, conn_id=1, post=EventTap(), timeout=WAIT)
    message = str(caught.value)
    assert message.startswith("cannot connect to nosuch.invalid:80: unknown host"), message
    assert "\n" not in message


def test_ipv6_loopback_address_is_bracketed(make_peer, open_connection):
    if not has_ipv6_loopback():
        pytest.skip("no IPv6 loopback on this machine")
    peer = make_peer(greeting=b"hello over v6\n", echo=True, host="::1")
    connection, tap = open_connection(peer, host="::1")
    client = peer.wait_for_client()

    connected = tap.of_type(Connected)[0]
    assert connected.peer == f"[::1]:{peer.port}"
    assert re.fullmatch(r"\[::1\]:\d+", connected.local), connected.local
    assert connected.local == f"[::1]:{client.address[1]}"
    assert tap.wait_received(14) == b"hello over v6\n"
    connection.send(b"ping\n")
    assert client.wait_for(b"ping\n") == b"ping\n"


# ---- data ------------------------------------------------------------------------------------


def test_received_events_carry_exactly_the_peer_bytes(make_peer, open_connection):
    peer = make_peer(greeting=[b"first ", bytes(range(256)), b"\r\nlast"])
    connection, tap = open_connection(peer, conn_id=3)
    client = peer.wait_for_client()
    client.send(b"\x00\xff pushed later")

    expected = b"first " + bytes(range(256)) + b"\r\nlast" + b"\x00\xff pushed later"
    assert tap.wait_received(len(expected)) == expected
    assert connection.received == len(expected)
    assert all(event.conn == 3 for event in tap.of_type(Received))
    assert all(event.data for event in tap.of_type(Received)), "no empty Received events"


def test_five_megabytes_from_the_peer_arrive_whole_and_in_order(make_peer, open_connection):
    payload = pattern(5 * 1024 * 1024)
    peer = make_peer()
    connection, tap = open_connection(peer)
    client = peer.wait_for_client()
    sender = threading.Thread(target=client.send, args=(payload,), daemon=True)
    sender.start()

    got = tap.wait_received(len(payload), timeout=30)
    sender.join(WAIT)
    assert len(got) == len(payload)
    assert hashlib.sha256(got).hexdigest() == hashlib.sha256(payload).hexdigest()
    assert connection.received == len(payload)


def test_send_delivers_exactly_and_counts(make_peer, open_connection):
    peer = make_peer()
    connection, _ = open_connection(peer)
    client = peer.wait_for_client()
    payloads = [b"PING\r\n", b"\x00", bytes(range(256)), pattern(1024 * 1024, b"send")]

    for payload in payloads:
        connection.send(payload)

    expected = b"".join(payloads)
    assert client.wait_for_size(len(expected)) == expected
    assert connection.sent == len(expected)
    assert connection.received == 0


def test_sends_from_two_threads_never_interleave(make_peer, open_connection):
    block_size, blocks_per_thread = 256 * 1024, 8
    peer = make_peer()
    connection, _ = open_connection(peer)
    client = peer.wait_for_client()
    errors: list[BaseException] = []

    def send_blocks(fill: bytes) -> None:
        try:
            for _ in range(blocks_per_thread):
                connection.send(fill * block_size)
        except BaseException as error:  # reported by the assertion below
            errors.append(error)

    threads = [
        threading.Thread(target=send_blocks, args=(fill,), daemon=True) for fill in (b"A", b"B")
    ]
    for thread in threads:
        thread.start()
    total = 2 * block_size * blocks_per_thread
    got = client.wait_for_size(total, timeout=30)
    for thread in threads:
        thread.join(WAIT)

    assert errors == []
    assert len(got) == total
    blocks = [got[start : start + block_size] for start in range(0, total, block_size)]
    assert all(block in (b"A" * block_size, b"B" * block_size) for block in blocks), (
        "two payloads interleaved on the wire"
    )
    assert connection.sent == total


# ---- ending ----------------------------------------------------------------------------------


def test_peer_closing_is_an_orderly_close(make_peer, open_connection):
    peer = make_peer(greeting=b"bye\n")
    connection, tap = open_connection(peer)
    client = peer.wait_for_client()
    tap.wait_received(4)
    connection.send(b"ok\n")
    client.wait_for(b"ok\n")
    client.close()

    closed = tap.wait_closed()
    assert closed.failed is False
    assert "closed by peer" in closed.reason
    assert (closed.received, closed.sent) == (4, 3)
    assert connection.wait_closed(WAIT)
    assert not connection.is_open
    assert connection.failure is None
    with pytest.raises(SendError, match="not connected"):
        connection.send(b"too late\n")
    assert connection.sent == 3


def test_peer_reset_is_a_failure(make_peer, open_connection):
    peer = make_peer()
    connection, tap = open_connection(peer)
    client = peer.wait_for_client()
    connection.send(b"hello\n")
    client.wait_for(b"hello\n")
    client.reset()

    closed = tap.wait_closed()
    assert closed.failed is True
    assert closed.reason == "connection reset by peer"
    assert connection.failure == "connection reset by peer"
    assert not connection.is_open
    with pytest.raises(SendError):
        connection.send(b"after the reset\n")


def test_close_from_our_side(make_peer, open_connection):
    peer = make_peer(greeting=b"hi\n")
    connection, tap = open_connection(peer)
    client = peer.wait_for_client()
    tap.wait_received(3)
    connection.send(b"last words\n")
    client.wait_for(b"last words\n")

    connection.close()

    assert client.wait_closed() == b"last words\n", "the peer must see end of stream"
    closed = tap.wait_closed()
    assert closed.reason == "connection closed"
    assert closed.failed is False
    assert (closed.received, closed.sent) == (3, 11)
    assert not connection.is_open
    assert connection.failure is None
    with pytest.raises(SendError, match="not connected"):
        connection.send(b"x")


def test_closed_is_posted_once_whoever_closes_first(make_peer, open_connection):
    peer = make_peer()
    connection, tap = open_connection(peer)
    peer.wait_for_client().close()
    tap.wait_closed()

    connection.close()
    connection.close()

    assert len(tap.of_type(Closed)) == 1
    assert tap.of_type(Closed)[0].reason == "connection closed by peer"


def test_closed_is_posted_before_the_connection_reports_closed(make_peer):
    """Batch mode waits with wait_closed() (and close() waits the same way), then stops the
    display at once. Closed must already be posted by then, or the display stops first and
    loses the final status line and the flush of a held-back partial character."""
    peer = make_peer()
    states_when_posted: list[bool] = []
    holder: dict[str, TcpConnection] = {}

    def post(event):
        if isinstance(event, Closed):
            # Still "open" here means wait_closed() cannot have returned before this post.
            states_when_posted.append(holder["connection"].is_open)

    holder["connection"] = TcpConnection.open(
        peer.host, peer.port, conn_id=1, post=post, timeout=WAIT
    )
    try:
        peer.wait_for_client().close()
        assert holder["connection"].wait_closed(WAIT)
    finally:
        holder["connection"].close()
    assert states_when_posted == [True], "the connection reported closed before Closed was posted"


# ---- the small functions of netrepl.transport ------------------------------------------------


@pytest.mark.parametrize(
    ("host", "port", "expected"),
    [
        ("127.0.0.1", 80, "127.0.0.1:80"),
        ("example.com", 443, "example.com:443"),
        ("::1", 6379, "[::1]:6379"),
        ("fe80::1%eth0", 22, "[fe80::1%eth0]:22"),
    ],
)
def test_format_address(host, port, expected):
    assert format_address(host, port) == expected


@pytest.mark.parametrize(("text", "port"), [("1", 1), ("80", 80), ("6379", 6379), ("65535", 65535)])
def test_parse_port_numbers(text, port):
    assert parse_port(text) == port


def test_parse_port_service_name():
    try:
        expected = socket.getservbyname("http", "tcp")
    except OSError:
        pytest.skip("no services database on this machine")
    assert parse_port("http") == expected == 80


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("0", "out of range"),
        ("65536", "out of range"),
        ("99999999999999999999", "out of range"),
        ("-1", "unknown port"),
        ("nosuchservice", "unknown port"),
        ("", "unknown port"),
        ("8o", "unknown port"),
        ("²", "port"),  # str.isdigit() says yes, int() says no: still a usage error
    ],
)
def test_parse_port_rejects_with_usage_error(text, message):
    with pytest.raises(UsageError, match=message):
        parse_port(text)


def test_describe_gaierror_is_unknown_host_with_detail():
    error = socket.gaierror(socket.EAI_NONAME, "Name or service not known")
    assert describe_os_error(error) == "unknown host (name or service not known)"


@pytest.mark.parametrize(
    ("error", "reason"),
    [
        (TimeoutError("timed out"), "timed out"),
        (
            ConnectionResetError(errno.ECONNRESET, "Connection reset by peer"),
            "connection reset by peer",
        ),
        (ConnectionResetError(), "connection reset by peer"),
        (ConnectionRefusedError(errno.ECONNREFUSED, "Connection refused"), "connection refused"),
        (OSError(errno.EHOSTUNREACH, "No route to host"), "no route to host"),
        (OSError("plain message"), "plain message"),
        (OSError(), "OSError"),
    ],
)
def test_describe_os_error(error, reason):
    assert describe_os_error(error) == reason
