"""Relay flows -> pcap: each flow is ONE conversation between the client's address and the
upstream's, read back by test_pcap's independent reader and walked as its two ends would.

The transcripts here follow the order in which a relay posts its events (transport/relay.py
and the relay parts of transport/stream.py): the client leg's `Connected`, the upstream
leg's once it is up, `Received` on each leg as its peer sends, `HalfClosed(by_peer)` when a
peer ends, then netrepl's `HalfClosed` on the other leg as it passes the end on.
"""

from __future__ import annotations

import shutil
import subprocess

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from netrepl.events import Closed, Connected, HalfClosed, Listening, Received, Sent
from netrepl.pcap import PcapExport, export_pcap, file_header
from tests.core.test_pcap import (
    ACK,
    FIN,
    PSH,
    RST,
    SYN,
    Packet,
    check_conversation,
    entries,
    flows,
    read_pcap,
)

CLIENT = ("127.0.0.1", 50123)
LISTENER = "127.0.0.1:5020"
UPSTREAM = ("127.0.0.1", 502)
SOURCE = "127.0.0.1:40000"
"""netrepl's own end of the upstream leg: never in the conversation."""

# Modbus/TCP, read holding registers: transaction 1, unit 1, 2 registers from 0 -> 1234, 5678.
MODBUS_REQUEST = bytes.fromhex("0001 0000 0006 01 03 0000 0002")
MODBUS_RESPONSE = bytes.fromhex("0001 0000 0007 01 03 04 04d2 162e")


HTTP_CLIENT, HTTP_UPSTREAM = ("::1", 41000), ("::1", 80)
HTTP_REQUEST = b"GET /index.html HTTP/1.0\r\nHost: device\r\nUser-Agent: test\r\n\r\n"
HTTP_REPLY = b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\nhello"


def relay_opened(at: float, flow: int = 1, client_conn: int = 1, upstream_conn: int = 2):
    """The records of a flow coming up: its client, then (a little later) its upstream."""
    return [
        (
            at,
            Connected(
                client_conn, _text(CLIENT), LISTENER, accepted=True, flow=flow, side="client"
            ),
        ),
        (
            at + 0.05,
            Connected(upstream_conn, _text(UPSTREAM), SOURCE, flow=flow, side="upstream"),
        ),
    ]


def _text(end: tuple[str, int]) -> str:
    return f"[{end[0]}]:{end[1]}" if ":" in end[0] else f"{end[0]}:{end[1]}"


def client_closes_first(at: float, client_conn: int = 1, upstream_conn: int = 2):
    """The client closes; the relay half-closes the upstream, which closes in turn; then the
    relay ends the client leg (stream.py: _peer_sent_eof, end_writing, _leg_closed)."""
    return [
        (at, HalfClosed(client_conn, by_peer=True)),
        (at, HalfClosed(upstream_conn)),
        (at + 0.01, Closed(upstream_conn, "connection closed by peer", 0, 0)),
        (at + 0.01, HalfClosed(client_conn)),
        (at + 0.01, Closed(client_conn, "connection closed", 0, 0)),
    ]


def ends(packet: Packet) -> tuple[tuple[str, int], tuple[str, int]]:
    return (packet.src, packet.sport), (packet.dst, packet.dport)


C2U, U2C = (CLIENT, UPSTREAM), (UPSTREAM, CLIENT)


# ---- one flow, packet by packet ------------------------------------------------------------


def test_relayed_modbus_exchange_is_one_conversation_from_client_to_upstream():
    packets = read_pcap(
        export_pcap(
            entries(
                (10.0, Listening(LISTENER, "tcp", upstream=_text(UPSTREAM))),
                *relay_opened(10.1),
                (10.2, Received(1, MODBUS_REQUEST)),
                (10.25, Received(2, MODBUS_RESPONSE)),
                *client_closes_first(10.3),
            )
        )
    )
    # Only the client's and the upstream's addresses: neither the listener's port nor
    # netrepl's own source port to the upstream shows.
    assert {ends(p) for p in packets} == {C2U, U2C}
    assert [(ends(p), p.flags) for p in packets] == [
        (C2U, SYN),
        (U2C, SYN | ACK),
        (C2U, ACK),
        (C2U, PSH | ACK),
        (U2C, PSH | ACK),
        (C2U, FIN | ACK),  # the client's end, as the upstream got it
        (U2C, ACK),
        (U2C, FIN | ACK),  # the upstream's close, passed on to the client
        (C2U, ACK),
    ]
    # The client's SYN when it came; the upstream's answer when netrepl reached it.
    assert [p.at for p in packets[:3]] == [10.1, 10.15, 10.15]
    streams = check_conversation(packets, CLIENT)
    assert streams == {"c2s": MODBUS_REQUEST, "s2c": MODBUS_RESPONSE}


def test_relayed_http_exchange_in_pieces_and_an_ordinary_connection_beside_it():
    # An HTTP/1.0 request and its reply, each read in pieces (a request split mid-header),
    # over IPv6; the same log holds an ordinary connection, exported as it always was.
    client, upstream = HTTP_CLIENT, HTTP_UPSTREAM
    request, reply = HTTP_REQUEST, HTTP_REPLY
    packets = read_pcap(
        export_pcap(
            entries(
                (1.0, Connected(7, "127.0.0.1:6379", "127.0.0.1:50000")),
                (
                    1.0,
                    Connected(8, _text(client), "[::1]:8080", accepted=True, flow=1, side="client"),
                ),
                (1.1, Connected(9, "[::1]:80", "[::1]:39000", flow=1, side="upstream")),
                (1.2, Received(8, request[:20])),
                (1.21, Sent(7, b"PING\r\n", False)),
                (1.22, Received(8, request[20:])),
                (1.23, Received(7, b"+PONG\r\n")),
                (1.3, Received(9, reply[:30])),
                (1.31, Received(9, reply[30:])),
                *client_closes_first(1.4, client_conn=8, upstream_conn=9),
                (1.5, Closed(7, "connection closed by peer", 7, 6)),
            )
        )
    )
    grouped = flows(packets)
    assert len(grouped) == 2
    relayed = grouped[frozenset({client, upstream})]
    assert all(p.version == 6 for p in relayed)
    assert check_conversation(relayed, client) == {"c2s": request, "s2c": reply}
    ordinary = grouped[frozenset({("127.0.0.1", 50000), ("127.0.0.1", 6379)})]
    assert check_conversation(ordinary, ("127.0.0.1", 50000)) == {
        "c2s": b"PING\r\n",
        "s2c": b"+PONG\r\n",
    }
    assert [p.flags for p in ordinary] == [
        SYN, SYN | ACK, ACK, PSH | ACK, PSH | ACK, FIN | ACK, FIN | ACK, ACK
    ]  # fmt: skip


# ---- injected bytes ------------------------------------------------------------------------


def test_injected_bytes_belong_to_the_peer_that_received_them():
    # `/to upstream` sends a second request on the upstream leg: the upstream received it
    # from the client's side, so it is client -> upstream; its reply reaches the client
    # (forwarded); `/to client` bytes are upstream -> client. Order: as logged.
    injected = bytes.fromhex("0002 0000 0006 01 03 0010 0001")
    its_reply = bytes.fromhex("0002 0000 0005 01 03 02 0007")
    to_client = b"\x00\x09 typed at the client"
    packets = read_pcap(
        export_pcap(
            entries(
                *relay_opened(1.0),
                (1.2, Received(1, MODBUS_REQUEST)),
                (1.3, Received(2, MODBUS_RESPONSE)),
                (1.4, Sent(2, injected, True)),
                (1.5, Received(2, its_reply)),
                (1.6, Sent(1, to_client, False)),
                *client_closes_first(2.0),
            )
        )
    )
    assert {ends(p) for p in packets} == {C2U, U2C}
    streams = check_conversation(packets, CLIENT)
    assert streams == {
        "c2s": MODBUS_REQUEST + injected,
        "s2c": MODBUS_RESPONSE + its_reply + to_client,
    }
    data = [(ends(p), p.payload) for p in packets if p.payload]
    assert data == [
        (C2U, MODBUS_REQUEST),
        (U2C, MODBUS_RESPONSE),
        (C2U, injected),
        (U2C, its_reply),
        (U2C, to_client),
    ]


# ---- half-closes, closes and resets ---------------------------------------------------------


def test_a_client_half_close_is_its_fin_to_the_upstream_when_netrepl_passes_it_on():
    # HTTP/1.0 style: the client ends after its request; bytes injected to the upstream were
    # still queued then, and went before the FIN netrepl passed on: the upstream got them.
    packets = read_pcap(
        export_pcap(
            entries(
                *relay_opened(1.0),
                (1.1, Received(1, b"GET / HTTP/1.0\r\n\r\n")),
                (1.2, HalfClosed(1, by_peer=True)),
                (1.21, Sent(2, b"X-Injected: 1\r\n", False)),
                (1.22, HalfClosed(2)),
                (1.3, Received(2, b"HTTP/1.0 200 OK\r\n\r\nbody")),
                (1.4, HalfClosed(2, by_peer=True)),
                (1.4, HalfClosed(1)),
                (1.4, Closed(1, "connection closed", 18, 23)),
                (1.4, Closed(2, "connection closed", 23, 33)),
            )
        )
    )
    assert [(ends(p), p.flags, p.payload) for p in packets[3:]] == [
        (C2U, PSH | ACK, b"GET / HTTP/1.0\r\n\r\n"),
        (C2U, PSH | ACK, b"X-Injected: 1\r\n"),
        (C2U, FIN | ACK, b""),
        (U2C, ACK, b""),
        (U2C, PSH | ACK, b"HTTP/1.0 200 OK\r\n\r\nbody"),
        (U2C, FIN | ACK, b""),
        (C2U, ACK, b""),
    ]
    assert [p.at for p in packets if p.flags & FIN] == [1.22, 1.4]
    check_conversation(packets, CLIENT)


def test_an_upstream_half_close_ends_only_its_direction():
    # The upstream ends first; the client goes on sending, then closes (stream.py: the
    # relay half-closes the client leg, and ends the upstream leg once the client closed).
    packets = read_pcap(
        export_pcap(
            entries(
                *relay_opened(1.0),
                (1.1, Received(2, b"banner\n")),
                (1.2, HalfClosed(2, by_peer=True)),
                (1.2, HalfClosed(1)),
                (1.3, Received(1, b"still talking\n")),
                (1.4, Closed(1, "connection closed by peer", 14, 7)),
                (1.4, HalfClosed(2)),
                (1.4, Closed(2, "connection closed", 7, 14)),
            )
        )
    )
    assert [(ends(p), p.flags) for p in packets[3:]] == [
        (U2C, PSH | ACK),
        (U2C, FIN | ACK),
        (C2U, ACK),
        (C2U, PSH | ACK),  # after the upstream's FIN: its direction stayed open
        (C2U, FIN | ACK),
        (U2C, ACK),
    ]
    assert check_conversation(packets, CLIENT) == {"c2s": b"still talking\n", "s2c": b"banner\n"}


@pytest.mark.parametrize(
    ("failed_leg", "rst_from"), [(1, CLIENT), (2, UPSTREAM)], ids=["client", "upstream"]
)
def test_a_reset_on_either_leg_is_one_rst_from_that_peer(failed_leg, rst_from):
    other = 3 - failed_leg
    side = "client" if failed_leg == 1 else "upstream"
    packets = read_pcap(
        export_pcap(
            entries(
                *relay_opened(1.0),
                (1.1, Received(1, MODBUS_REQUEST)),
                (1.2, Closed(failed_leg, "connection reset by peer", 0, 0, failed=True)),
                # The relay resets the other leg: the same RST, passed on.
                (1.2, Closed(other, f"reset, as the {side} leg failed", 0, 0, failed=True)),
            )
        )
    )
    resets = [p for p in packets if p.flags & RST]
    assert len(resets) == 1 and resets[0] is packets[-1]
    assert ((resets[0].src, resets[0].sport), resets[0].flags) == (rst_from, RST | ACK)
    assert check_conversation(packets, CLIENT) == {"c2s": MODBUS_REQUEST, "s2c": b""}


def test_a_reset_after_one_direction_ended_is_still_a_reset():
    packets = read_pcap(
        export_pcap(
            entries(
                *relay_opened(1.0),
                (1.1, HalfClosed(1, by_peer=True)),
                (1.1, HalfClosed(2)),
                (1.2, Closed(2, "connection reset by peer", 0, 0, failed=True)),
                (1.2, Closed(1, "reset, as the upstream leg failed", 0, 0, failed=True)),
            )
        )
    )
    assert [(ends(p), p.flags) for p in packets[3:]] == [
        (C2U, FIN | ACK),
        (U2C, ACK),
        (U2C, RST | ACK),
    ]
    check_conversation(packets, CLIENT)


def test_bytes_after_their_direction_ended_are_left_out_and_counted():
    # The upstream leg closed (the upstream got its FIN); the client, half-closed by the
    # relay, still sends: the relay has nowhere to pass it, and the pcap cannot show it.
    export = PcapExport()
    blob = file_header()
    for entry in entries(
        *relay_opened(1.0),
        (1.1, Received(1, b"request")),
        (1.2, Closed(2, "connection closed", 7, 0)),
        (1.2, HalfClosed(1)),
        (1.3, Received(1, b"too late")),
        (1.4, Closed(1, "connection closed by peer", 15, 0)),
    ):
        blob += export.feed(entry)
    packets = read_pcap(blob)
    assert check_conversation(packets, CLIENT) == {"c2s": b"request", "s2c": b""}
    assert export.after_end == len(b"too late")
    assert sum(1 for p in packets if p.flags & FIN) == 2


# ---- flows that never joined, and several at once -------------------------------------------


def test_a_client_whose_upstream_never_connected_is_its_connection_to_the_listener():
    export = PcapExport()
    blob = file_header()
    for entry in entries(
        (1.0, Connected(1, _text(CLIENT), LISTENER, accepted=True, flow=1, side="client")),
        (3.0, Closed(1, "connection closed", 0, 0)),
    ):
        blob += export.feed(entry)
    packets = read_pcap(blob)
    listener = ("127.0.0.1", 5020)
    assert [(ends(p), p.flags) for p in packets] == [
        ((CLIENT, listener), SYN),
        ((listener, CLIENT), SYN | ACK),
        ((CLIENT, listener), ACK),
        ((listener, CLIENT), FIN | ACK),  # netrepl closed it
        ((CLIENT, listener), FIN | ACK),
        ((listener, CLIENT), ACK),
    ]
    assert [p.at for p in packets] == [1.0] * 3 + [3.0] * 3
    assert export.connections == 1
    check_conversation(packets, CLIENT)


def test_interleaved_flows_are_separate_conversations():
    second = ("127.0.0.1", 50124)
    timed = [
        (1.0, Connected(1, _text(CLIENT), LISTENER, accepted=True, flow=1, side="client")),
        (1.1, Connected(3, _text(second), LISTENER, accepted=True, flow=2, side="client")),
        (1.2, Connected(4, _text(UPSTREAM), "127.0.0.1:40002", flow=2, side="upstream")),
        (1.3, Connected(2, _text(UPSTREAM), SOURCE, flow=1, side="upstream")),
        (1.4, Received(3, b"two asks")),
        (1.5, Received(1, b"one asks")),
        (1.6, Received(2, b"one answered")),
        (1.7, Received(4, b"two answered")),
        *client_closes_first(1.8, client_conn=3, upstream_conn=4),
        *client_closes_first(1.9, client_conn=1, upstream_conn=2),
    ]
    export = PcapExport()
    packets = read_pcap(file_header() + b"".join(export.feed(e) for e in entries(*timed)))
    assert export.connections == 2
    grouped = flows(packets)
    assert set(grouped) == {frozenset({CLIENT, UPSTREAM}), frozenset({second, UPSTREAM})}
    assert check_conversation(grouped[frozenset({CLIENT, UPSTREAM})], CLIENT) == {
        "c2s": b"one asks",
        "s2c": b"one answered",
    }
    assert check_conversation(grouped[frozenset({second, UPSTREAM})], second) == {
        "c2s": b"two asks",
        "s2c": b"two answered",
    }
    # Flow 1's handshake is written once its upstream connects, after flow 2's: its SYN
    # keeps the client's time, so there (only) the file is out of time order.
    assert [(p.sport, p.at) for p in packets if p.flags == SYN] == [(50124, 1.1), (50123, 1.0)]


def test_udp_relay_flow_is_one_datagram_conversation():
    packets = read_pcap(
        export_pcap(
            entries(
                (
                    1.0,
                    Connected(
                        1, "127.0.0.1:5353", "127.0.0.1:53", "udp", True, flow=1, side="client"
                    ),
                ),
                (
                    1.0,
                    Connected(
                        2, "127.0.0.1:1053", "127.0.0.1:40000", "udp", flow=1, side="upstream"
                    ),
                ),
                (1.1, Received(1, b"query", datagram=True)),
                (1.2, Received(2, b"answer", datagram=True)),
                (1.3, Sent(1, b"injected", False)),
                (2.0, Closed(1, "closed", 0, 0)),
                (2.0, Closed(2, "closed", 0, 0)),
            )
        )
    )
    client, upstream = ("127.0.0.1", 5353), ("127.0.0.1", 1053)
    assert [(p.protocol, ends(p), p.payload) for p in packets] == [
        (17, (client, upstream), b"query"),
        (17, (upstream, client), b"answer"),
        (17, (upstream, client), b"injected"),
    ]


# ---- any conversation --------------------------------------------------------------------


legs_talking = st.lists(
    st.tuples(st.sampled_from(["client sends", "upstream sends", "to client", "to upstream"]),
              st.binary(min_size=1, max_size=200)),
    max_size=30,
)  # fmt: skip


@given(talk=legs_talking, ipv6=st.booleans(), flow=st.integers(min_value=1, max_value=2**20))
@settings(max_examples=150, deadline=None)
def test_any_relayed_conversation_reassembles_to_what_each_peer_received(talk, ipv6, flow):
    host = "::1" if ipv6 else "127.0.0.1"
    client, upstream = (host, 50000), (host, 502)
    listener, source = f"{_text((host, 5020))}", f"{_text((host, 40000))}"
    timed = [
        (1.0, Connected(5, _text(client), listener, accepted=True, flow=flow, side="client")),
        (1.0, Connected(6, _text(upstream), source, flow=flow, side="upstream")),
    ]
    for index, (what, data) in enumerate(talk):
        event = {
            "client sends": Received(5, data),
            "upstream sends": Received(6, data),
            "to client": Sent(5, data, False),
            "to upstream": Sent(6, data, True),
        }[what]
        timed.append((1.0 + index / 64, event))
    timed += client_closes_first(2.0, client_conn=5, upstream_conn=6)
    packets = read_pcap(export_pcap(entries(*timed)))
    to_upstream = {"client sends", "to upstream"}
    assert check_conversation(packets, client) == {
        "c2s": b"".join(data for what, data in talk if what in to_upstream),
        "s2c": b"".join(data for what, data in talk if what not in to_upstream),
    }
    assert {(p.src, p.sport) for p in packets} == {client, upstream}
    assert sum(1 for p in packets if p.flags & FIN) == 2


# ---- a real reader, when the machine has one -----------------------------------------------


@pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark is not installed")
def test_tshark_dissects_the_relayed_modbus_exchange(tmp_path):
    path = tmp_path / "relay.pcap"
    path.write_bytes(
        export_pcap(
            entries(
                *relay_opened(1.0),
                (1.2, Received(1, MODBUS_REQUEST)),
                (1.3, Received(2, MODBUS_RESPONSE)),
                *client_closes_first(1.4),
            )
        )
    )
    command = ["tshark", "-r", str(path), "-o", "tcp.check_checksum:TRUE", "-Y", "mbtcp"]
    command += ["-T", "fields", "-e", "mbtcp.trans_id", "-e", "modbus.func_code"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["1", "3", "1", "3"]  # the request and its response
    follow = ["tshark", "-r", str(path), "-q", "-z", "follow,tcp,raw,0"]
    result = subprocess.run(follow, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    lines = [line.strip() for line in result.stdout.splitlines()]
    assert MODBUS_REQUEST.hex() in lines and MODBUS_RESPONSE.hex() in lines


def test_a_flow_number_used_again_joins_the_newest_client():
    # A log spanning two relays (a session that listened again): the first relay's #1
    # client never got an upstream and its close comes after the second relay's #1 joined.
    second = ("127.0.0.1", 50999)
    export = PcapExport()
    blob = file_header()
    for entry in entries(
        (1.0, Connected(1, _text(CLIENT), LISTENER, accepted=True, flow=1, side="client")),
        (2.0, Connected(5, _text(second), LISTENER, accepted=True, flow=1, side="client")),
        (2.1, Connected(6, _text(UPSTREAM), SOURCE, flow=1, side="upstream")),
        (2.2, Received(5, b"ask")),
        (2.3, Closed(1, "connection closed", 0, 0)),
        (2.4, Received(6, b"answer")),
    ):
        blob += export.feed(entry)
    grouped = flows(read_pcap(blob))
    assert set(grouped) == {
        frozenset({second, UPSTREAM}),
        frozenset({CLIENT, ("127.0.0.1", 5020)}),
    }
    assert check_conversation(grouped[frozenset({second, UPSTREAM})], second) == {
        "c2s": b"ask",
        "s2c": b"answer",
    }
    assert export.connections == 2


@pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark is not installed")
def test_tshark_reassembles_the_relayed_http_exchange(tmp_path):
    # Each message read in two pieces: Wireshark must join the segments to dissect them.
    path = tmp_path / "relay.pcap"
    path.write_bytes(
        export_pcap(
            entries(
                (1.0, Connected(8, "[::1]:41000", "[::1]:8080", True, flow=1, side="client")),
                (1.1, Connected(9, "[::1]:80", "[::1]:39000", flow=1, side="upstream")),
                (1.2, Received(8, HTTP_REQUEST[:20])),
                (1.22, Received(8, HTTP_REQUEST[20:])),
                (1.3, Received(9, HTTP_REPLY[:30])),
                (1.31, Received(9, HTTP_REPLY[30:])),
                *client_closes_first(1.4, client_conn=8, upstream_conn=9),
            )
        )
    )
    command = ["tshark", "-r", str(path), "-o", "tcp.check_checksum:TRUE", "-Y", "http"]
    command += ["-T", "fields", "-e", "http.request.uri", "-e", "http.response.code"]
    command += ["-e", "http.file_data"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["/index.html", "200", "hello"]
