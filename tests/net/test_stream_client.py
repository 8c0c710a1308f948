"""StreamClient on loopback TCP: bytes both ways, errors, half-close, backpressure, reconnect."""

from __future__ import annotations

import contextlib
import itertools
import socket
import sys
import threading

import pytest

from netrepl.errors import ConnectError, SendError
from netrepl.events import Closed, Connected, HalfClosed, Noticed, Received, Sent
from netrepl.transport import Endpoint, open_transport
from netrepl.transport.stream import HIGH_WATER
from tests.net import transport_helpers
from tests.net.conftest import WAIT, EventTap
from tests.net.transport_helpers import (
    in_thread,
    noticed,
    payload,
    recv_exact,
    recv_until_eof,
    reset,
    wait_noticed,
)
from tests.peers import free_port, has_ipv6_loopback

raw = transport_helpers.raw
transports = transport_helpers.transports

needs_ipv6 = pytest.mark.skipif(not has_ipv6_loopback(), reason="no IPv6 loopback (::1)")


def tcp(host: str, port: int, **options: object) -> Endpoint:
    return Endpoint(host=host, port=port, connect_timeout=WAIT, **options)  # type: ignore[arg-type]


@pytest.fixture
def connected(raw, transports):
    """connected(**endpoint options) -> (client, tap, peer socket) on 127.0.0.1."""

    def connect(**options: object):
        listener = raw.listener()
        client, tap = transports.open(tcp("127.0.0.1", listener.getsockname()[1], **options))
        return client, tap, raw.accept(listener)

    return connect


# ---- connecting ------------------------------------------------------------------------------


def test_connect_posts_connected_with_both_ends(connected):
    client, tap, peer = connected()

    [event] = tap.snapshot()
    assert isinstance(event, Connected)
    assert event.conn == 1 and event.protocol == "tcp" and not event.accepted
    assert event.peer == "127.0.0.1:{}".format(*peer.getsockname()[1:2])
    assert event.local == "{}:{}".format(*peer.getpeername())
    assert client.state == "connected" and client.is_open and client.can_send
    assert client.failure is None
    [info] = client.peers()
    assert (info.conn, info.address, info.received, info.sent) == (1, event.peer, 0, 0)


def test_refused_is_a_one_line_connect_error():
    port = free_port()
    tap = EventTap()
    with pytest.raises(ConnectError) as caught:
        open_transport(tcp("127.0.0.1", port), tap, itertools.count(1))
    assert str(caught.value) == f"cannot connect to 127.0.0.1:{port}: connection refused"
    assert tap.snapshot() == [], "a failed connect posts nothing"


def test_unknown_host_is_a_connect_error():
    with pytest.raises(ConnectError) as caught:
        open_transport(tcp("nosuch.invalid", 80), EventTap(), itertools.count(1))
    message = str(caught.value)
    assert message.startswith("cannot connect to nosuch.invalid:80: unknown host"), message
    assert "\n" not in message


@needs_ipv6
def test_ipv6_loopback(raw, transports):
    listener = raw.listener("::1")
    port = listener.getsockname()[1]
    client, tap = transports.open(tcp("::1", port))
    peer = raw.accept(listener)

    assert tap.of_type(Connected)[0].peer == f"[::1]:{port}"
    client.send(b"over v6\n", "all", as_hex=False)
    assert recv_exact(peer, 8) == b"over v6\n"
    peer.sendall(b"back")
    assert tap.wait_received(4) == b"back"


def test_family_inet_resolves_localhost_to_ipv4(raw, transports):
    listener = raw.listener("127.0.0.1")
    port = listener.getsockname()[1]
    _, tap = transports.open(tcp("localhost", port, family=socket.AF_INET))
    raw.accept(listener)
    assert tap.of_type(Connected)[0].peer == f"127.0.0.1:{port}"


@needs_ipv6
def test_family_inet6_resolves_localhost_to_ipv6(raw, transports):
    try:
        socket.getaddrinfo("localhost", 0, socket.AF_INET6, socket.SOCK_STREAM)
    except socket.gaierror:
        pytest.skip("localhost has no IPv6 address on this machine")
    listener = raw.listener("::1")
    port = listener.getsockname()[1]
    _, tap = transports.open(tcp("localhost", port, family=socket.AF_INET6))
    raw.accept(listener)
    assert tap.of_type(Connected)[0].peer == f"[::1]:{port}"


def test_family_inet6_refuses_an_ipv4_address():
    with pytest.raises(ConnectError) as caught:
        open_transport(
            tcp("127.0.0.1", free_port(), family=socket.AF_INET6), EventTap(), itertools.count(1)
        )
    assert str(caught.value).startswith("cannot connect to 127.0.0.1:")


def test_source_any_port_binds_the_local_address(connected):
    _, tap, peer = connected(source=("127.0.0.1", 0))
    host, port = peer.getpeername()
    assert host == "127.0.0.1" and port != 0
    assert tap.of_type(Connected)[0].local == f"127.0.0.1:{port}"


def test_source_fixed_port_is_what_the_peer_sees(connected):
    source_port = free_port()
    _, tap, peer = connected(source=("127.0.0.1", source_port))
    assert peer.getpeername() == ("127.0.0.1", source_port)
    assert tap.of_type(Connected)[0].local == f"127.0.0.1:{source_port}"


def test_source_port_in_use_is_a_connect_error(raw):
    busy = raw.listener()
    busy_port = busy.getsockname()[1]
    target = raw.listener()
    with pytest.raises(ConnectError) as caught:
        open_transport(
            tcp("127.0.0.1", target.getsockname()[1], source=("127.0.0.1", busy_port)),
            EventTap(),
            itertools.count(1),
        )
    assert str(caught.value).startswith(f"cannot bind the local end to 127.0.0.1:{busy_port}: ")


def test_keepalive_and_nodelay_are_set_on_the_socket(connected):
    client, _, _ = connected(keepalive=True, nodelay=True)
    sock = client.channel._sock  # private, read only: no peer-visible effect to check
    assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) == 1
    assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 1
    if hasattr(socket, "TCP_KEEPIDLE"):
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE) == 60


def test_keepalive_and_nodelay_are_off_by_default(connected):
    client, _, _ = connected()
    sock = client.channel._sock
    assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) == 0
    assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 0


# ---- data ------------------------------------------------------------------------------------


def test_exact_bytes_both_ways(connected):
    client, tap, peer = connected()
    outgoing = [b"PING\r\n", b"\x00", bytes(range(256)), b"\xff\xfe\r\n"]
    for data in outgoing:
        client.send(data, "all", as_hex=False)
    expected = b"".join(outgoing)
    assert recv_exact(peer, len(expected)) == expected

    incoming = bytes(range(255, -1, -1)) + b"\r\nend"
    peer.sendall(incoming)
    assert tap.wait_received(len(incoming)) == incoming
    assert all(event.conn == 1 and event.data for event in tap.of_type(Received))
    sent = tap.of_type(Sent)
    assert [event.data for event in sent] == outgoing
    assert all(event.conn == 1 and not event.as_hex and event.echo for event in sent)
    assert client.sent == len(expected) and client.received == len(incoming)


def test_as_hex_is_carried_on_sent(connected):
    client, tap, peer = connected()
    client.send(b"\x01\x02", "all", as_hex=True)
    assert recv_exact(peer, 2) == b"\x01\x02"
    assert tap.of_type(Sent)[0].as_hex is True


def test_sent_is_posted_before_the_reply(connected):
    client, tap, peer = connected()
    for round_ in range(20):
        line = f"line {round_}\n".encode()
        client.send(line, "all", as_hex=False)
        assert recv_exact(peer, len(line)) == line
        peer.sendall(b"re: " + line)
    tap.wait_received(sum(len(f"re: line {n}\n") for n in range(20)))

    # Each reply was provoked by a send, so that send's Sent must come before it.
    sends_seen = 0
    replies = b""
    for event in tap.snapshot():
        if isinstance(event, Sent):
            sends_seen += 1
        elif isinstance(event, Received):
            replies += event.data
            assert replies.count(b"\n") <= sends_seen, tap.snapshot()
    assert sends_seen == 20


def test_five_megabytes_arrive_whole(connected):
    client, tap, peer = connected()
    data = payload(5 * 1024 * 1024, seed=1)
    sender, outcome = in_thread(lambda: peer.sendall(data))
    assert tap.wait_received(len(data), timeout=20) == data
    sender.join(WAIT)
    assert outcome == [None]
    assert client.received == len(data)

    back = payload(5 * 1024 * 1024, seed=2)
    client.send(back, "all", as_hex=False)
    assert recv_exact(peer, len(back), timeout=20) == back
    client.channel.wait_drained(WAIT)
    assert client.sent == len(back)


# ---- half-close, reset, close ----------------------------------------------------------------


def test_send_eof_half_closes_and_still_reads(connected):
    client, tap, peer = connected()
    client.send(b"request", "all", as_hex=False)
    client.send_eof("all")

    assert recv_until_eof(peer) == b"request", "the peer reads our data, then end of stream"
    tap.wait_until(lambda: bool(tap.of_type(HalfClosed)), "HalfClosed")
    assert tap.of_type(HalfClosed)[0].conn == 1
    assert client.state == "half-closed" and client.is_open and not client.can_send

    peer.sendall(b"reply after eof")
    assert tap.wait_received(15) == b"reply after eof"
    with pytest.raises(SendError, match="half-closed"):
        client.send(b"more", "all", as_hex=False)
    with pytest.raises(SendError):
        client.send_eof("all")

    peer.close()
    closed = tap.wait_closed(1)
    assert closed.failed is False and "closed by peer" in closed.reason
    assert (closed.received, closed.sent) == (15, 7)


def test_peer_reset_is_a_failed_close(connected):
    client, tap, peer = connected()
    peer.sendall(b"last words")
    tap.wait_received(10)
    reset(peer)

    closed = tap.wait_closed(1)
    assert closed.failed is True
    assert closed.reason == "connection reset by peer"
    assert client.failure == "connection reset by peer"
    assert client.state == "closed" and not client.is_open and not client.can_send
    with pytest.raises(SendError, match="not connected"):
        client.send(b"x", "all", as_hex=False)


def test_peer_close_is_an_orderly_close(connected):
    client, tap, peer = connected()
    peer.close()
    closed = tap.wait_closed(1)
    assert closed.failed is False and closed.reason == "connection closed by peer"
    assert client.failure is None and not client.is_open
    assert client.peers() == []


def test_close_posts_closed_once(connected):
    client, tap, peer = connected()
    client.send(b"bye", "all", as_hex=False)
    client.close()
    assert recv_until_eof(peer) == b"bye", "queued data goes out before the close"
    assert len(tap.of_type(Closed)) == 1
    closed = tap.of_type(Closed)[0]
    assert closed.failed is False and closed.sent == 3
    client.close()  # a second close is harmless and silent
    assert len(tap.of_type(Closed)) == 1
    assert client.state == "closed" and not client.is_open


def test_a_peer_that_stops_reading_cannot_block_a_send_forever(connected):
    client, tap, peer = connected()
    big = payload(20 * 1024 * 1024, seed=3)

    # The whole payload is queued at once: the call returns although the peer reads nothing.
    first, outcome = in_thread(lambda: client.send(big, "all", as_hex=False))
    first.join(WAIT)
    assert outcome == [None], "send of 20 MB to a peer that is not reading blocked"

    # Now more than HIGH_WATER is queued: the next send waits for the peer, not for ever.
    assert client.channel._queued > HIGH_WATER
    second, second_outcome = in_thread(lambda: client.send(b"tail", "all", as_hex=False))
    second.join(0.3)
    assert second.is_alive(), "a send past HIGH_WATER should wait for the peer to read"

    # Once the peer reads, everything arrives whole and in order and the waiting send returns.
    assert recv_exact(peer, len(big) + 4, timeout=30) == big + b"tail"
    second.join(WAIT)
    assert second_outcome == [None]
    assert len(tap.of_type(Sent)) == 2


def test_close_releases_a_send_waiting_on_a_stalled_peer(connected):
    client, tap, _ = connected()
    client.send(payload(20 * 1024 * 1024, seed=4), "all", as_hex=False)
    waiting, outcome = in_thread(lambda: client.send(b"tail", "all", as_hex=False))
    waiting.join(0.3)
    assert waiting.is_alive()

    client.close()
    waiting.join(WAIT)
    assert not waiting.is_alive(), "close() left a sender blocked"
    assert len(outcome) == 1 and isinstance(outcome[0], SendError)
    closed = tap.wait_closed(1)
    assert "queued bytes not sent" in closed.reason
    assert len(tap.of_type(Closed)) == 1


# ---- reconnect -------------------------------------------------------------------------------


def test_reconnects_to_a_listener_back_on_the_same_port(raw, transports):
    listener = raw.listener()
    port = listener.getsockname()[1]
    client, tap = transports.open(tcp("127.0.0.1", port, reconnect=0.1))
    first = raw.accept(listener)
    first.sendall(b"one")
    tap.wait_received(3)

    listener.close()
    first.close()
    tap.wait_closed(1)
    notice = wait_noticed(tap, "reconnecting")
    assert notice.level == "status"
    assert notice.text.startswith(f"reconnecting to 127.0.0.1:{port} in 0.1 s (attempt 1)")
    assert client.is_open, "still open while reconnecting"

    listener = raw.listener(port=port)
    second = raw.accept(listener)
    tap.wait_until(lambda: len(tap.of_type(Connected)) == 2, "a second Connected")
    again = tap.of_type(Connected)[1]
    assert again.conn == 2 and again.peer == f"127.0.0.1:{port}"
    assert client.wait_for(lambda: client.state == "connected", WAIT)

    client.send(b"two", "all", as_hex=False)
    assert recv_exact(second, 3) == b"two"
    second.sendall(b"back")
    assert tap.wait_received(4, conn=2) == b"back"
    assert client.received == 7 and client.sent == 3, "totals count every connection"


def test_reconnect_keeps_trying_until_a_listener_appears(raw, transports):
    port = free_port()
    client, tap = transports.open(tcp("127.0.0.1", port, reconnect=0.1))
    # The first failure is reported, not raised, and the client keeps trying.
    assert tap.snapshot()[0] == Noticed(
        f"cannot connect to 127.0.0.1:{port}: connection refused", "error"
    )
    wait_noticed(tap, "attempt 1: cannot connect")
    assert client.state == "reconnecting" and client.is_open and not client.can_send
    with pytest.raises(SendError, match="reconnecting"):
        client.send(b"x", "all", as_hex=False)

    listener = raw.listener(port=port)
    peer = raw.accept(listener)
    tap.wait_until(lambda: bool(tap.of_type(Connected)), "Connected")
    assert client.wait_for(lambda: client.state == "connected", WAIT)
    client.send(b"hi", "all", as_hex=False)
    assert recv_exact(peer, 2) == b"hi"


def test_reconnect_backs_off(transports):
    port = free_port()
    _, tap = transports.open(tcp("127.0.0.1", port, reconnect=0.1))
    wait_noticed(tap, "(attempt 3)")
    delays = [n.text.split(" in ")[1].split(" ")[0] for n in noticed(tap, "reconnecting to")]
    assert delays[:3] == ["0.1", "0.2", "0.4"]


def test_close_while_reconnecting_stops_it(raw, transports):
    port = free_port()
    client, tap = transports.open(tcp("127.0.0.1", port, reconnect=0.1))
    wait_noticed(tap, "attempt 1: cannot connect")
    client.close()
    assert client.wait_for(lambda: not client.is_open, WAIT)
    assert client.state == "closed"

    # A listener that appears now gets no connection from the closed client.
    listener = raw.listener(port=port)
    listener.settimeout(1.0)
    attempts = len(noticed(tap, "reconnecting to"))
    with pytest.raises(TimeoutError):
        listener.accept()
    assert len(noticed(tap, "reconnecting to")) == attempts
    assert tap.of_type(Connected) == []


def test_close_after_a_reconnect_posts_closed_once(raw, transports):
    listener = raw.listener()
    port = listener.getsockname()[1]
    client, tap = transports.open(tcp("127.0.0.1", port, reconnect=0.1))
    raw.accept(listener).close()
    tap.wait_closed(1)
    raw.accept(listener)
    tap.wait_until(lambda: len(tap.of_type(Connected)) == 2, "a second Connected")

    client.close()
    assert [event.conn for event in tap.of_type(Closed)] == [1, 2]
    assert not client.is_open
    with pytest.raises(TimeoutError):
        listener.settimeout(0.5)
        listener.accept()


def test_send_works_as_soon_as_a_reconnect_is_announced(raw, transports):
    listener = raw.listener()
    port = listener.getsockname()[1]
    outcome: list[object] = []
    client = None

    def react(event: object) -> None:
        # Whoever sees the new Connected (a script, the session) may send at once.
        if isinstance(event, Connected) and event.conn == 2:
            try:
                outcome.append(client.send(b"hello again", "all", as_hex=False))
            except SendError as error:
                outcome.append(error)

    client, tap = transports.open(
        tcp("127.0.0.1", port, reconnect=0.1), tap=EventTap(forward=react)
    )
    raw.accept(listener).close()
    tap.wait_closed(1)
    second = raw.accept(listener)
    tap.wait_until(lambda: len(tap.of_type(Connected)) == 2, "a second Connected")
    assert outcome == [None]
    assert recv_exact(second, 11) == b"hello again"


def test_reconnect_survives_peers_that_hang_up_at_once(raw, transports):
    listener = raw.listener()
    port = listener.getsockname()[1]

    def hang_up_on_everyone() -> None:
        with contextlib.suppress(OSError):
            for _ in range(1000):  # bounded; ends when the listener is shut down
                listener.accept()[0].close()

    hanger = threading.Thread(target=hang_up_on_everyone, daemon=True)
    hanger.start()
    switch_interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # widen the race so the test fails (or passes) reliably
    try:
        client, tap = transports.open(tcp("127.0.0.1", port, reconnect=0.1))
        # Every connection is hung up on at once; the client must keep coming back.
        for count in range(1, 51):
            if not client.wait_for(lambda n=count: len(tap.of_type(Connected)) > n, 2.0):
                pytest.fail(f"reconnecting stopped after {count} connections: {client.state}")
    finally:
        sys.setswitchinterval(switch_interval)
        listener.shutdown(socket.SHUT_RDWR)
        hanger.join(WAIT)
