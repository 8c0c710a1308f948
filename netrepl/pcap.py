"""Transcripts as packet captures: entries in, the bytes of a classic pcap file out.

Pure: builds synthetic IPv4/IPv6 packets (LINKTYPE_RAW) in memory from transcript entries, so
Wireshark or tcpdump can show a session. Never opens a file, a socket or a clock: `offline.py`
reads the transcript and writes what this returns.
"""

from __future__ import annotations

import ipaddress
import struct
from collections.abc import Iterable

from netrepl.events import (
    Closed,
    Connected,
    HalfClosed,
    Listening,
    Received,
    Sent,
    Signalled,
    Upgraded,
)
from netrepl.records import record, replace
from netrepl.transcript import Entry
from netrepl.websocket import OPCODES, encode_frame

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


@record(slots=True, unsafe_hash=True)
class _End:
    """One end of a captured conversation: address and port."""

    address: IPAddress
    port: int


@record(slots=True)
class _Conversation:
    """One TCP or UDP conversation's packets so far: both ends and the next sequence number
    of each. `ours` is netrepl's end; in a relay's conversation, where netrepl is not an end
    at all, the client's end takes its place (so the client sends the SYN, as ours does
    when netrepl connects)."""

    conn: int
    protocol: int
    ours: _End
    theirs: _End
    our_next: int
    their_next: int
    our_fin: bool = False
    their_fin: bool = False
    reset: bool = False
    client_is_ours: bool = True
    """`ours` opened the connection: a WebSocket's client end, whose frames are masked."""
    frames: int = 0
    """WebSocket frames written so far: each masked one's key is made from the count."""


@record(slots=True, unsafe_hash=True)
class _Leg:
    """A connection id's place in a conversation: an ordinary connection is the whole of
    one; a relay flow's client leg and upstream leg share one."""

    conversation: _Conversation
    peer_is_ours: bool
    """Its peer is the conversation's `ours` end: only a relay's client leg."""
    relayed: bool = False


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

    One synthetic conversation per connection id, from its `Connected` record's addresses.
    An end that is not an IP literal (a unix socket, a host name, an unspecified listen
    address) gets a fake address: 10.0.0.1 (ours) / 10.0.0.2 (the peer), or fd00::1 /
    fd00::2 when the other end is IPv6; a fake port is 49152 + conn % 16384 for the client
    end and 9 for the server end. TCP and unix connections become TCP: a SYN/SYN-ACK/ACK
    handshake at the connect time (the client sends the SYN), each `Received`/`Sent` as
    PSH/ACK segments of at most 65,000 bytes with running sequence and acknowledgement
    numbers, `HalfClosed` as our FIN (the peer's, `by_peer`), acknowledged, `Closed` as the
    FIN/ACK exchange for whichever side has not sent its FIN yet (the peer first when it
    closed), or as a RST from the peer when the close failed (a reset or an error: the
    transcript does not say more). TLS connections appear as their plaintext. A WebSocket
    connection's `upgraded` record is its request head from the client's end and its response
    head from the server's; then each message (`Received`/`Sent` with `message`) is one frame
    as on the wire (text or binary, FIN set; a message logged in pieces is a first frame and
    continuation frames, FIN on the last), and each control record (`Signalled`) a ping, pong
    or close frame; the client's frames are masked. UDP records
    become one datagram each; one too large for a single packet (only possible over a fake
    IPv4 flow) is cut to fit and counted in `truncated`. Records of a connection without a
    `Connected` record (a transcript that starts mid-way) start a conversation with fake
    addresses and no handshake, as a capture started mid-way looks; UDP when the first
    record is a datagram, TCP otherwise. Closes and other records of such unknown
    connections produce nothing: their protocol is unknown.

    A relay flow (#N: a client leg and an upstream leg, `Connected.flow`) is ONE
    conversation between the client's address and the upstream's, as if netrepl were not
    there, so "Follow TCP Stream" shows the dialogue and dissectors pick the upstream's port.
    Each direction is what its receiving peer got from netrepl:
    - client -> upstream: the client leg's `Received` (forwarded) and the upstream leg's
      `Sent` (injected with `/to upstream`: the upstream received them from the client's
      side of the conversation, in the order they were logged); upstream -> client: the
      upstream leg's `Received` and the client leg's `Sent`.
    - The handshake is written when the upstream leg connects: the client's SYN at the
      client's connect time, the upstream's SYN-ACK and the client's ACK at the upstream's.
      Until then the conversation's far end is unknown, so the flow's packets are written
      late; with several flows at once the file is then not strictly in time order
      (Wireshark reads it so; `reordercap` sorts it). A client whose upstream never
      connected appears as what it was: a connection to netrepl's listener, closed.
    - A FIN appears when the peer it is for receives it: when netrepl ends writing on that
      peer's leg (its `HalfClosed`, or its `Closed`). A peer's own FIN to netrepl
      (`HalfClosed by_peer`) writes nothing by itself: the relay passes it on at once, and
      the FIN written is that one, as the other peer got it: after any bytes still queued
      for that peer (injected ones included), which the peer received before it.
    - A failed `Closed` on either leg is a RST from that leg's peer; the other leg's reset
      that the relay passes on is the same RST, so the conversation ends there.
    - Bytes logged for a direction that had ended already (a leg's peer still sending
      after the other leg closed) never reached the other peer: they are left out and
      counted in `after_end`.
    """

    def __init__(self) -> None:
        self.packets = 0
        self.connections = 0
        """Conversations: one per ordinary connection, one per relay flow."""
        self.truncated = 0
        """Datagrams cut to fit one packet."""
        self.midway = 0
        """Connections with no `connected` record (a log started mid-way): made-up ends."""
        self.made_up = 0
        """Connections with ends that are not IP addresses (unix, names): made-up ends."""
        self.after_end = 0
        """Bytes of relay legs logged after their direction had ended: never passed on."""
        self._legs: dict[int, _Leg] = {}
        self._waiting: dict[int, list[Entry]] = {}
        """Relay client legs by connection id, until their upstream leg connects: the
        `Connected` record, then what else the leg logged meanwhile (its conversation's far
        end is not known yet)."""
        self._waiting_client: dict[int, int] = {}
        """A flow's number -> its waiting client leg (a number is used again by a relay
        started later in the same log: the newest client with it is the one an upstream
        leg joins)."""
        self._ident = 0
        self._listening = "tcp"
        self._sending: set[int] = set()
        """WebSocket connections with a message of ours under way in pieces (a file)."""
        """A UDP listener's sends to an address it never heard from have no `connected`
        record: they are datagrams all the same."""

    def feed(self, entry: Entry) -> bytes:
        """The packet records for one entry (often none), to append to the file."""
        records = self._records(entry)
        self.packets += len(records)
        return b"".join(records)

    def _records(self, entry: Entry) -> list[bytes]:
        at, event = entry.at, entry.event
        if isinstance(event, Connected) and event.flow is not None:
            if event.side == "client":
                self._waiting[event.conn] = [entry]
                self._waiting_client[event.flow] = event.conn
                return []
            client = self._waiting_client.pop(event.flow, None)
            if client is not None:
                return self._join(self._waiting.pop(client), entry)
            # An upstream leg whose client is not in the transcript: it is netrepl's own
            # connection to the upstream, and shown as one.
        waiting = self._waiting.get(getattr(event, "conn", -1))
        if waiting is not None:
            return self._wait(waiting, entry)
        records: list[bytes] = []
        match event:
            case Connected(conn, peer, local, _, accepted):
                kind = "udp" if event.datagrams else "tcp"
                conversation = self._start(conn, peer, local, kind, accepted)
                if conversation.protocol == TCP:
                    records += self._handshake(conversation, at, at, client_is_us=not accepted)
            case Received(conn, data, datagram):
                leg = self._legs.get(conn) or self._midway(conn, "udp" if datagram else "tcp")
                if event.message:
                    opcode = (
                        OPCODES[event.message] if event.offset == 0 else OPCODES["continuation"]
                    )
                    data = self._frame(leg, leg.peer_is_ours, opcode, data, fin=not event.more)
                records += self._data(leg, at, leg.peer_is_ours, data)
            case Listening(_, protocol):
                self._listening = "udp" if protocol == "udp" else "tcp"
            case Sent(conn, data):
                leg = self._legs.get(conn) or self._midway(conn, self._listening)
                if event.message:
                    # A message sent in pieces (a file): a first frame, continuations, and
                    # the last (empty) one with FIN.
                    going = conn in self._sending
                    opcode = OPCODES["continuation"] if going else OPCODES[event.message]
                    if event.more:
                        self._sending.add(conn)
                    else:
                        self._sending.discard(conn)
                    data = self._frame(leg, not leg.peer_is_ours, opcode, data, fin=not event.more)
                records += self._data(leg, at, not leg.peer_is_ours, data)
            case Upgraded(conn, _, _, request, response):
                leg = self._legs.get(conn) or self._midway(conn, "tcp")
                client_is_us = leg.conversation.client_is_ours != leg.peer_is_ours
                records += self._data(leg, at, client_is_us, request)
                records += self._data(leg, at, not client_is_us, response)
            case Signalled(conn, opcode, outgoing, payload, code, reason):
                leg = self._legs.get(conn) or self._midway(conn, "tcp")
                from_us = outgoing != leg.peer_is_ours
                if opcode == "close" and code is not None:
                    payload = code.to_bytes(2, "big") + reason.encode("utf-8")
                frame = self._frame(leg, from_us, OPCODES[opcode], payload, fin=True)
                records += self._data(leg, at, from_us, frame)
            case HalfClosed(conn, by_peer):
                leg = self._legs.get(conn)
                if leg is not None and not (by_peer and leg.relayed):
                    from_us = leg.peer_is_ours if by_peer else not leg.peer_is_ours
                    records += self._fin(leg.conversation, at, from_us)
            case Closed(conn, reason, _, _, failed):
                leg = self._legs.pop(conn, None)
                if leg is not None and leg.conversation.protocol == TCP:
                    if leg.relayed:
                        records += self._leg_closed(leg, at, failed=failed)
                    else:
                        by_peer = "by peer" in reason
                        records += self._close(leg.conversation, at, by_peer=by_peer, failed=failed)
        return records

    # ---- conversations

    def _start(
        self, conn: int, peer: str, local: str, protocol: str, accepted: bool
    ) -> _Conversation:
        conversation = self._conversation(conn, peer, local, protocol, accepted)
        self._legs[conn] = _Leg(conversation, peer_is_ours=False)
        return conversation

    def _conversation(
        self, conn: int, peer: str, local: str, protocol: str, accepted: bool
    ) -> _Conversation:
        ours, theirs, made_up = _ends(conn, peer, local, accepted)
        if made_up and (peer or local):
            self.made_up += 1
        self.connections += 1
        return _Conversation(
            conn,
            UDP if protocol == "udp" else TCP,
            ours,
            theirs,
            _initial_sequence(conn, True),
            _initial_sequence(conn, False),
            client_is_ours=not accepted,
        )

    def _midway(self, conn: int, protocol: str) -> _Leg:
        self.midway += 1
        conversation = self._start(conn, "", "", protocol, accepted=False)
        # As if the handshake had happened before the transcript began.
        conversation.our_next = (conversation.our_next + 1) & 0xFFFFFFFF
        conversation.their_next = (conversation.their_next + 1) & 0xFFFFFFFF
        return self._legs[conn]

    def _handshake(
        self, conversation: _Conversation, syn_at: float, at: float, *, client_is_us: bool
    ) -> list[bytes]:
        return [
            self._segment(conversation, syn_at, client_is_us, SYN),
            self._segment(conversation, at, not client_is_us, SYN | ACK),
            self._segment(conversation, at, client_is_us, ACK),
        ]

    def _data(self, leg: _Leg, at: float, from_us: bool, data: bytes) -> list[bytes]:
        conversation = leg.conversation
        if conversation.protocol == UDP:
            return [self._datagram(conversation, at, from_us, data)]
        ended = conversation.our_fin if from_us else conversation.their_fin
        if conversation.reset or ended:
            # Only a relay leg logs data for a direction that has ended: its peer went on
            # sending after the other side had gone, and none of it was passed on.
            self.after_end += len(data)
            return []
        return [
            self._segment(conversation, at, from_us, PSH | ACK, data[start : start + MAX_SEGMENT])
            for start in range(0, len(data), MAX_SEGMENT)
        ]

    def _frame(self, leg: _Leg, from_us: bool, opcode: int, payload: bytes, *, fin: bool) -> bytes:
        """A WebSocket frame from one end: masked when that end is the client (RFC 6455
        5.3). The log keeps no masking keys: each is made up from the conversation and the
        frame's number, so the same transcript gives the same file (a real client picks them
        at random; a dissector needs only the key in the frame to unmask it)."""
        conversation = leg.conversation
        mask = None
        if from_us == conversation.client_is_ours:
            conversation.frames += 1
            mixed = (conversation.conn * 0x9E3779B1 + conversation.frames * 0x85EBCA6B) & 0xFFFFFFFF
            mask = struct.pack("!I", mixed)
        return encode_frame(opcode, payload, fin=fin, mask=mask)

    def _fin(self, conversation: _Conversation, at: float, from_us: bool) -> list[bytes]:
        """A FIN from one end, acknowledged by the other, unless that end has sent one."""
        sent = conversation.our_fin if from_us else conversation.their_fin
        if conversation.protocol != TCP or conversation.reset or sent:
            return []
        return [
            self._segment(conversation, at, from_us, FIN | ACK),
            self._segment(conversation, at, not from_us, ACK),
        ]

    def _close(
        self, conversation: _Conversation, at: float, *, by_peer: bool, failed: bool
    ) -> list[bytes]:
        if failed:
            if conversation.our_fin and conversation.their_fin:
                return []
            return [self._segment(conversation, at, False, RST | ACK)]
        records: list[bytes] = []
        last_fin_from_us: bool | None = None
        for from_us in (False, True) if by_peer else (True, False):
            if not (conversation.our_fin if from_us else conversation.their_fin):
                records.append(self._segment(conversation, at, from_us, FIN | ACK))
                last_fin_from_us = from_us
        if last_fin_from_us is not None:
            records.append(self._segment(conversation, at, not last_fin_from_us, ACK))
        return records

    # ---- relay flows

    def _wait(self, waiting: list[Entry], entry: Entry) -> list[bytes]:
        """A waiting client leg's record: kept until its upstream connects. If the client
        leg closes first (the upstream was unreachable, or the relay stopped), the client's
        connection to netrepl's listener is all there was: it is written as one."""
        waiting.append(entry)
        if not isinstance(entry.event, Closed):
            return []
        first, *rest = waiting
        assert isinstance(first.event, Connected)
        del self._waiting[first.event.conn]
        if self._waiting_client.get(first.event.flow) == first.event.conn:
            del self._waiting_client[first.event.flow]
        alone = Entry(first.at, replace(first.event, flow=None, side=None))
        return [record for kept in (alone, *rest) for record in self._records(kept)]

    def _join(self, waiting: list[Entry], entry: Entry) -> list[bytes]:
        """The upstream leg connected: the flow's conversation starts, from the client's
        address to the upstream's, and what its client leg logged meanwhile follows."""
        first, *rest = waiting
        client, upstream = first.event, entry.event
        assert isinstance(client, Connected) and isinstance(upstream, Connected)
        kind = "udp" if client.datagrams or upstream.datagrams else "tcp"
        # The client's end is `ours`: as when netrepl connects, the client's side opens.
        conversation = self._conversation(
            client.conn, upstream.peer, client.peer, kind, accepted=False
        )
        self._legs[client.conn] = _Leg(conversation, peer_is_ours=True, relayed=True)
        self._legs[upstream.conn] = _Leg(conversation, peer_is_ours=False, relayed=True)
        records: list[bytes] = []
        if conversation.protocol == TCP:
            records += self._handshake(conversation, first.at, entry.at, client_is_us=True)
        for kept in rest:
            records += self._records(kept)
        return records

    def _leg_closed(self, leg: _Leg, at: float, *, failed: bool) -> list[bytes]:
        conversation = leg.conversation
        if not failed:
            # netrepl ended writing to this leg's peer, if it had not already.
            return self._fin(conversation, at, not leg.peer_is_ours)
        if conversation.reset or (conversation.our_fin and conversation.their_fin):
            return []
        conversation.reset = True
        return [self._segment(conversation, at, leg.peer_is_ours, RST | ACK)]

    # ---- packets

    def _segment(
        self,
        conversation: _Conversation,
        at: float,
        from_us: bool,
        flags: int,
        payload: bytes = b"",
    ) -> bytes:
        """One TCP segment from one end, advancing that end's sequence number."""
        if from_us:
            source, destination = conversation.ours, conversation.theirs
            seq, ack = conversation.our_next, conversation.their_next
        else:
            source, destination = conversation.theirs, conversation.ours
            seq, ack = conversation.their_next, conversation.our_next
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
            conversation.our_next = (seq + length) & 0xFFFFFFFF
            conversation.our_fin = conversation.our_fin or bool(flags & FIN)
        else:
            conversation.their_next = (seq + length) & 0xFFFFFFFF
            conversation.their_fin = conversation.their_fin or bool(flags & FIN)
        return self._packet(at, source, destination, TCP, header + payload, checksum_at=16)

    def _datagram(
        self, conversation: _Conversation, at: float, from_us: bool, data: bytes
    ) -> bytes:
        source, destination = (
            (conversation.ours, conversation.theirs)
            if from_us
            else (conversation.theirs, conversation.ours)
        )
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
