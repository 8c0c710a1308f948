"""Transcripts as packet captures: entries in, the bytes of a classic pcap file out.

Pure: builds synthetic IPv4/IPv6 packets (LINKTYPE_RAW) in memory from transcript entries, so
Wireshark or tcpdump can show a session. Never opens a file, a socket or a clock: `offline.py`
reads the transcript and writes what this returns.
"""

from __future__ import annotations

import ipaddress
import struct
from collections.abc import Iterable
from dataclasses import dataclass

from netrepl.events import Closed, Connected, HalfClosed, Listening, Received, Sent
from netrepl.transcript import Entry

MAGIC = 0xA1B2C3D4
"""Classic pcap, microsecond timestamps (written little-endian: d4 c3 b2 a1)."""
SNAPLEN = 262_144
LINKTYPE_RAW = 101
"""Each packet starts with its IPv4 or IPv6 header: no Ethernet frame to make up."""

MAX_SEGMENT = 65_000
"""Payload bytes per TCP segment: a whole packet must fit the 16-bit IP length field."""
WINDOW = 65_535
TTL = 64

FIN, SYN, RST, PSH, ACK = 0x01, 0x02, 0x04, 0x08, 0x10
TCP, UDP = 6, 17

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

# Stand-ins for ends that are not IP literals (unix sockets, host names, unknown): ours is
# .1, the peer's .2, in a private range that real sessions from this machine rarely use.
FAKE_HOSTS: dict[int, tuple[IPAddress, IPAddress]] = {
    4: (ipaddress.IPv4Address("10.0.0.1"), ipaddress.IPv4Address("10.0.0.2")),
    6: (ipaddress.IPv6Address("fd00::1"), ipaddress.IPv6Address("fd00::2")),
}
FAKE_SERVER_PORT = 9
FAKE_CLIENT_PORTS = 49_152
"""A client end with no known port gets 49152 + conn % 16384 (the ephemeral range)."""


def file_header() -> bytes:
    """The 24-byte global header every pcap file starts with."""
    return struct.pack("<IHHiIII", MAGIC, 2, 4, 0, 0, SNAPLEN, LINKTYPE_RAW)


def internet_checksum(data: bytes) -> int:
    """RFC 1071: the ones' complement of the ones' complement sum of 16-bit words."""
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total > 0xFFFF:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def parse_address(text: str) -> tuple[IPAddress | None, int | None]:
    """`1.2.3.4:80`, `[::1]:80` -> (address, port); what is not an IP literal or a port
    (`unix:/tmp/s`, `example.com:80`, `*:9000`) comes back as None."""
    if text.startswith("unix:"):
        return None, None
    try:
        return ipaddress.ip_address(text), None
    except ValueError:
        pass
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        port = rest.removeprefix(":") if rest.startswith(":") else ""
    else:
        host, _, port = text.rpartition(":")
    try:
        address: IPAddress | None = ipaddress.ip_address(host)
    except ValueError:
        address = None
    # A crafted transcript's port of thousands of digits is no port (and int() would raise).
    number = int(port) if port.isascii() and port.isdigit() and len(port) <= 5 else None
    if number is not None and number > 65535:
        number = None
    return address, number


@dataclass(frozen=True, slots=True)
class _End:
    address: IPAddress
    port: int


@dataclass(slots=True)
class _Flow:
    """One connection's packets so far: both ends and the next sequence number of each."""

    conn: int
    protocol: int
    ours: _End
    theirs: _End
    our_next: int
    their_next: int
    our_fin: bool = False
    their_fin: bool = False


def _ends(conn: int, peer: str, local: str, accepted: bool) -> tuple[_End, _End, bool]:
    """(ours, theirs, made up): the real addresses where they are IP literals of one family,
    fake ones of that family where not (see FAKE_HOSTS); True when any part is fake."""
    our_ip, our_port = parse_address(local)
    their_ip, their_port = parse_address(peer)
    if our_ip is not None and our_ip.is_unspecified:
        our_ip = None  # a listener on 0.0.0.0 or [::]: the real local address is unknown
    if our_ip is not None and their_ip is not None and our_ip.version != their_ip.version:
        # A dual-stack socket names an IPv4 end as ::ffff:a.b.c.d.
        our_ip = getattr(our_ip, "ipv4_mapped", None) or our_ip
        their_ip = getattr(their_ip, "ipv4_mapped", None) or their_ip
        if our_ip.version != their_ip.version:
            our_ip = None
    version = (their_ip or our_ip or FAKE_HOSTS[4][0]).version
    fake_ours, fake_theirs = FAKE_HOSTS[version]
    client_port = FAKE_CLIENT_PORTS + conn % 16_384
    if accepted:
        fake_our_port, fake_their_port = FAKE_SERVER_PORT, client_port
    else:
        fake_our_port, fake_their_port = client_port, FAKE_SERVER_PORT
    made_up = None in (our_ip, our_port, their_ip, their_port)
    return (
        _End(our_ip or fake_ours, fake_our_port if our_port is None else our_port),
        _End(their_ip or fake_theirs, fake_their_port if their_port is None else their_port),
        made_up,
    )


def _initial_sequence(conn: int, ours: bool) -> int:
    # Deterministic (the same transcript gives the same file) and spread over the whole
    # 32-bit space, so wrap-around is exercised rather than special.
    value = (conn * 0x9E3779B1 + 0x1234567) & 0xFFFFFFFF
    return value if ours else value ^ 0xA5A5A5A5


class PcapExport:
    """Turns transcript entries, in order, into pcap packet records.

    One synthetic flow per connection id, from its `Connected` record's addresses. An end
    that is not an IP literal (a unix socket, a host name, an unspecified listen address)
    gets a fake address: 10.0.0.1 (ours) / 10.0.0.2 (the peer), or fd00::1 / fd00::2 when
    the other end is IPv6; a fake port is 49152 + conn % 16384 for the client end and 9 for
    the server end. TCP and unix connections become TCP: a SYN/SYN-ACK/ACK handshake at the
    connect time (the client sends the SYN), each `Received`/`Sent` as PSH/ACK segments of
    at most 65,000 bytes with running sequence and acknowledgement numbers, `HalfClosed` as
    our FIN (acknowledged), `Closed` as the FIN/ACK exchange for whichever side has not sent
    its FIN yet (the peer first when it closed), or as a RST from the peer when the close
    failed (a reset or an error: the transcript does not say more). TLS connections appear
    as their plaintext. UDP records become one datagram each; one too large for a single
    packet (only possible over a fake IPv4 flow) is cut to fit and counted in `truncated`.
    Records of a connection without a `Connected` record (a transcript that starts
    mid-way) start a flow with fake addresses and no handshake, as a capture started
    mid-way looks; UDP when the first record is a datagram, TCP otherwise. Closes and other
    records of such unknown connections produce nothing: their protocol is unknown.
    """

    def __init__(self) -> None:
        self.packets = 0
        self.connections = 0
        self.truncated = 0
        """Datagrams cut to fit one packet."""
        self.midway = 0
        """Connections with no `connected` record (a log started mid-way): made-up ends."""
        self.made_up = 0
        """Connections with ends that are not IP addresses (unix, names): made-up ends."""
        self._flows: dict[int, _Flow] = {}
        self._ident = 0
        self._listening = "tcp"
        """A UDP listener's sends to an address it never heard from have no `connected`
        record: they are datagrams all the same."""

    def feed(self, entry: Entry) -> bytes:
        """The packet records for one entry (often none), to append to the file."""
        records: list[bytes] = []
        at = entry.at
        match entry.event:
            case Connected(conn, peer, local, _, accepted):
                kind = "udp" if entry.event.datagrams else "tcp"
                flow = self._start(conn, peer, local, kind, accepted)
                if flow.protocol == TCP:
                    client_is_us = not accepted
                    records.append(self._segment(flow, at, client_is_us, SYN))
                    records.append(self._segment(flow, at, not client_is_us, SYN | ACK))
                    records.append(self._segment(flow, at, client_is_us, ACK))
            case Received(conn, data, datagram):
                flow = self._flows.get(conn) or self._midway(conn, "udp" if datagram else "tcp")
                records += self._data(flow, at, False, data)
            case Listening(_, protocol):
                self._listening = "udp" if protocol == "udp" else "tcp"
            case Sent(conn, data):
                flow = self._flows.get(conn) or self._midway(conn, self._listening)
                records += self._data(flow, at, True, data)
            case HalfClosed(conn):
                flow = self._flows.get(conn)
                if flow is not None and flow.protocol == TCP and not flow.our_fin:
                    records.append(self._segment(flow, at, True, FIN | ACK))
                    records.append(self._segment(flow, at, False, ACK))
            case Closed(conn, reason, _, _, failed):
                flow = self._flows.pop(conn, None)
                if flow is not None and flow.protocol == TCP:
                    records += self._close(flow, at, by_peer="by peer" in reason, failed=failed)
        self.packets += len(records)
        return b"".join(records)

    # ---- flows

    def _start(self, conn: int, peer: str, local: str, protocol: str, accepted: bool) -> _Flow:
        ours, theirs, made_up = _ends(conn, peer, local, accepted)
        if made_up and (peer or local):
            self.made_up += 1
        flow = _Flow(
            conn,
            UDP if protocol == "udp" else TCP,
            ours,
            theirs,
            _initial_sequence(conn, True),
            _initial_sequence(conn, False),
        )
        self._flows[conn] = flow
        self.connections += 1
        return flow

    def _midway(self, conn: int, protocol: str) -> _Flow:
        self.midway += 1
        flow = self._start(conn, "", "", protocol, accepted=False)
        # As if the handshake had happened before the transcript began.
        flow.our_next = (flow.our_next + 1) & 0xFFFFFFFF
        flow.their_next = (flow.their_next + 1) & 0xFFFFFFFF
        return flow

    def _data(self, flow: _Flow, at: float, from_us: bool, data: bytes) -> list[bytes]:
        if flow.protocol == UDP:
            return [self._datagram(flow, at, from_us, data)]
        return [
            self._segment(flow, at, from_us, PSH | ACK, data[start : start + MAX_SEGMENT])
            for start in range(0, len(data), MAX_SEGMENT)
        ]

    def _close(self, flow: _Flow, at: float, *, by_peer: bool, failed: bool) -> list[bytes]:
        if failed:
            if flow.our_fin and flow.their_fin:
                return []
            return [self._segment(flow, at, False, RST | ACK)]
        records: list[bytes] = []
        last_fin_from_us: bool | None = None
        for from_us in (False, True) if by_peer else (True, False):
            if not (flow.our_fin if from_us else flow.their_fin):
                records.append(self._segment(flow, at, from_us, FIN | ACK))
                last_fin_from_us = from_us
        if last_fin_from_us is not None:
            records.append(self._segment(flow, at, not last_fin_from_us, ACK))
        return records

    # ---- packets

    def _segment(
        self, flow: _Flow, at: float, from_us: bool, flags: int, payload: bytes = b""
    ) -> bytes:
        """One TCP segment from one end, advancing that end's sequence number."""
        if from_us:
            source, destination = flow.ours, flow.theirs
            seq, ack = flow.our_next, flow.their_next
        else:
            source, destination = flow.theirs, flow.ours
            seq, ack = flow.their_next, flow.our_next
        header = struct.pack(
            "!HHIIBBHHH",
            source.port,
            destination.port,
            seq,
            ack if flags & ACK else 0,
            5 << 4,  # data offset: 5 words, no options
            flags,
            WINDOW,
            0,
            0,
        )
        length = len(payload) + (1 if flags & (SYN | FIN) else 0)
        if from_us:
            flow.our_next = (seq + length) & 0xFFFFFFFF
            flow.our_fin = flow.our_fin or bool(flags & FIN)
        else:
            flow.their_next = (seq + length) & 0xFFFFFFFF
            flow.their_fin = flow.their_fin or bool(flags & FIN)
        return self._packet(at, source, destination, TCP, header + payload, checksum_at=16)

    def _datagram(self, flow: _Flow, at: float, from_us: bool, data: bytes) -> bytes:
        source, destination = (flow.ours, flow.theirs) if from_us else (flow.theirs, flow.ours)
        ip_header = 20 if source.address.version == 4 else 0  # IPv6's is outside its length
        room = 0xFFFF - ip_header - 8
        if len(data) > room:
            data = data[:room]
            self.truncated += 1
        header = struct.pack("!HHHH", source.port, destination.port, 8 + len(data), 0)
        return self._packet(at, source, destination, UDP, header + data, checksum_at=6)

    def _packet(
        self,
        at: float,
        source: _End,
        destination: _End,
        protocol: int,
        segment: bytes,
        *,
        checksum_at: int,
    ) -> bytes:
        """An IP packet around `segment`, its transport checksum filled in, as a pcap record."""
        src, dst = source.address.packed, destination.address.packed
        if source.address.version == 4:
            pseudo = src + dst + struct.pack("!BBH", 0, protocol, len(segment))
        else:
            pseudo = src + dst + struct.pack("!I3xB", len(segment), protocol)
        checksum = internet_checksum(pseudo + segment)
        if protocol == UDP and checksum == 0:
            checksum = 0xFFFF  # 0 would mean "no checksum" in UDP
        segment = segment[:checksum_at] + struct.pack("!H", checksum) + segment[checksum_at + 2 :]
        if source.address.version == 4:
            self._ident = (self._ident + 1) & 0xFFFF
            header = struct.pack(
                "!BBHHHBBH4s4s",
                0x45,
                0,
                20 + len(segment),
                self._ident,
                0x4000,  # don't fragment
                TTL,
                protocol,
                0,
                src,
                dst,
            )
            header = header[:10] + struct.pack("!H", internet_checksum(header)) + header[12:]
        else:
            header = struct.pack("!IHBB16s16s", 6 << 28, len(segment), protocol, TTL, src, dst)
        return _record(at, header + segment)


def _record(at: float, packet: bytes) -> bytes:
    micros = max(0, round(at * 1_000_000))
    seconds, fraction = divmod(micros, 1_000_000)
    seconds = min(seconds, 0xFFFFFFFF)
    return struct.pack("<IIII", seconds, fraction, len(packet), len(packet)) + packet


def export_pcap(entries: Iterable[Entry]) -> bytes:
    """A whole pcap file for `entries` (for a file too large to hold, feed a PcapExport)."""
    export = PcapExport()
    return file_header() + b"".join(export.feed(entry) for entry in entries)
