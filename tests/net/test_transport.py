"""Stream transport ordering guarantees, and the small address functions of netrepl.transport."""

from __future__ import annotations

import errno
import itertools
import socket
import threading

import pytest

from netrepl.errors import UsageError
from netrepl.events import Closed
from netrepl.transport import (
    Endpoint,
    describe_os_error,
    format_address,
    format_sockaddr,
    open_transport,
    parse_host_port,
    parse_port,
)
from tests.net.conftest import WAIT, EventTap


@pytest.fixture
def connect(make_peer):
    """connect(post=None) -> (client transport, tap, peer client): closed after the test."""
    opened = []

    def open_(post=None):
        peer = make_peer()
        tap = EventTap(post)
        transport = open_transport(
            Endpoint(host=peer.host, port=peer.port), tap, itertools.count(1)
        )
        opened.append(transport)
        return transport, tap, peer.wait_for_client()

    yield open_
    for transport in opened:
        transport.close()


def test_sends_from_two_threads_never_interleave(connect):
    block_size, blocks_per_thread = 256 * 1024, 8
    transport, _, client = connect()
    errors: list[BaseException] = []

    def send_blocks(fill: bytes) -> None:
        try:
            for _ in range(blocks_per_thread):
                transport.send(fill * block_size, "all", as_hex=False)
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
    assert transport.wait_for(lambda: transport.sent == total, WAIT)


def test_closed_is_posted_before_the_transport_reports_closed(connect):
    """Batch mode waits for the transport to stop being sendable, then stops the display at
    once. Closed must already be posted by then, or the display stops first and loses the
    final status line and the flush of a held-back partial character."""
    states_when_posted: list[bool] = []
    holder = {}

    def post(event):
        if isinstance(event, Closed):
            # Still sendable here means no waiter can have seen the close before this post.
            states_when_posted.append(holder["transport"].can_send)

    transport, tap, client = connect(post)
    holder["transport"] = transport
    client.close()
    tap.wait_closed()
    assert transport.wait_for(lambda: not transport.can_send, WAIT)
    assert states_when_posted == [True], "the transport reported closed before Closed was posted"


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


@pytest.mark.parametrize(
    ("address", "shown"),
    [
        (("127.0.0.1", 80), "127.0.0.1:80"),
        (("::1", 80, 0, 0), "[::1]:80"),
        (("::ffff:10.0.0.7", 502, 0, 0), "10.0.0.7:502"),
        ("/tmp/dev.sock", "unix:/tmp/dev.sock"),
        (b"/tmp/b.sock", "unix:/tmp/b.sock"),
        ("", "unix:(unnamed)"),
    ],
)
def test_format_sockaddr(address, shown):
    assert format_sockaddr(address) == shown


@pytest.mark.parametrize(
    ("text", "parsed"),
    [
        ("10.0.0.1:502", ("10.0.0.1", 502)),
        ("[::1]:7", ("::1", 7)),
        ("example.com:80", ("example.com", 80)),
    ],
)
def test_parse_host_port(text, parsed):
    assert parse_host_port(text) == parsed


@pytest.mark.parametrize(
    ("text", "parsed"), [("10.0.0.1", ("10.0.0.1", 0)), ("::1", ("::1", 0)), ("[::1]", ("::1", 0))]
)
def test_parse_host_port_without_port_when_optional(text, parsed):
    assert parse_host_port(text, port_optional=True) == parsed


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("10.0.0.1", "give HOST:PORT"),
        (":80", "no host"),
        ("[::1", "write \\[IPv6\\]:PORT"),
        ("[::1]x", "write \\[IPv6\\]:PORT"),
        ("h:99999", "out of range"),
    ],
)
def test_parse_host_port_errors(text, message):
    with pytest.raises(UsageError, match=message):
        parse_host_port(text)
