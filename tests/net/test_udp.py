"""DatagramTransport on loopback: one send is one datagram, senders get ids, errors are kept."""

from __future__ import annotations

import itertools
import socket

import pytest

from netrepl.errors import ConnectError, SendError
from netrepl.events import Closed, Connected, Listening, Noticed, Received, Sent
from netrepl.transport import Endpoint, open_transport
from netrepl.transport.udp import MAX_DATAGRAM
from tests.net import transport_helpers
from tests.net.conftest import EventTap
from tests.net.transport_helpers import noticed, payload, port_of, wait_noticed
from tests.peers import has_ipv6_loopback

raw = transport_helpers.raw
transports = transport_helpers.transports

needs_ipv6 = pytest.mark.skipif(not has_ipv6_loopback(), reason="no IPv6 loopback (::1)")


def udp(host: str | None, port: int, **options: object) -> Endpoint:
    return Endpoint(protocol="udp", host=host, port=port, **options)  # type: ignore[arg-type]


def free_udp_port(host: str = "127.0.0.1") -> int:
    """A loopback UDP port nothing is bound to (datagrams to it are refused by ICMP)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as probe:
        probe.bind((host, 0))
        return probe.getsockname()[1]


def datagrams(tap: EventTap, conn: int | None = None) -> list[bytes]:
    return [e.data for e in tap.of_type(Received) if conn is None or e.conn == conn]


def wait_datagrams(tap: EventTap, count: int, conn: int | None = None) -> list[bytes]:
    tap.wait_until(lambda: len(datagrams(tap, conn)) >= count, f"{count} datagrams")
    return datagrams(tap, conn)


@pytest.fixture
def pair(transports):
    """A UDP listener on 127.0.0.1 and a UDP client of it: (listener, l_tap, client, c_tap)."""
    listener, l_tap = transports.open(udp("127.0.0.1", 0, listen=True))
    client, c_tap = transports.open(udp("127.0.0.1", port_of(listener.address)))
    return listener, l_tap, client, c_tap


# ---- one send, one datagram ------------------------------------------------------------------


def test_listener_and_client_announce_themselves(pair):
    listener, l_tap, client, c_tap = pair
    port = port_of(listener.address)
    assert l_tap.snapshot() == [Listening(f"127.0.0.1:{port}", "udp", False)]
    [connected] = c_tap.snapshot()
    assert connected.conn == 1 and connected.peer == f"127.0.0.1:{port}"
    assert connected.protocol == "udp" and not connected.accepted
    assert client.state == "ready" and client.can_send and client.default_target() == "all"
    assert listener.state == "listening, 0 senders" and not listener.can_send
    assert listener.default_target() == "last"


def test_each_send_is_one_datagram_with_the_exact_payload(pair):
    listener, l_tap, client, c_tap = pair
    data = bytes(range(256))
    client.send(data, "all", as_hex=False)
    assert wait_datagrams(l_tap, 1) == [data]
    [received] = l_tap.of_type(Received)
    assert received.datagram is True

    [sender] = l_tap.of_type(Connected)
    assert sender.accepted and sender.protocol == "udp"
    assert received.conn == sender.conn
    assert c_tap.of_type(Sent) == [Sent(1, data, False)]
    assert client.sent == 256 and listener.received == 256


def test_fifty_datagrams_keep_their_boundaries(pair):
    listener, l_tap, client, _ = pair
    sent = [f"#{n}:".encode() + b"x" * n for n in range(50)]
    for data in sent:
        client.send(data, "all", as_hex=False)
    assert wait_datagrams(l_tap, 50) == sent
    assert len(l_tap.of_type(Connected)) == 1, "one sender, announced once"
    assert listener.received == sum(map(len, sent))


def test_empty_and_largest_datagrams(pair):
    _, l_tap, client, _ = pair
    biggest = payload(MAX_DATAGRAM, seed=6)
    client.send(b"", "all", as_hex=False)
    client.send(biggest, "all", as_hex=False)
    assert wait_datagrams(l_tap, 2) == [b"", biggest]


def test_oversize_datagram_is_refused_whole(pair):
    _, l_tap, client, c_tap = pair
    with pytest.raises(SendError, match="too large"):
        client.send(b"x" * 70000, "all", as_hex=False)
    assert c_tap.of_type(Sent) == [] and client.sent == 0
    client.send(b"after", "all", as_hex=False)
    assert wait_datagrams(l_tap, 1) == [b"after"], "the refused datagram never went out"


# ---- replies and targets ---------------------------------------------------------------------


def test_listener_replies_to_the_last_sender_by_default(pair, raw):
    listener, l_tap, client, c_tap = pair
    port = port_of(listener.address)
    other = raw.udp()
    client.send(b"first", "all", as_hex=False)
    wait_datagrams(l_tap, 1)
    other.sendto(b"second", ("127.0.0.1", port))
    wait_datagrams(l_tap, 2)

    listener.send(b"to the last", listener.default_target(), as_hex=False)
    assert other.recvfrom(65536) == (b"to the last", ("127.0.0.1", port))

    client.send(b"third", "all", as_hex=False)
    wait_datagrams(l_tap, 3)
    listener.send(b"to the client", "last", as_hex=False)
    assert wait_datagrams(c_tap, 1) == [b"to the client"]
    assert c_tap.of_type(Received)[0].conn == 1 and c_tap.of_type(Received)[0].datagram


def test_senders_get_ids_and_are_listed(transports, raw):
    listener, tap = transports.open(udp("127.0.0.1", 0, listen=True))
    port = port_of(listener.address)
    first, second = raw.udp(), raw.udp()
    first.sendto(b"aaa", ("127.0.0.1", port))
    wait_datagrams(tap, 1)
    second.sendto(b"bbbbb", ("127.0.0.1", port))
    first.sendto(b"a", ("127.0.0.1", port))
    wait_datagrams(tap, 3)

    ids = {e.peer: e.conn for e in tap.of_type(Connected)}
    first_label = f"127.0.0.1:{first.getsockname()[1]}"
    second_label = f"127.0.0.1:{second.getsockname()[1]}"
    assert ids == {first_label: 1, second_label: 2}
    assert datagrams(tap, 1) == [b"aaa", b"a"] and datagrams(tap, 2) == [b"bbbbb"]
    assert listener.state == "listening, 2 senders"

    listener.send(b"only two", 2, as_hex=False)
    assert second.recvfrom(65536)[0] == b"only two"
    info = {peer.conn: peer for peer in listener.peers()}
    assert (info[1].address, info[1].received, info[1].sent) == (first_label, 4, 0)
    assert (info[2].address, info[2].received, info[2].sent) == (second_label, 5, 8)
    assert all(peer.state == "udp" for peer in info.values())

    listener.send(b"everyone", "all", as_hex=False)
    assert first.recvfrom(65536)[0] == b"everyone"
    assert second.recvfrom(65536)[0] == b"everyone"
    assert [e.echo for e in tap.of_type(Sent)] == [True, True, False]
    with pytest.raises(SendError, match="no sender #7"):
        listener.send(b"x", 7, as_hex=False)


def test_address_target_reaches_a_raw_socket(transports, raw):
    listener, tap = transports.open(udp("127.0.0.1", 0, listen=True))
    with pytest.raises(SendError, match="no datagram received yet"):
        listener.send(b"x", "last", as_hex=False)
    target = raw.udp()
    target_port = target.getsockname()[1]
    listener.send(b"unasked", ("127.0.0.1", target_port), as_hex=False)

    data, source = target.recvfrom(65536)
    assert data == b"unasked" and source == ("127.0.0.1", port_of(listener.address))
    [sent] = tap.of_type(Sent)
    assert sent.data == b"unasked"

    target.sendto(b"answer", ("127.0.0.1", port_of(listener.address)))
    wait_datagrams(tap, 1)
    [announced] = tap.of_type(Connected)
    assert announced.peer == f"127.0.0.1:{target_port}" and announced.accepted
    assert tap.of_type(Received)[0].conn == announced.conn == sent.conn, "the same id"


def test_an_address_sent_to_is_no_sender_until_a_datagram_comes_from_it(transports, raw):
    """Issue 10: `/to HOST:PORT` and a line announced `#3 datagrams from HOST:PORT` and
    counted a sender, though nothing came from there."""
    listener, tap = transports.open(udp("127.0.0.1", 0, listen=True))
    port = port_of(listener.address)
    sender, destination = raw.udp(), raw.udp()
    sender.sendto(b"real", ("127.0.0.1", port))
    wait_datagrams(tap, 1)
    destination_label = f"127.0.0.1:{destination.getsockname()[1]}"

    for line in (b"one", b"two"):
        listener.send(line, ("127.0.0.1", destination.getsockname()[1]), as_hex=False)
        assert destination.recvfrom(100)[0] == line
    assert [e.peer for e in tap.of_type(Connected)] == [f"127.0.0.1:{sender.getsockname()[1]}"]
    assert listener.state == "listening, 1 sender"
    assert [peer.conn for peer in listener.peers()] == [1]
    notice = wait_noticed(tap, "sending datagrams to")
    assert notice.level == "status" and destination_label in notice.text
    assert len(noticed(tap, "sending datagrams to")) == 1, "said once per address"
    listener.send(b"to all senders", "all", as_hex=False)
    listener.send(b"marker", ("127.0.0.1", destination.getsockname()[1]), as_hex=False)
    assert sender.recvfrom(100)[0] == b"to all senders"
    assert destination.recvfrom(100)[0] == b"marker", "'all' did not include it"

    destination.sendto(b"now a sender", ("127.0.0.1", port))
    wait_datagrams(tap, 2)
    [_, joined] = tap.of_type(Connected)
    assert joined.peer == destination_label and joined.accepted
    assert joined.at == tap.of_type(Received)[-1].at, "announced as of its first datagram"
    assert listener.state == "listening, 2 senders"
    info = {peer.conn: peer for peer in listener.peers()}
    assert info[joined.conn].sent == len(b"one") + len(b"two") + len(b"marker")
    assert {e.conn for e in tap.of_type(Sent) if e.data != b"to all senders"} == {joined.conn}


def test_listen_on_all_interfaces_shows_ipv4_senders_plainly(transports, raw):
    listener, tap = transports.open(udp(None, 0, listen=True))
    port = port_of(listener.address)
    assert listener.address == f"*:{port}"
    sender = raw.udp()
    sender.sendto(b"hello", ("127.0.0.1", port))
    wait_datagrams(tap, 1)
    assert tap.of_type(Connected)[0].peer == f"127.0.0.1:{sender.getsockname()[1]}"
    listener.send(b"reply", "last", as_hex=False)
    assert sender.recvfrom(65536)[0] == b"reply"


@needs_ipv6
def test_ipv6_loopback(transports):
    listener, l_tap = transports.open(udp("::1", 0, listen=True))
    port = port_of(listener.address)
    assert listener.address == f"[::1]:{port}"
    client, c_tap = transports.open(udp("::1", port))
    assert c_tap.of_type(Connected)[0].peer == f"[::1]:{port}"
    client.send(b"v6 datagram", "all", as_hex=False)
    assert wait_datagrams(l_tap, 1) == [b"v6 datagram"]
    assert l_tap.of_type(Connected)[0].peer.startswith("[::1]:")
    listener.send(b"v6 reply", "last", as_hex=False)
    assert wait_datagrams(c_tap, 1) == [b"v6 reply"]


# ---- errors ----------------------------------------------------------------------------------


def test_port_unreachable_is_reported_and_not_fatal(transports, raw):
    port = free_udp_port()
    client, tap = transports.open(udp("127.0.0.1", port))
    client.send(b"anyone?", "all", as_hex=False)

    notice = wait_noticed(tap, "unreachable")
    assert notice.level == "error" and f"127.0.0.1:{port}" in notice.text
    assert client.is_open and client.can_send and tap.of_type(Closed) == []

    # Still usable: once something listens there, the next datagram arrives.
    late = raw.track(socket.socket(socket.AF_INET, socket.SOCK_DGRAM))
    late.bind(("127.0.0.1", port))
    client.send(b"now?", "all", as_hex=False)
    assert late.recvfrom(65536)[0] == b"now?"


def test_unknown_host_is_a_connect_error():
    with pytest.raises(ConnectError) as caught:
        open_transport(udp("nosuch.invalid", 9), EventTap(), itertools.count(1))
    assert str(caught.value).startswith("cannot send to nosuch.invalid:9: unknown host")


def test_close_posts_closed_and_stops_sending(pair):
    listener, l_tap, client, c_tap = pair
    client.send(b"one", "all", as_hex=False)
    wait_datagrams(l_tap, 1)
    listener.send(b"two!", "last", as_hex=False)
    wait_datagrams(c_tap, 1)

    client.close()
    assert c_tap.of_type(Closed) == [Closed(1, "closed", 4, 3)]
    assert not client.is_open and client.state == "closed"
    with pytest.raises(SendError):
        client.send(b"x", "all", as_hex=False)
    client.close()
    assert len(c_tap.of_type(Closed)) == 1

    listener.close()
    assert l_tap.snapshot()[-1] == Noticed(f"stopped listening on {listener.address}", "status")


# ---- broadcast -------------------------------------------------------------------------------


def test_broadcast_client_needs_the_broadcast_option():
    with pytest.raises(ConnectError, match="--broadcast"):
        open_transport(udp("127.255.255.255", 9), EventTap(), itertools.count(1))


def test_listener_send_to_broadcast_needs_the_broadcast_option(transports):
    listener, _ = transports.open(udp("127.0.0.1", 0, listen=True))
    with pytest.raises(SendError, match="--broadcast"):
        listener.send(b"x", ("127.255.255.255", 9), as_hex=False)
    assert listener.sent == 0


def test_a_refused_broadcast_posts_no_sent(transports):
    listener, tap = transports.open(udp("127.0.0.1", 0, listen=True))
    with pytest.raises(SendError):
        listener.send(b"x", ("127.255.255.255", 9), as_hex=False)
    assert tap.of_type(Sent) == []


def test_broadcast_option_allows_sending(transports):
    client, tap = transports.open(udp("127.255.255.255", free_udp_port(), broadcast=True))
    client.send(b"hello all", "all", as_hex=False)
    listener, _ = transports.open(udp("127.0.0.1", 0, listen=True, broadcast=True))
    listener.send(b"hello all", ("127.255.255.255", free_udp_port()), as_hex=False)
    assert client.sent == 9 and listener.sent == 9
    assert [e.data for e in tap.of_type(Sent)] == [b"hello all"]


def test_batch_listener_sending_to_an_address_shows_no_new_sender(start_netrepl, raw):
    run = start_netrepl("-u", "-l", "127.0.0.1", "0", "--linger", "0.3")
    port = run.listening_port("UDP")
    sender, destination = raw.udp(), raw.udp()
    sender_port, destination_port = sender.getsockname()[1], destination.getsockname()[1]
    sender.sendto(b"hello", ("127.0.0.1", port))
    run.wait_stdout(b"hello\n")

    run.write(b"/to 127.0.0.1:%d\nfor you\n/clients\n" % destination_port)
    assert destination.recvfrom(100)[0] == b"for you\n"
    result = run.finish()
    assert result.returncode == 0, result.stderr
    stderr = result.stderr.decode()
    assert f"#1 datagrams from 127.0.0.1:{sender_port}\n" in stderr
    assert f"datagrams from 127.0.0.1:{destination_port}" not in stderr
    assert f"sending datagrams to 127.0.0.1:{destination_port} (a sender once" in stderr
    rows = [line.split() for line in stderr.splitlines() if line.startswith("    #")]
    assert [row[:2] for row in rows] == [["#1", f"127.0.0.1:{sender_port}"]], stderr
