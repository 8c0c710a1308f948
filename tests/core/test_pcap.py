"""Transcript entries -> pcap: read back by an independent parser written here, every header,
length and checksum recomputed, and the TCP conversation checked like a receiver would."""

from __future__ import annotations

import ipaddress
import shutil
import struct
import subprocess
from dataclasses import dataclass

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from netrepl.events import Closed, Connected, HalfClosed, Listening, Received, Sent
from netrepl.pcap import PcapExport, export_pcap, file_header, parse_address
from netrepl.transcript import Entry, parse_line, to_line

FIN, SYN, RST, PSH, ACK = 0x01, 0x02, 0x04, 0x08, 0x10


# ---- an independent reader -------------------------------------------------------------------


def ones_complement_sum(data: bytes) -> int:
    """Word by word, folding the carry each time: a different route from netrepl's."""
    if len(data) % 2:
        data += b"\0"
    total = 0
    for index in range(0, len(data), 2):
        total += (data[index] << 8) | data[index + 1]
        total = (total & 0xFFFF) + (total >> 16)
    return total


@dataclass
class Packet:
    at: float
    version: int
    src: str
    dst: str
    protocol: int
    sport: int
    dport: int
    payload: bytes
    seq: int = 0
    ack: int = 0
    flags: int = 0


def read_pcap(blob: bytes) -> list[Packet]:
    """Parse a classic pcap of raw IP packets, asserting every length and checksum."""
    magic, major, minor, zone, sigfigs, snaplen, linktype = struct.unpack("<IHHiIII", blob[:24])
    assert (magic, major, minor, zone, sigfigs) == (0xA1B2C3D4, 2, 4, 0, 0)
    assert (snaplen, linktype) == (262144, 101)
    packets = []
    position = 24
    while position < len(blob):
        seconds, micros, captured, original = struct.unpack_from("<IIII", blob, position)
        assert captured == original <= snaplen and micros < 1_000_000
        position += 16
        raw = blob[position : position + captured]
        assert len(raw) == captured, "record runs past the end of the file"
        position += captured
        packets.append(read_packet(seconds + micros / 1e6, raw))
    return packets


def read_packet(at: float, raw: bytes) -> Packet:
    version = raw[0] >> 4
    if version == 4:
        assert raw[0] & 0x0F == 5
        total, protocol = struct.unpack_from("!H", raw, 2)[0], raw[9]
        assert total == len(raw)
        assert ones_complement_sum(raw[:20]) == 0xFFFF, "IPv4 header checksum"
        src, dst = raw[12:16], raw[16:20]
        segment = raw[20:]
        pseudo = src + dst + bytes([0, protocol]) + len(segment).to_bytes(2, "big")
    else:
        assert version == 6
        length, protocol = struct.unpack_from("!HB", raw, 4)
        assert length == len(raw) - 40
        src, dst = raw[8:24], raw[24:40]
        segment = raw[40:]
        pseudo = src + dst + len(segment).to_bytes(4, "big") + bytes([0, 0, 0, protocol])
    assert ones_complement_sum(pseudo + segment) == 0xFFFF, "transport checksum"
    source = str(ipaddress.ip_address(src))
    destination = str(ipaddress.ip_address(dst))
    sport, dport = struct.unpack_from("!HH", segment)
    if protocol == 6:
        seq, ack, offset, flags = struct.unpack_from("!IIBB", segment, 4)
        assert offset >> 4 == 5
        return Packet(
            at, version, source, destination, 6, sport, dport, segment[20:], seq, ack, flags
        )
    assert protocol == 17
    assert struct.unpack_from("!H", segment, 4)[0] == len(segment)
    assert struct.unpack_from("!H", segment, 6)[0] != 0, "UDP checksum left out"
    return Packet(at, version, source, destination, 17, sport, dport, segment[8:])


# ---- a TCP receiver's view -------------------------------------------------------------------


def check_conversation(
    packets: list[Packet], client: tuple[str, int], *, handshake: bool = True
) -> dict[str, bytes]:
    """Walk one TCP flow as its two ends would: every segment starts where the sender's last
    one ended, acknowledges all the other side sent, and SYN/FIN take one number each.
    Without `handshake` (a capture started mid-way) each side's first segment sets its start.
    Returns each direction's payload stream ('c2s', 's2c')."""
    next_seq: dict[str, int] = {}
    if handshake:
        assert packets[0].flags == SYN and (packets[0].src, packets[0].sport) == client
        assert packets[1].flags == SYN | ACK and packets[1].ack == (packets[0].seq + 1) % 2**32
        next_seq = {"c2s": (packets[0].seq + 1) % 2**32, "s2c": (packets[1].seq + 1) % 2**32}
        packets = packets[2:]
    else:
        first = packets[0]
        way = "c2s" if (first.src, first.sport) == client else "s2c"
        next_seq = {way: first.seq, "s2c" if way == "c2s" else "c2s": first.ack}
    streams = {"c2s": b"", "s2c": b""}
    fins = set()
    for packet in packets:
        way = "c2s" if (packet.src, packet.sport) == client else "s2c"
        other = "s2c" if way == "c2s" else "c2s"
        assert packet.seq == next_seq[way], f"{way} sequence gap at {packet}"
        assert packet.flags & ACK and packet.ack == next_seq[other], f"{way} ack off"
        assert way not in fins or not packet.payload, "data after FIN"
        streams[way] += packet.payload
        next_seq[way] = (next_seq[way] + len(packet.payload)) % 2**32
        if packet.flags & FIN:
            next_seq[way] = (next_seq[way] + 1) % 2**32
            fins.add(way)
        if packet.payload:
            assert packet.flags == PSH | ACK
            assert len(packet.payload) <= 65_000
    return streams


def entries(*timed_events) -> list[Entry]:
    """Entries through the real transcript format: what export reads is what log writes."""
    out = []
    for number, (at, event) in enumerate(timed_events, 1):
        entry = parse_line(to_line(event, at), number)
        assert entry is not None
        out.append(entry)
    return out


def flows(packets: list[Packet]) -> dict[frozenset, list[Packet]]:
    grouped: dict[frozenset, list[Packet]] = {}
    for packet in packets:
        key = frozenset({(packet.src, packet.sport), (packet.dst, packet.dport)})
        grouped.setdefault(key, []).append(packet)
    return grouped


# ---- the file ----------------------------------------------------------------------------------


def test_global_header_fields():
    assert file_header() == bytes.fromhex("d4c3b2a1 0200 0400 00000000 00000000 00000400 65000000")
    assert export_pcap([]) == file_header()


def test_redis_session_packet_by_packet():
    blob = export_pcap(
        entries(
            (100.0, Connected(1, "127.0.0.1:6379", "127.0.0.1:50000")),
            (100.25, Sent(1, b"PING\n", False)),
            (100.5, Received(1, b"+PONG\r\n")),
            (101.0, Closed(1, "connection closed by peer", 7, 5)),
        )
    )
    packets = read_pcap(blob)
    flags = [p.flags for p in packets]
    assert flags == [SYN, SYN | ACK, ACK, PSH | ACK, PSH | ACK, FIN | ACK, FIN | ACK, ACK]
    ours, theirs = ("127.0.0.1", 50000), ("127.0.0.1", 6379)
    directions = [((p.src, p.sport), (p.dst, p.dport)) for p in packets]
    out, back = (ours, theirs), (theirs, ours)
    assert directions == [out, back, out, out, back, back, out, back]
    assert [p.at for p in packets] == [100.0] * 3 + [100.25, 100.5] + [101.0] * 3
    assert [p.payload for p in packets[3:5]] == [b"PING\n", b"+PONG\r\n"]
    streams = check_conversation(packets, ours)
    assert streams == {"c2s": b"PING\n", "s2c": b"+PONG\r\n"}
    # Records of exactly the right size: 16-byte record header, 20 IP, 20 TCP, payload.
    assert len(blob) == 24 + sum(16 + 40 + len(p.payload) for p in packets)


def test_accepted_client_sends_the_syn_and_we_close_first():
    packets = read_pcap(
        export_pcap(
            entries(
                (5.0, Connected(3, "192.0.2.7:41000", "192.0.2.1:9000", accepted=True)),
                (5.1, Received(3, b"hello")),
                (5.2, Closed(3, "connection closed", 5, 0)),
            )
        )
    )
    client = ("192.0.2.7", 41000)
    assert (packets[0].src, packets[0].sport, packets[0].flags) == (*client, SYN)
    assert (packets[1].src, packets[1].sport) == ("192.0.2.1", 9000)
    # We closed: our FIN first, then the peer's, then the peer acknowledges ours.
    assert [(p.src, p.flags) for p in packets[-3:]] == [
        ("192.0.2.1", FIN | ACK),
        ("192.0.2.7", FIN | ACK),
        ("192.0.2.1", ACK),
    ]
    assert check_conversation(packets, client) == {"c2s": b"hello", "s2c": b""}


def test_half_close_is_our_fin_and_close_finishes_the_peer_side():
    packets = read_pcap(
        export_pcap(
            entries(
                (1.0, Connected(1, "[2001:db8::2]:80", "[2001:db8::1]:40000")),
                (1.1, Sent(1, b"GET / HTTP/1.0\r\n\r\n", False)),
                (1.2, HalfClosed(1)),
                (1.3, Received(1, b"HTTP/1.0 200 OK\r\n\r\nbody")),
                (1.4, Closed(1, "connection closed by peer", 23, 18)),
            )
        )
    )
    assert all(p.version == 6 for p in packets)
    ours = ("2001:db8::1", 40000)
    flags = [((p.src, p.sport) == ours, p.flags) for p in packets[3:]]
    assert flags == [
        (True, PSH | ACK),
        (True, FIN | ACK),  # /eof
        (False, ACK),
        (False, PSH | ACK),
        (False, FIN | ACK),  # the close: only the peer's side was still open
        (True, ACK),
    ]
    streams = check_conversation(packets, ours)
    assert streams == {"c2s": b"GET / HTTP/1.0\r\n\r\n", "s2c": b"HTTP/1.0 200 OK\r\n\r\nbody"}


def test_failed_close_is_a_reset_from_the_peer():
    packets = read_pcap(
        export_pcap(
            entries(
                (1.0, Connected(1, "127.0.0.1:502", "127.0.0.1:40000")),
                (1.1, Sent(1, b"\x00\x01", True)),
                (1.2, Closed(1, "connection reset by peer", 0, 2, failed=True)),
            )
        )
    )
    last = packets[-1]
    assert (last.src, last.sport, last.flags) == ("127.0.0.1", 502, RST | ACK)
    assert len(packets) == 5
    check_conversation(packets, ("127.0.0.1", 40000))


def test_large_payload_is_split_into_segments_that_reassemble():
    data = bytes(range(256)) * 600  # 153,600 bytes: three segments
    packets = read_pcap(
        export_pcap(
            entries(
                (1.0, Connected(1, "10.1.1.1:7", "10.1.1.2:5555")),
                (2.0, Received(1, data)),
                (3.0, Sent(1, data[::-1], False)),
            )
        )
    )
    sizes = [len(p.payload) for p in packets if p.payload]
    assert sizes == [65_000, 65_000, 23_600] * 2
    assert check_conversation(packets, ("10.1.1.2", 5555)) == {"c2s": data[::-1], "s2c": data}


chunks = st.lists(
    st.tuples(st.booleans(), st.binary(min_size=1, max_size=300)), min_size=0, max_size=25
)


@given(
    conversation=chunks,
    conn=st.integers(min_value=1, max_value=2**20),
    ipv6=st.booleans(),
    accepted=st.booleans(),
)
@settings(max_examples=150, deadline=None)
def test_any_conversation_reassembles_exactly_in_both_directions(
    conversation, conn, ipv6, accepted
):
    peer, local = ("[::1]:9000", "[::1]:41234") if ipv6 else ("127.0.0.1:9000", "127.0.0.1:41234")
    timed = [(10.0, Connected(conn, peer, local, accepted=accepted))]
    for index, (sent, data) in enumerate(conversation):
        event = Sent(conn, data, False) if sent else Received(conn, data)
        timed.append((10.0 + index / 8, event))
    timed.append((20.0, Closed(conn, "connection closed", 0, 0)))
    packets = read_pcap(export_pcap(entries(*timed)))

    ours = ("::1" if ipv6 else "127.0.0.1", 41234)
    theirs = (ours[0], 9000)
    streams = check_conversation(packets, theirs if accepted else ours)
    sent_stream = b"".join(data for sent, data in conversation if sent)
    received_stream = b"".join(data for sent, data in conversation if not sent)
    outgoing, incoming = ("s2c", "c2s") if accepted else ("c2s", "s2c")
    assert streams[outgoing] == sent_stream
    assert streams[incoming] == received_stream
    assert [p.at for p in packets] == sorted(p.at for p in packets)
    assert sum(1 for p in packets if p.flags & FIN) == 2


def test_sequence_numbers_wrap_around():
    # The initial sequence numbers are spread over 32 bits; some conn id starts close
    # enough to 2**32 that 150 kB of data must wrap (checked by the modular arithmetic).
    export = PcapExport()
    conn = next(c for c in range(1, 100_000) if _isn_near_top(c))
    blob = file_header()
    for at, event in (
        (1.0, Connected(conn, "127.0.0.1:1", "127.0.0.1:2")),
        (2.0, Sent(conn, b"x" * 150_000, False)),
        (3.0, Closed(conn, "connection closed", 0, 150_000)),
    ):
        blob += export.feed(Entry(at, event))
    packets = read_pcap(blob)
    assert any(p.seq < packets[0].seq for p in packets if (p.src, p.sport) == ("127.0.0.1", 2))
    assert check_conversation(packets, ("127.0.0.1", 2))["c2s"] == b"x" * 150_000


def _isn_near_top(conn: int) -> bool:
    record = PcapExport().feed(Entry(0.0, Connected(conn, "1.1.1.1:1", "2.2.2.2:2")))
    # The first record is our SYN: its sequence number follows 16 + 20 + 4 bytes of headers.
    return struct.unpack_from("!I", record, 40)[0] > 2**32 - 100_000


# ---- UDP -----------------------------------------------------------------------------------


def test_udp_is_one_datagram_per_record_without_handshake():
    packets = read_pcap(
        export_pcap(
            entries(
                (1.0, Connected(2, "127.0.0.1:53", "127.0.0.1:40000", "udp")),
                (1.5, Sent(2, b"query", True)),
                (1.6, Received(2, b"answer", datagram=True)),
                (1.7, Received(2, b"", datagram=True)),
                (2.0, Closed(2, "closed", 6, 5)),
            )
        )
    )
    assert [(p.protocol, p.sport, p.dport, p.payload) for p in packets] == [
        (17, 40000, 53, b"query"),
        (17, 53, 40000, b"answer"),
        (17, 53, 40000, b""),
    ]


@pytest.mark.parametrize(
    ("peer", "local"), [("[::1]:5000", "[::1]:6000"), ("127.0.0.1:5000", "127.0.0.1:6000")]
)
def test_udp_checksums_and_listen_mode_senders(peer, local):
    blob = export_pcap(
        entries(
            (1.0, Listening(local, "udp")),
            (1.1, Connected(7, peer, local, "udp", accepted=True)),
            (1.2, Received(7, bytes(range(256)) * 4, datagram=True)),
            (1.3, Sent(7, b"odd length!", False)),
        )
    )
    packets = read_pcap(blob)  # checksums verified there
    assert [len(p.payload) for p in packets] == [1024, 11]
    assert packets[0].dport == 6000 and packets[1].sport == 6000


def test_oversized_datagram_is_cut_to_fit_and_counted():
    export = PcapExport()
    blob = file_header() + export.feed(Entry(1.0, Connected(1, "1.2.3.4:9", "5.6.7.8:9", "udp")))
    blob += export.feed(Entry(2.0, Received(1, b"a" * 65_508, datagram=True)))
    blob += export.feed(Entry(3.0, Received(1, b"b" * 65_507, datagram=True)))
    packets = read_pcap(blob)
    assert [len(p.payload) for p in packets] == [65_507, 65_507]
    assert export.truncated == 1 and export.packets == 2 and export.connections == 1


# ---- addresses -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1.2.3.4:80", ("1.2.3.4", 80)),
        ("[::1]:80", ("::1", 80)),
        ("[fe80::1%eth0]:22", ("fe80::1%eth0", 22)),
        ("example.com:443", (None, 443)),
        ("*:9000", (None, 9000)),
        ("unix:/tmp/dev.sock", (None, None)),
        ("unix:pid 42", (None, None)),
        ("", (None, None)),
        ("1.2.3.4:99999", ("1.2.3.4", None)),
        ("1.2.3.4:" + "9" * 5000, ("1.2.3.4", None)),  # a crafted transcript
        ("1.2.3.4:²", ("1.2.3.4", None)),
    ],
    ids=lambda value: value[:20] if isinstance(value, str) else None,
)
def test_parse_address(text, expected):
    address, port = parse_address(text)
    assert (None if address is None else str(address), port) == expected


def test_unix_connections_get_fake_ipv4_ends_and_ports_from_the_conn_id():
    packets = read_pcap(
        export_pcap(
            entries(
                (1.0, Connected(3, "unix:/tmp/dev.sock", "", "unix")),
                (1.1, Connected(4, "unix:pid 99", "unix:/tmp/srv.sock", "unix", accepted=True)),
                (1.2, Sent(3, b"to the device", False)),
                (1.3, Received(4, b"from a client")),
            )
        )
    )
    syns = [p for p in packets if p.flags == SYN]
    assert [(p.src, p.sport, p.dst, p.dport) for p in syns] == [
        ("10.0.0.1", 49152 + 3, "10.0.0.2", 9),  # we were the client
        ("10.0.0.2", 49152 + 4, "10.0.0.1", 9),  # the peer was
    ]
    grouped = flows(packets)
    assert len(grouped) == 2
    for packets_of_one in grouped.values():
        check_conversation(packets_of_one, (packets_of_one[0].src, packets_of_one[0].sport))


def test_name_and_unspecified_ends_are_faked_in_the_other_ends_family():
    packets = read_pcap(
        export_pcap(
            entries(
                (1.0, Connected(1, "device.local:5000", "[2001:db8::1]:40000", "udp")),
                (1.1, Connected(2, "[2001:db8::9]:7", "[::]:9000", "udp", accepted=True)),
                (1.2, Connected(3, "192.0.2.5:1234", "[::]:9000", "udp", accepted=True)),
                (1.3, Sent(1, b"a", False)),
                (1.4, Received(2, b"b", datagram=True)),
                (1.5, Received(3, b"c", datagram=True)),
            )
        )
    )
    assert [(p.src, p.sport, p.dst, p.dport) for p in packets] == [
        ("2001:db8::1", 40000, "fd00::2", 5000),
        ("2001:db8::9", 7, "fd00::1", 9000),
        ("192.0.2.5", 1234, "10.0.0.1", 9000),
    ]


def test_a_transcript_starting_mid_way_synthesizes_the_flow():
    export = PcapExport()
    blob = file_header()
    for at, event in (
        (1.0, Received(5, b"...middle of a reply\n")),
        (1.1, Sent(5, b"next\n", False)),
        (1.2, Received(6, b"a datagram", datagram=True)),
        (1.3, HalfClosed(99)),  # an unknown connection's close: nothing to show
        (1.4, Closed(5, "connection closed by peer", 0, 0)),
    ):
        blob += export.feed(Entry(at, event))
    packets = read_pcap(blob)
    assert export.connections == 2
    tcp = [p for p in packets if p.protocol == 6]
    assert tcp[0].flags == PSH | ACK  # no handshake: the capture starts mid-way too
    assert (tcp[0].src, tcp[0].dst) == ("10.0.0.2", "10.0.0.1")
    assert [p.payload for p in tcp] == [b"...middle of a reply\n", b"next\n", b"", b"", b""]
    assert [p.flags for p in tcp[2:]] == [FIN | ACK, FIN | ACK, ACK]
    streams = check_conversation(tcp, ("10.0.0.1", 49152 + 5), handshake=False)
    assert streams == {"c2s": b"next\n", "s2c": b"...middle of a reply\n"}
    udp = [p for p in packets if p.protocol == 17]
    assert [p.payload for p in udp] == [b"a datagram"]


@pytest.mark.parametrize("where", [5, 25, 45])  # IPv4 header, TCP header, payload
def test_the_reader_here_catches_a_flipped_bit(where):
    # The checks above would prove nothing if this reader passed anything.
    blob = bytearray(
        export_pcap(
            entries(
                (1.0, Connected(1, "127.0.0.1:1", "127.0.0.1:2")),
                (1.0, Sent(1, b"payload bytes", False)),
            )
        )
    )
    read_pcap(bytes(blob))
    blob[24 + 3 * (16 + 40) + 16 + where] ^= 0x04  # in the fourth packet, the one with data
    with pytest.raises(AssertionError, match="checksum"):
        read_pcap(bytes(blob))


def test_counts():
    export = PcapExport()
    export.feed(Entry(1.0, Connected(1, "127.0.0.1:1", "127.0.0.1:2")))
    export.feed(Entry(1.0, Sent(1, b"x", False)))
    export.feed(Entry(1.0, Closed(1, "connection closed", 0, 1)))
    assert (export.packets, export.connections, export.truncated) == (3 + 1 + 3, 1, 0)


# ---- a real reader, when the machine has one -----------------------------------------------


@pytest.mark.skipif(shutil.which("tcpdump") is None, reason="tcpdump is not installed")
def test_tcpdump_reads_the_file(tmp_path):
    path = tmp_path / "session.pcap"
    path.write_bytes(
        export_pcap(
            entries(
                (1.0, Connected(1, "127.0.0.1:6379", "127.0.0.1:50000")),
                (1.1, Sent(1, b"PING\n", False)),
                (1.2, Received(1, b"+PONG\r\n")),
                (1.3, Closed(1, "connection closed by peer", 7, 5)),
            )
        )
    )
    result = subprocess.run(
        ["tcpdump", "-r", str(path), "-nn", "-v"], capture_output=True, text=True, timeout=20
    )
    assert result.returncode == 0, result.stderr
    lines = [line for line in result.stdout.splitlines() if "127.0.0.1.50000" in line]
    assert len(lines) == 8
    assert "incorrect" not in result.stdout  # tcpdump -v checks the checksums


@pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark is not installed")
def test_tshark_reads_the_file(tmp_path):
    path = tmp_path / "session.pcap"
    path.write_bytes(
        export_pcap(
            entries(
                (1.0, Connected(1, "[::1]:6379", "[::1]:50000")),
                (1.1, Sent(1, b"PING\n", False)),
                (1.2, Received(1, b"+PONG\r\n")),
                (1.3, Closed(1, "connection closed by peer", 7, 5)),
            )
        )
    )
    command = ["tshark", "-r", str(path), "-o", "tcp.check_checksum:TRUE"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert len(result.stdout.splitlines()) == 8
    assert "INCORRECT" not in result.stdout, result.stdout


def test_a_udp_listeners_send_to_an_address_it_never_heard_from_is_a_datagram():
    export = PcapExport()
    blob = file_header() + b"".join(
        export.feed(entry)
        for entry in entries(
            (1.0, Listening("*:5000", "udp")),
            (1.5, Sent(3, b"to a destination", False)),
        )
    )
    (packet,) = read_pcap(blob)
    assert (packet.protocol, packet.payload) == (17, b"to a destination")
    assert export.midway == 1
