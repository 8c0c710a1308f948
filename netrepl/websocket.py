"""WebSocket (RFC 6455) as bytes in and happenings out: the opening handshake, messages
reassembled up to a bound, pings, pongs and the closing handshake.

A thin layer over wsproto's sans-I/O connection that says what happened in netrepl's terms
(the upgrade accepted or refused, a message with its type and place) and keeps what must go
back to the peer (a pong, the reply to a close, the server's 101) for its owner to write. It never
touches a socket, a thread or the terminal: the transport feeds it and writes what it says.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence

import wsproto
from wsproto.connection import ConnectionState
from wsproto.events import (
    AcceptConnection,
    BytesMessage,
    CloseConnection,
    Ping,
    Pong,
    RejectConnection,
    RejectData,
    Request,
    TextMessage,
)
from wsproto.utilities import LocalProtocolError, RemoteProtocolError

from netrepl.records import record

CLOSE_CODE_NAMES = {
    1000: "normal closure",
    1001: "going away",
    1002: "protocol error",
    1003: "unsupported data",
    1005: "no status",
    1006: "abnormal closure",
    1007: "invalid payload",
    1008: "policy violation",
    1009: "message too big",
    1010: "mandatory extension",
    1011: "internal error",
    1012: "service restart",
    1013: "try again later",
    1014: "bad gateway",
    1015: "TLS handshake failed",
}
"""RFC 6455 section 7.4.1 and the IANA registry: what a close code means."""

CONTROL_PAYLOAD_LIMIT = 125
"""A ping, pong or close frame carries at most this many bytes (RFC 6455 5.5)."""
CLOSE_REASON_LIMIT = CONTROL_PAYLOAD_LIMIT - 2
REFUSED_BODY_SHOWN = 512
"""Of a refused upgrade's body, what is kept to show (the status and headers come first)."""


def close_code_name(code: int) -> str:
    """`normal closure`, `application code` (4000-4999), `reserved` (the rest)."""
    if code in CLOSE_CODE_NAMES:
        return CLOSE_CODE_NAMES[code]
    if 3000 <= code <= 3999:
        return "registered code"
    if 4000 <= code <= 4999:
        return "application code"
    return "reserved code"


def describe_close(code: int | None, reason: str) -> str:
    """`1000 normal closure`, `1008 policy violation: 'no token'`, `no status code`."""
    if code is None:
        return "no status code"
    text = f"{code} {close_code_name(code)}"
    return f"{text}: {reason!r}" if reason else text


def check_close_code(code: int) -> None:
    """Raise ValueError unless `code` may be sent in a close frame (RFC 6455 7.4)."""
    if code == 1000 or 1001 <= code <= 1003 or 1007 <= code <= 1014 or 3000 <= code <= 4999:
        return
    raise ValueError(
        f"close code {code} cannot be sent: use 1000-1003, 1007-1014 or 3000-4999"
        " (1005, 1006 and 1015 are only ever reported, never sent)"
    )


def message_type(data: bytes, as_hex: bool) -> str:
    """What a send becomes: `binary` for hex input (/x) and for bytes that are not UTF-8
    (a text message must be), `text` for the rest."""
    if as_hex:
        return "binary"
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return "binary"
    return "text"


OPCODES = {"continuation": 0, "text": 1, "binary": 2, "close": 8, "ping": 9, "pong": 10}
"""RFC 6455 5.2: a frame's opcode by name."""


def encode_frame(
    opcode: int, payload: bytes, *, fin: bool = True, mask: bytes | None = None
) -> bytes:
    """One frame as it goes on the wire (RFC 6455 5.2): `mask` is the 4-byte masking key a
    client's frame carries (None: a server's frame, unmasked). For what wsproto does not
    write: a capture made up from a log, a message cut in pieces by the demo peer."""
    if not 0 <= opcode <= 15:
        raise ValueError(f"opcode {opcode} is not 0-15")
    if mask is not None and len(mask) != 4:
        raise ValueError("a masking key is 4 bytes")
    size = len(payload)
    first = (0x80 if fin else 0) | opcode
    masked = 0x80 if mask is not None else 0
    if size < 126:
        head = bytes((first, masked | size))
    elif size < 1 << 16:
        head = bytes((first, masked | 126)) + size.to_bytes(2, "big")
    else:
        head = bytes((first, masked | 127)) + size.to_bytes(8, "big")
    if mask is None:
        return head + payload
    # The XOR of the whole payload as one big integer: a byte at a time is 100x slower.
    key = (mask * (size // 4 + 1))[:size]
    hidden = (int.from_bytes(payload, "big") ^ int.from_bytes(key, "big")).to_bytes(size, "big")
    return head + mask + hidden


# ---- what a peer's bytes make happen


@record(slots=True, unsafe_hash=True)
class UpgradeAccepted:
    """The opening handshake succeeded."""

    target: str
    """The request's path (`/chat?room=1`)."""
    subprotocol: str | None
    request: bytes
    """The HTTP request, head only, as it went on the wire (a capture shows it)."""
    response: bytes
    """The server's 101 response, head only."""


@record(slots=True, unsafe_hash=True)
class UpgradeRefused:
    """The server answered the upgrade with something else than 101 (a client's view), or
    the client's request was not an upgrade (a server's)."""

    status_line: str
    """`HTTP/1.1 403 Forbidden`, or what was wrong with a client's request."""
    headers: tuple[tuple[str, str], ...]
    body: bytes = b""
    """The first REFUSED_BODY_SHOWN bytes of the response's body."""


@record(slots=True, unsafe_hash=True)
class MessagePiece:
    """A data message, or a piece of one larger than the bound (`more` pieces follow)."""

    data: bytes
    binary: bool
    offset: int = 0
    """Bytes of the same message before this piece."""
    more: bool = False


@record(slots=True, unsafe_hash=True)
class ControlReceived:
    """A ping, pong or close frame from the peer. A ping is answered, and a close
    acknowledged, by what `outgoing` has after it."""

    opcode: str
    """`ping`, `pong` or `close`."""
    payload: bytes = b""
    code: int | None = None
    """A close frame's status code (None: it had none)."""
    reason: str = ""


@record(slots=True, unsafe_hash=True)
class ProtocolViolated:
    """The peer sent what RFC 6455 forbids (a text message that is not UTF-8, reserved
    bits); our close frame with this code says so, and the connection ends."""

    code: int
    reason: str


Happening = UpgradeAccepted | UpgradeRefused | MessagePiece | ControlReceived | ProtocolViolated


class HandshakeFailed(Exception):
    """The bytes are not a WebSocket handshake: a server's reason to answer 400 and close."""


class WebSocketProtocol:
    """One end of one WebSocket connection, client or server, as a sans-I/O state machine.

    `feed` takes bytes from the peer and returns what they made happen; `outgoing` then has
    the bytes to write back (the server's 101, pongs, the close reply). `message`, `ping` and
    `close` return the bytes of a frame to write. Not thread-safe: its owner uses it from one
    thread (the I/O loop's).
    """

    def __init__(
        self,
        *,
        client: bool,
        max_message: int,
        subprotocols: Sequence[str] = (),
    ) -> None:
        kind = wsproto.ConnectionType.CLIENT if client else wsproto.ConnectionType.SERVER
        self._connection = wsproto.WSConnection(kind)
        self.client = client
        self.max_message = max_message
        self._subprotocols = tuple(subprotocols)
        self._head = bytearray()  # the peer's bytes until its handshake head is complete
        self._request = b""
        self._target = ""
        self._refused: UpgradeRefused | None = None
        self._pieces: list[bytes] = []
        self._piece_size = 0
        self._message_offset = 0  # bytes of the current message already handed on
        self._outgoing: list[bytes] = []
        self.upgraded = False
        self.close_sent = False
        self.close_received = False

    @property
    def closed(self) -> bool:
        """Both ends have said close (or the connection can say nothing more)."""
        return self._connection.state is ConnectionState.CLOSED

    @property
    def open(self) -> bool:
        return self._connection.state is ConnectionState.OPEN

    # ---- handshake

    def request(
        self,
        host: str,
        target: str,
        *,
        headers: Sequence[tuple[str, str]] = (),
        subprotocols: Sequence[str] = (),
    ) -> bytes:
        """The client's upgrade request (host as the Host header wants it: `h:port`)."""
        self._target = target
        self._request = self._connection.send(
            Request(
                host=host,
                target=target,
                extra_headers=[(name.encode(), value.encode()) for name, value in headers],
                subprotocols=list(subprotocols),
            )
        )
        return self._request

    # ---- bytes from the peer

    def feed(self, data: bytes) -> list[Happening]:
        """What `data` from the peer makes happen (an empty `data` only drains what was
        fed before). Raises HandshakeFailed (a server's peer sent no upgrade)."""
        if not self.upgraded and self._refused is None:
            self._head += data
        try:
            if data:
                self._connection.receive_data(data)
            return self._happenings()
        except RemoteProtocolError as error:
            if not self.upgraded and not self.client:
                answer = error.event_hint or RejectConnection(status_code=400)
                if isinstance(answer, RejectConnection):
                    answer = RejectConnection(
                        status_code=answer.status_code,
                        headers=[(b"connection", b"close"), *answer.headers],
                    )
                with contextlib.suppress(LocalProtocolError):  # else the close says it
                    self._outgoing.append(self._connection.send(answer))
            raise HandshakeFailed(str(error)) from None
        except LocalProtocolError as error:  # data after the connection closed
            raise HandshakeFailed(str(error)) from None

    def unanswered(self) -> UpgradeRefused | None:
        """The stream ended during the handshake: what the server had said by then (a
        refusal whose body ran to the end of the stream), if anything."""
        if self._refused is not None:
            return self._refused
        head = self._head_only().split(b"\r\n", 1)[0]
        return UpgradeRefused(head.decode("latin-1"), ()) if head else None

    def peer_ended(self) -> None:
        """The byte stream ended without a close frame (1006): nothing more can be sent."""
        if self.upgraded and not self.closed:
            self._connection.receive_data(None)
            list(self._connection.events())

    def outgoing(self) -> bytes:
        """What must go back to the peer now (taken: a second call gives what came since)."""
        data = b"".join(self._outgoing)
        self._outgoing.clear()
        return data

    def _happenings(self) -> list[Happening]:
        found: list[Happening] = []
        for event in self._connection.events():
            match event:
                case Request():
                    found.append(self._accept(event))
                case AcceptConnection():
                    self.upgraded = True
                    found.append(
                        UpgradeAccepted(
                            self._target, event.subprotocol, self._request, self._head_only()
                        )
                    )
                case RejectConnection():
                    # The head as it came (h11 lowers the names): what the server said.
                    lines = self._head_only().decode("latin-1").split("\r\n")
                    headers = tuple(
                        (name.strip(), value.strip())
                        for name, _, value in (line.partition(":") for line in lines[1:] if line)
                    )
                    self._refused = UpgradeRefused(lines[0], headers)
                    if not event.has_body:
                        found.append(self._refused)
                case RejectData():
                    assert self._refused is not None
                    body = (self._refused.body + event.data)[:REFUSED_BODY_SHOWN]
                    self._refused = UpgradeRefused(
                        self._refused.status_line, self._refused.headers, body
                    )
                    if event.body_finished:
                        found.append(self._refused)
                case TextMessage() | BytesMessage():
                    found += self._message(event)
                case Ping():
                    # Once our close has gone, nothing more may be sent, a pong neither.
                    if self._connection.state is ConnectionState.OPEN:
                        self._outgoing.append(self._connection.send(event.response()))
                    found.append(ControlReceived("ping", bytes(event.payload)))
                case Pong():
                    found.append(ControlReceived("pong", bytes(event.payload)))
                case CloseConnection() if self._connection.state is ConnectionState.OPEN:
                    # wsproto's verdict on a frame it could not parse (the state is still
                    # open): say why in a close frame of our own.
                    code = int(event.code)
                    self._outgoing.append(self._connection.send(event))
                    self.close_sent = True
                    found.append(ProtocolViolated(code, event.reason or ""))
                case CloseConnection():
                    self.close_received = True
                    code = None if event.code == 1005 else int(event.code)
                    if self._connection.state is ConnectionState.REMOTE_CLOSING:
                        self._outgoing.append(self._connection.send(event.response()))
                        self.close_sent = True
                    found.append(ControlReceived("close", b"", code, event.reason or ""))
        return found

    def _head_only(self) -> bytes:
        end = self._head.find(b"\r\n\r\n")
        head = bytes(self._head if end < 0 else self._head[: end + 4])
        self._head.clear()
        return head

    def _accept(self, request: Request) -> UpgradeAccepted:
        chosen = next((p for p in self._subprotocols if p in request.subprotocols), None)
        response = self._connection.send(AcceptConnection(subprotocol=chosen))
        self._outgoing.append(response)
        self.upgraded = True
        return UpgradeAccepted(request.target, chosen, self._head_only(), response)

    def _message(self, event: TextMessage | BytesMessage) -> list[MessagePiece]:
        binary = isinstance(event, BytesMessage)
        data = bytes(event.data) if binary else str(event.data).encode("utf-8")
        if data:
            self._pieces.append(data)
            self._piece_size += len(data)
        pieces: list[MessagePiece] = []
        if self._message_offset == 0 and self._piece_size > self.max_message:
            # Larger than the bound: its first max_message bytes are shown, and the rest is
            # handed on in pieces as it comes, so memory stays bounded and a log gets it all.
            joined = b"".join(self._pieces)
            cut = self.max_message
            while not binary and cut > 0 and 0x80 <= joined[cut] <= 0xBF:
                cut -= 1  # a text message is cut between characters, never inside one
            head, rest = joined[:cut], joined[cut:]
            pieces.append(MessagePiece(head, binary, 0, more=True))
            self._message_offset = len(head)
            self._pieces, self._piece_size = [rest], len(rest)
        if event.message_finished:
            pieces.append(self._take_piece(binary, more=False))
        elif self._message_offset and self._piece_size:
            pieces.append(self._take_piece(binary, more=True))
        return pieces

    def _take_piece(self, binary: bool, *, more: bool) -> MessagePiece:
        data = b"".join(self._pieces)
        piece = MessagePiece(data, binary, self._message_offset, more)
        self._pieces.clear()
        self._piece_size = 0
        self._message_offset = self._message_offset + len(data) if more else 0
        return piece

    # ---- bytes to the peer

    def message(self, data: bytes, *, binary: bool) -> bytes:
        """One whole message (a single frame). ValueError if the connection is closing."""
        if not self.open:
            raise ValueError("the WebSocket is closing: nothing more can be sent")
        payload = data if binary else data.decode("utf-8")
        return self._connection.send(
            BytesMessage(data=data) if binary else TextMessage(data=payload)  # type: ignore[arg-type]
        )

    def fragment(self, data: bytes, *, last: bool) -> bytes:
        """A frame of a binary message sent in pieces (a file): FIN only on the `last`,
        which may be empty. ValueError if the connection is closing."""
        if not self.open:
            raise ValueError("the WebSocket is closing: nothing more can be sent")
        return self._connection.send(BytesMessage(data=data, message_finished=last))

    def ping(self, payload: bytes) -> bytes:
        if len(payload) > CONTROL_PAYLOAD_LIMIT:
            raise ValueError(f"a ping carries at most {CONTROL_PAYLOAD_LIMIT} bytes")
        if not self.open:
            raise ValueError("the WebSocket is closing: no ping can be sent")
        return self._connection.send(Ping(payload=payload))

    def close(self, code: int = 1000, reason: str = "") -> bytes:
        """The close frame (b"" if one was sent already)."""
        if self.close_sent or self._connection.state not in (
            ConnectionState.OPEN,
            ConnectionState.REMOTE_CLOSING,
        ):
            return b""
        self.close_sent = True
        return self._connection.send(CloseConnection(code=code, reason=reason or None))
