"""What happens in a session, as small immutable records passed to the display in order.

Transport threads and the REPL create them; only the display consumes them. Events carry
bytes and facts, never rendered text or terminal codes.
"""

from __future__ import annotations

from typing import Literal

from netrepl.records import field, record
from netrepl.view import View

NoticeLevel = Literal["status", "info", "error"]
Side = Literal["client", "upstream"]
"""A relay flow's two legs: the client that came to netrepl, and the upstream netrepl
connected to for it."""
SIDES: tuple[Side, ...] = ("client", "upstream")
Protocol = str
"""The name of the connection's transport kind (`tcp`, `udp`, `unix`, or any kind registered
in transport/registry.py)."""


@record(slots=True, unsafe_hash=True)
class Connected:
    """A connection is up; in listen mode, a client came in (`accepted`).

    For UDP there is no connection: a client socket is ready to send to `peer`, and in listen
    mode each new sender is announced once, so it has an id for `/to` and `/clients`.
    """

    conn: int
    peer: str
    local: str
    protocol: Protocol = "tcp"
    accepted: bool = False
    at: float = field(default=0.0, compare=False)
    datagram: bool | None = field(default=None, compare=False)
    """Its data comes in datagrams: each one a block of its own, a sender not a client. None:
    as its kind implies (`udp` does). Not compared: it follows from the kind."""

    flow: int | None = None
    """Relay mode: the flow (#N) this connection is a leg of; what it receives is forwarded
    to the flow's other leg, and what is sent on it was typed (injected). None otherwise."""
    side: Side | None = None
    """Relay mode: which leg of its flow this connection is."""
    via: str | None = None
    """A client's connection through a proxy (--proxy): `socks5 proxy 127.0.0.1:1080`."""

    @property
    def datagrams(self) -> bool:
        return self.protocol == "udp" if self.datagram is None else self.datagram


@record(slots=True, unsafe_hash=True)
class Listening:
    """A listener is bound and waits for clients (or datagrams)."""

    address: str
    protocol: Protocol = "tcp"
    tls: bool = False
    title: str = field(default="", compare=False)
    """How people call the kind (`TCP`, `UDP`, `unix`); empty in an old transcript. Not
    compared: it follows from the kind (`protocol`)."""
    upstream: str = ""
    """Relay mode: the address every client's flow connects to (`127.0.0.1:502`)."""


@record(slots=True, unsafe_hash=True)
class CertificateInfo:
    """One certificate of a TLS peer's chain, as /cert shows it."""

    subject: str
    issuer: str
    not_before: str
    not_after: str
    alt_names: tuple[str, ...] = ()
    days_left: int | None = None
    """Whole days until not_after when the handshake happened (negative: expired)."""


@record(slots=True, unsafe_hash=True)
class TlsEstablished:
    """A TLS handshake finished on connection `conn`."""

    conn: int
    version: str
    cipher: str
    alpn: str | None
    verified: bool
    chain: tuple[CertificateInfo, ...] = ()
    """The peer's certificates, leaf first (empty when a client sent none)."""


@record(slots=True, unsafe_hash=True)
class Received:
    """Bytes read from connection `conn`, in the order they arrived."""

    conn: int
    data: bytes
    datagram: bool = False
    """One whole UDP datagram: shown as a block of its own, whatever the view."""
    at: float = field(default=0.0, compare=False)
    """When it was read (seconds since the epoch): timestamps, idle framing, the log."""
    message: str = ""
    """A WebSocket message (`text` or `binary`), shown as a block of its own; "" for bytes
    of a stream or a datagram."""
    offset: int = 0
    """A piece of a message larger than --max-message: bytes of it before this piece."""
    more: bool = False
    """A piece of a message larger than --max-message, and more of it follows."""


@record(slots=True, unsafe_hash=True)
class Sent:
    """Bytes handed to connection `conn`'s socket, for the echo and the log."""

    conn: int
    data: bytes
    as_hex: bool
    """True when the user sent hex (/x, hex input): the echo then shows the bytes in hex."""
    echo: bool = True
    """False for the copies of one send to further clients: the echo is shown once."""
    at: float = field(default=0.0, compare=False)
    """When it was handed to the transport (seconds since the epoch)."""
    injected: bool = False
    """Typed into a relay's flow (what a relay forwards is never posted as sent)."""
    message: str = ""
    """Sent as a WebSocket message: `text` or `binary`; "" otherwise."""
    more: bool = False
    """A piece of a message sent in frames (/sendfile over a WebSocket): more follows; the
    message's end is a `Sent` with no data and `more` False."""


@record(slots=True, unsafe_hash=True)
class Upgraded:
    """A WebSocket opening handshake succeeded: from now on the connection carries messages."""

    conn: int
    target: str
    """The request's path (`/chat`)."""
    subprotocol: str | None = None
    request: bytes = b""
    """The upgrade request's head as it went on the wire (the log and a capture keep it)."""
    response: bytes = b""
    """The server's 101 response head."""


@record(slots=True, unsafe_hash=True)
class Signalled:
    """A WebSocket control frame went by: a ping, a pong or a close, either way."""

    conn: int
    opcode: str
    """`ping`, `pong` or `close`."""
    outgoing: bool
    """Sent by netrepl (a /ping, an automatic ping, our close); else the peer's."""
    payload: bytes = b""
    code: int | None = None
    """A close frame's status code; None when it had none."""
    reason: str = ""
    round_trip: float | None = None
    """A pong answering our ping: seconds since that ping went."""
    at: float = field(default=0.0, compare=False)


@record(slots=True, unsafe_hash=True)
class HalfClosed:
    """We sent our end of stream (/eof); the connection still reads. With `by_peer`, the
    peer sent its end instead, and we may still write (only a relay leg stays open so)."""

    conn: int
    by_peer: bool = False


@record(slots=True, unsafe_hash=True)
class Closed:
    """Connection `conn` closed, with why and what it carried."""

    conn: int
    reason: str
    received: int
    sent: int
    failed: bool = False
    """True for a reset or an error, False for an orderly close by either side."""


@record(slots=True, unsafe_hash=True)
class Submitted:
    """A line the user entered at the prompt, echoed so the scrollback reads as typed."""

    prompt: str
    line: str


@record(slots=True, unsafe_hash=True)
class Noticed:
    """A one-off message for the user: a status line, command output, or an error."""

    text: str
    level: NoticeLevel = "info"


@record(slots=True, unsafe_hash=True)
class ViewChanged:
    """The view, the framing or the timestamps changed: it applies to what comes after."""

    view: View


@record(slots=True, unsafe_hash=True)
class PauseChanged:
    """/pause and /resume: received data is counted but not shown while paused."""

    paused: bool
    at: float
    kept_in: str | None = None
    """Where what was not shown can be found (the log file), for the summary on resume."""


@record(slots=True, unsafe_hash=True)
class StatsRequested:
    """/stats: the display answers in order with the data, from what it has counted."""

    at: float


@record(slots=True, unsafe_hash=True)
class Progress:
    """How far a long send (/sendfile) has come: shown in place, then as one status line."""

    label: str
    done: int
    """Bytes handed to the socket (to every recipient still in the send)."""
    total: int | None
    """The size of the file; None for a stream (a device, a pipe) whose end is not known."""
    elapsed: float
    finished: bool = False
    outcome: str = ""
    """When finished: how it ended (`sent`, `interrupted`, `failed: ...`)."""
    detail: str = ""
    """When recipients got different amounts: who got how much, and why they stopped."""


@record(slots=True, unsafe_hash=True)
class Skipped:
    """Received data the interactive display had no time to show: only its size travels on,
    so offsets, counters and /stats stay exact."""

    conn: int
    size: int
    reads: int
    at: float = field(default=0.0, compare=False)

    def plus(self, size: int, at: float) -> Skipped:
        return Skipped(self.conn, self.size + size, self.reads + 1, at)


@record(slots=True, unsafe_hash=True)
class ClearRequested:
    """/clear: clear the screen (nothing happens in batch mode)."""


Event = (
    Connected
    | Listening
    | TlsEstablished
    | Upgraded
    | Signalled
    | Received
    | Sent
    | HalfClosed
    | Closed
    | Submitted
    | Noticed
    | ViewChanged
    | PauseChanged
    | StatsRequested
    | Progress
    | Skipped
    | ClearRequested
)
