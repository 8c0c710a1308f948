"""StreamServer on loopback: many raw clients, targets, kick, limits, bad clients, unix sockets."""

from __future__ import annotations

import gc
import itertools
import os
import socket
import stat
import warnings

import pytest

from netrepl.errors import ConnectError, SendError, UsageError
from netrepl.events import Closed, Connected, Listening, Noticed, Received, Sent
from netrepl.transport import Endpoint, open_transport
from tests.net import transport_helpers
from tests.net.conftest import WAIT, EventTap
from tests.net.transport_helpers import (
    in_thread,
    payload,
    port_of,
    recv_exact,
    recv_until_eof,
    reset,
    wait_noticed,
)
from tests.peers import has_ipv6_loopback

raw = transport_helpers.raw
transports = transport_helpers.transports

needs_ipv6 = pytest.mark.skipif(not has_ipv6_loopback(), reason="no IPv6 loopback (::1)")


def listen(host: str | None = "127.0.0.1", **options: object) -> Endpoint:
    return Endpoint(listen=True, host=host, port=0, **options)  # type: ignore[arg-type]


@pytest.fixture
def server(transports):
    """A listener on 127.0.0.1, port 0: (server, tap)."""
    return transports.open(listen())


def accepted(tap: EventTap, count: int) -> list[Connected]:
    """Wait until `count` clients have been accepted; return their Connected events."""
    tap.wait_until(lambda: len(tap.of_type(Connected)) >= count, f"{count} accepted clients")
    return tap.of_type(Connected)


def join(server, tap: EventTap, raw, count: int) -> list[tuple[socket.socket, int]]:
    """Connect `count` more raw clients, one by one; return their (socket, conn id) pairs."""
    port = port_of(server.address)
    clients = []
    for index in range(len(tap.of_type(Connected)), len(tap.of_type(Connected)) + count):
        sock = raw.tcp("127.0.0.1", port)
        event = accepted(tap, index + 1)[index]
        assert event.peer == f"127.0.0.1:{sock.getsockname()[1]}"
        clients.append((sock, event.conn))
    return clients


# ---- listening -------------------------------------------------------------------------------


def test_listening_on_port_zero_reports_the_real_port(server):
    listener, tap = server
    port = port_of(listener.address)
    assert port != 0 and listener.address == f"127.0.0.1:{port}"
    assert tap.snapshot() == [Listening(f"127.0.0.1:{port}", "tcp", False)]
    assert listener.state == "listening, 0 clients"
    assert listener.is_open and not listener.can_send and listener.peers() == []
    with pytest.raises(SendError, match="no client connected yet"):
        listener.send(b"x", "all", as_hex=False)


def test_a_busy_port_is_a_connect_error(raw):
    busy = raw.listener()
    port = busy.getsockname()[1]
    with pytest.raises(ConnectError) as caught:
        open_transport(
            Endpoint(listen=True, host="127.0.0.1", port=port), EventTap(), itertools.count(1)
        )
    message = str(caught.value)
    assert message.startswith(f"cannot listen on 127.0.0.1:{port}: address already in use")
    assert "\n" not in message


def test_a_busy_port_is_a_plain_reason(raw):
    busy = raw.listener()
    port = busy.getsockname()[1]
    with pytest.raises(ConnectError) as caught:
        open_transport(
            Endpoint(listen=True, host="127.0.0.1", port=port), EventTap(), itertools.count(1)
        )
    assert str(caught.value) == f"cannot listen on 127.0.0.1:{port}: address already in use"


def test_a_failed_listen_leaves_no_open_sockets(raw):
    busy = raw.listener()
    gc.collect()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ResourceWarning)
        with pytest.raises(ConnectError):
            open_transport(
                Endpoint(listen=True, host="127.0.0.1", port=busy.getsockname()[1]),
                EventTap(),
                itertools.count(1),
            )
        gc.collect()
    leaks = [str(w.message) for w in caught if issubclass(w.category, ResourceWarning)]
    assert leaks == []


@needs_ipv6
def test_listen_on_ipv6_loopback(raw, transports):
    listener, tap = transports.open(listen("::1"))
    port = port_of(listener.address)
    assert listener.address == f"[::1]:{port}"
    sock = raw.tcp("::1", port)
    [event] = accepted(tap, 1)
    assert event.peer == f"[::1]:{sock.getsockname()[1]}"
    assert event.local == f"[::1]:{port}"
    sock.sendall(b"v6")
    assert tap.wait_received(2) == b"v6"
    listener.send(b"back", "all", as_hex=False)
    assert recv_exact(sock, 4) == b"back"


def test_listen_on_all_interfaces_accepts_loopback(raw, transports):
    listener, tap = transports.open(listen(None))
    port = port_of(listener.address)
    assert listener.address == f"*:{port}"
    sock = raw.tcp("127.0.0.1", port)
    accepted(tap, 1)
    sock.sendall(b"via v4")
    assert tap.wait_received(6) == b"via v4"
    listener.send(b"ok", "all", as_hex=False)
    assert recv_exact(sock, 2) == b"ok"


@pytest.mark.skipif(not socket.has_dualstack_ipv6(), reason="no dual-stack IPv6 sockets")
def test_all_interfaces_shows_ipv4_clients_as_ipv4(raw, transports):
    listener, tap = transports.open(listen(None))
    sock = raw.tcp("127.0.0.1", port_of(listener.address))
    [event] = accepted(tap, 1)
    assert event.peer == f"127.0.0.1:{sock.getsockname()[1]}"
    assert listener.peers()[0].address == event.peer


# ---- many clients ----------------------------------------------------------------------------


def test_three_clients_get_ids_and_their_data_is_labelled(server, raw):
    listener, tap = server
    clients = join(listener, tap, raw, 3)
    assert [conn for _, conn in clients] == [1, 2, 3]
    assert all(event.accepted and event.protocol == "tcp" for event in tap.of_type(Connected))
    assert listener.state == "listening, 3 clients"

    for sock, conn in clients:
        sock.sendall(f"from {conn}\n".encode())
    for _, conn in clients:
        assert tap.wait_received(7, conn=conn) == f"from {conn}\n".encode()
    assert listener.received == 21


def test_send_to_all_reaches_every_client_exactly(server, raw):
    listener, tap = server
    clients = join(listener, tap, raw, 3)
    data = bytes(range(256)) * 4
    listener.send(data, "all", as_hex=False)
    for sock, _ in clients:
        assert recv_exact(sock, len(data)) == data

    sent = tap.of_type(Sent)
    assert sorted(event.conn for event in sent) == [1, 2, 3]
    assert [event.echo for event in sent].count(True) == 1, "the echo is shown once"
    for sock, _ in clients:
        sock.settimeout(0.2)
        with pytest.raises(TimeoutError):
            sock.recv(1)  # nothing more than the one copy


def test_send_to_one_id_reaches_only_that_client(server, raw):
    listener, tap = server
    clients = join(listener, tap, raw, 3)
    listener.send(b"just you", 2, as_hex=False)
    listener.send(b"!", "all", as_hex=False)  # a marker that everyone gets after it
    assert recv_exact(clients[1][0], 9) == b"just you!"
    assert recv_exact(clients[0][0], 1) == b"!"
    assert recv_exact(clients[2][0], 1) == b"!"
    assert tap.of_type(Sent)[0].conn == 2


def test_unknown_targets_are_refused(server, raw):
    listener, tap = server
    join(listener, tap, raw, 1)
    with pytest.raises(SendError, match="no client #9"):
        listener.send(b"x", 9, as_hex=False)
    with pytest.raises(UsageError):
        listener.send(b"x", ("127.0.0.1", 9), as_hex=False)
    with pytest.raises(UsageError, match="no client #9"):
        listener.kick(9)
    assert tap.of_type(Sent) == []


def test_kick_closes_only_that_client(server, raw):
    listener, tap = server
    clients = join(listener, tap, raw, 3)
    listener.kick(2)

    assert recv_until_eof(clients[1][0]) == b"", "the kicked client reads end of stream"
    closed = tap.wait_closed(2)
    assert closed.failed is False
    assert [event.conn for event in tap.of_type(Closed)] == [2]
    with pytest.raises(SendError):
        listener.send(b"x", 2, as_hex=False)

    listener.send(b"still here", "all", as_hex=False)
    assert recv_exact(clients[0][0], 10) == b"still here"
    assert recv_exact(clients[2][0], 10) == b"still here"
    assert [info.conn for info in listener.peers()] == [1, 3]


def test_max_clients_refuses_the_next_and_keeps_the_rest(raw, transports):
    listener, tap = transports.open(listen(max_clients=2))
    clients = join(listener, tap, raw, 2)
    third = raw.tcp("127.0.0.1", port_of(listener.address))

    notice = wait_noticed(tap, "refused")
    assert notice.level == "error"
    assert "already 2 clients (--max-clients 2)" in notice.text
    assert recv_until_eof(third) == b"", "the refused client is hung up on"
    assert len(tap.of_type(Connected)) == 2

    listener.send(b"both", "all", as_hex=False)
    for sock, conn in clients:
        assert recv_exact(sock, 4) == b"both"
        sock.sendall(b"alive")
        assert tap.wait_received(5, conn=conn) == b"alive"

    # A place freed is a place taken.
    clients[0][0].close()
    tap.wait_closed(clients[0][1])
    fourth = raw.tcp("127.0.0.1", port_of(listener.address))
    fourth_event = accepted(tap, 3)[2]
    listener.send(b"hi", fourth_event.conn, as_hex=False)
    assert recv_exact(fourth, 2) == b"hi"


def test_bad_clients_end_only_their_own_connection(server, raw):
    listener, tap = server
    (resetter, r_id), (halfer, h_id), (vanisher, v_id) = join(listener, tap, raw, 3)

    resetter.sendall(b"boom")
    tap.wait_received(4, conn=r_id)
    reset(resetter)
    closed = tap.wait_closed(r_id)
    assert closed.failed is True and closed.reason == "connection reset by peer"

    halfer.sendall(b"half")
    halfer.shutdown(socket.SHUT_WR)
    assert tap.wait_received(4, conn=h_id) == b"half"
    closed = tap.wait_closed(h_id)
    # Measured behaviour: the peer's end of stream ends the connection (no reply after it).
    assert closed.failed is False and closed.reason == "connection closed by peer"
    assert recv_until_eof(halfer) == b""

    vanisher.close()
    assert tap.wait_closed(v_id).failed is False

    # The listener survives all three and still accepts and serves.
    assert listener.is_open and listener.peers() == []
    [(fresh, fresh_id)] = join(listener, tap, raw, 1)
    fresh.sendall(b"next")
    assert tap.wait_received(4, conn=fresh_id) == b"next"
    listener.send(b"served", fresh_id, as_hex=False)
    assert recv_exact(fresh, 6) == b"served"
    assert listener.clients[fresh_id].wait_drained(WAIT)
    assert listener.received == 12 and listener.sent == 6, "totals include departed clients"


def test_peers_lists_address_and_counts(server, raw):
    listener, tap = server
    (first, first_id), (second, second_id) = join(listener, tap, raw, 2)
    first.sendall(b"12345")
    tap.wait_received(5, conn=first_id)
    listener.send(b"abc", second_id, as_hex=False)
    assert recv_exact(second, 3) == b"abc"
    assert listener.clients[second_id].wait_drained(WAIT)

    info = {peer.conn: peer for peer in listener.peers()}
    assert set(info) == {first_id, second_id}
    assert info[first_id].address == f"127.0.0.1:{first.getsockname()[1]}"
    assert (info[first_id].received, info[first_id].sent) == (5, 0)
    assert (info[second_id].received, info[second_id].sent) == (0, 3)
    assert all(peer.state == "open" and peer.connected_for >= 0 for peer in info.values())


def stall(listener, raw, tap):
    """Two clients: the first reads nothing and has more than HIGH_WATER queued, the second
    read all of it. Returns the second's socket."""
    _, (healthy, _) = join(listener, tap, raw, 2)
    big = payload(20 * 1024 * 1024, seed=5)
    listener.send(big, "all", as_hex=False)
    assert recv_exact(healthy, len(big), timeout=20) == big
    return healthy


def test_a_stalled_client_delays_a_line_but_never_the_others_copy(server, raw):
    listener, tap = server
    healthy = stall(listener, raw, tap)

    sender, outcome = in_thread(lambda: listener.send(b"ping", "all", as_hex=False))
    # The client that reads gets the line at once, while the send waits for the other one.
    assert recv_exact(healthy, 4) == b"ping"
    sender.join(0.3)
    assert sender.is_alive(), "the stalled client was given up at once: its copy has a hole"
    listener.kick(1)
    sender.join(WAIT)
    assert outcome == [None]
    wait_noticed(tap, "#1 did not get it: its connection closed")


def test_a_client_not_reading_for_the_whole_wait_is_left_out_and_named(server, raw, monkeypatch):
    monkeypatch.setattr("netrepl.transport.delivery.SEND_WAIT_SECONDS", 0.5)
    listener, tap = server
    healthy = stall(listener, raw, tap)
    listener.send(b"ping", "all", as_hex=False)
    assert recv_exact(healthy, 4) == b"ping"
    wait_noticed(tap, "#1 did not get it: not reading for 0.5 s")
    # Only to the stalled client: nothing can take it, so the send fails whole.
    with pytest.raises(SendError, match="is not reading"):
        listener.send(b"pong", 1, as_hex=False)


def test_ctrl_c_stops_a_send_waiting_for_a_stalled_client_within_200_ms(server, raw):
    listener, tap = server
    healthy = stall(listener, raw, tap)
    sender, outcome = in_thread(lambda: listener.send(b"ping", "all", as_hex=False))
    assert recv_exact(healthy, 4) == b"ping"
    listener.cancel.set()
    sender.join(0.2)
    assert not sender.is_alive(), "Ctrl-C did not stop the wait within 200 ms"
    assert len(outcome) == 1 and isinstance(outcome[0], SendError)
    assert "interrupted" in str(outcome[0])


def test_close_ends_every_client_and_the_listener(raw, transports):
    listener, tap = transports.open(listen())
    port = port_of(listener.address)
    clients = join(listener, tap, raw, 2)
    listener.close()

    for sock, _ in clients:
        assert recv_until_eof(sock) == b""
    assert sorted(event.conn for event in tap.of_type(Closed)) == [1, 2]
    assert tap.snapshot()[-1] == Noticed(f"stopped listening on 127.0.0.1:{port}", "status")
    assert not listener.is_open and listener.state == "closed"
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=WAIT).close()
    listener.close()  # twice is harmless
    assert len(tap.of_type(Closed)) == 2


# ---- unix sockets ----------------------------------------------------------------------------


@pytest.fixture
def socket_path(tmp_path):
    path = tmp_path / "s.sock"
    if len(str(path)) > 100:  # sun_path holds 108 bytes
        pytest.skip("the temporary directory's path is too long for a unix socket")
    return str(path)


def test_unix_listener_with_a_client(transports, socket_path):
    listener, tap = transports.open(Endpoint(protocol="unix", path=socket_path, listen=True))
    assert listener.address == f"unix:{socket_path}"
    assert stat.S_ISSOCK(os.stat(socket_path).st_mode)
    client, client_tap = transports.open(Endpoint(protocol="unix", path=socket_path))

    [event] = accepted(tap, 1)
    assert event.protocol == "unix" and event.peer == f"unix:pid {os.getpid()}"
    assert client_tap.of_type(Connected)[0].peer == f"unix:{socket_path}"
    client.send(b"to server", "all", as_hex=False)
    assert tap.wait_received(9) == b"to server"
    listener.send(b"to client", "all", as_hex=False)
    assert client_tap.wait_received(9) == b"to client"

    client.send_eof("all")
    assert tap.wait_closed(event.conn).failed is False
    assert client_tap.wait_closed(1).failed is False


def test_unix_stale_socket_file_is_replaced(transports, socket_path):
    dead = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    dead.bind(socket_path)
    dead.listen()
    dead.close()  # a listener that died: the file stays, nobody listens
    assert os.path.exists(socket_path)

    _, tap = transports.open(Endpoint(protocol="unix", path=socket_path, listen=True))
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(WAIT)
        sock.connect(socket_path)
        accepted(tap, 1)
        sock.sendall(b"fresh")
        assert tap.wait_received(5) == b"fresh"


def test_unix_live_socket_is_not_stolen(transports, socket_path):
    transports.open(Endpoint(protocol="unix", path=socket_path, listen=True))
    with pytest.raises(ConnectError, match="cannot listen on unix:"):
        open_transport(
            Endpoint(protocol="unix", path=socket_path, listen=True),
            EventTap(),
            itertools.count(1),
        )
    assert os.path.exists(socket_path)


def test_unix_regular_file_is_not_removed(transports, socket_path):
    with open(socket_path, "w") as file:
        file.write("precious")
    with pytest.raises(ConnectError):
        open_transport(
            Endpoint(protocol="unix", path=socket_path, listen=True), EventTap(), itertools.count(1)
        )
    with open(socket_path) as file:
        assert file.read() == "precious"


def test_unix_socket_file_is_removed_on_close(transports, socket_path):
    listener, _ = transports.open(Endpoint(protocol="unix", path=socket_path, listen=True))
    assert os.path.exists(socket_path)
    listener.close()
    assert not os.path.exists(socket_path)


def test_received_is_labelled_per_client_under_interleaving(server, raw):
    listener, tap = server
    clients = join(listener, tap, raw, 3)
    for round_ in range(10):
        for sock, conn in clients:
            sock.sendall(f"{conn}:{round_};".encode())
    for _, conn in clients:
        expected = "".join(f"{conn}:{n};" for n in range(10)).encode()
        assert tap.wait_received(len(expected), conn=conn) == expected
    assert all(isinstance(e, Received) and not e.datagram for e in tap.of_type(Received))


def test_eof_to_all_skips_a_client_already_half_closed(server, raw):
    listener, tap = server
    (first, first_id), (second, _) = join(listener, tap, raw, 2)
    listener.send_eof(first_id)
    assert recv_until_eof(first) == b""
    listener.send_eof("all")  # the first is half-closed already: only the second gets it
    assert recv_until_eof(second) == b""
    with pytest.raises(SendError, match="half-closed"):
        listener.send_eof(first_id)
