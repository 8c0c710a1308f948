"""Two transports as the two legs of a relay (a later issue joins them in netrepl): a listener
and an outbound client opened on one session link (one event post, one id counter), with the
joining done here by hand. Every event names its connection, the ids never collide across the
two, each leg has its own I/O thread, and closing one leg leaves the other working."""

from __future__ import annotations

import itertools

from netrepl.events import Closed, Connected, Received
from netrepl.transport import Endpoint
from tests.net import transport_helpers
from tests.net.conftest import EventTap
from tests.net.transport_helpers import port_of, recv_exact

raw = transport_helpers.raw
transports = transport_helpers.transports


def test_a_listener_and_a_client_are_two_legs_of_one_session(transports, raw, make_peer):
    echo = make_peer(echo=True)
    ids = itertools.count(1)
    tap = EventTap()
    inbound, _ = transports.open(Endpoint(host="127.0.0.1", port=0, listen=True), tap, ids)
    outbound, _ = transports.open(Endpoint(host=echo.host, port=echo.port), tap, ids)
    assert inbound.loop is not outbound.loop

    client = raw.tcp("127.0.0.1", port_of(inbound.address))
    tap.wait_until(lambda: len(tap.of_type(Connected)) == 2, "both legs connected")
    accepted = next(e for e in tap.of_type(Connected) if e.accepted)
    dialled = next(e for e in tap.of_type(Connected) if not e.accepted)
    assert accepted.conn != dialled.conn
    assert {peer.conn for peer in inbound.peers()} == {accepted.conn}
    assert {peer.conn for peer in outbound.peers()} == {dialled.conn}

    # The relay's work, by hand: what the listener's client says goes out on the other leg,
    # and what comes back goes to that client; the events say which connection is which.
    client.sendall(b"through the relay\n")
    asked = tap.wait_received(len(b"through the relay\n"), accepted.conn)
    outbound.send(asked, "all", as_hex=False)
    answer = tap.wait_received(len(asked), dialled.conn)
    inbound.send(answer, accepted.conn, as_hex=False)
    assert recv_exact(client, len(asked)) == b"through the relay\n"
    assert all(e.conn in (accepted.conn, dialled.conn) for e in tap.of_type(Received))

    outbound.close()
    closed = tap.wait_closed(dialled.conn)
    assert closed.conn == dialled.conn
    assert inbound.can_send and inbound.is_open, "closing one leg leaves the other"
    inbound.send(b"still here\n", accepted.conn, as_hex=False)
    assert recv_exact(client, len(b"still here\n")) == b"still here\n"
    assert not [e for e in tap.of_type(Closed) if e.conn == accepted.conn]
