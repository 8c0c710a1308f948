"""What every transport is to the session: send, half-close, list and kick peers, close.

A transport owns one I/O loop thread and its sockets. Its public methods are called from the
session's thread; they queue work for the loop and raise SendError or UsageError at once for
what cannot be done, so the user gets one line and nothing is sent by halves. `Transport`
declares every member the session, batch mode and the REPL use: a new kind implements the
abstract ones and may rely on the rest; nothing outside a transport asks for more.
"""

from __future__ import annotations

import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import TYPE_CHECKING, Self

from netrepl.errors import UsageError
from netrepl.events import CertificateInfo, Event, Noticed, Received
from netrepl.framing import Framing
from netrepl.transport import Endpoint, FlowInfo, PeerInfo, SessionLink, Target
from netrepl.transport.delivery import Delivery, DirectDelivery
from netrepl.transport.loop import IOLoop

if TYPE_CHECKING:  # a relay's alone: imported by the relay, not at every start
    from netrepl.interception import RelayControls


class Transport(ABC):
    """One transport of a session: a connection, a listener and its clients, a UDP socket.

    It owns an I/O loop thread (`loop`) and the sockets that thread drives; every event it
    posts names its connection, and its connection ids come from the session's link, so two
    transports of one session (a relay's two legs) never share an id or a thread. Any thread
    may read its state and call its actions; an action raises SendError or UsageError at
    once for what it cannot do. The abstract members are what each kind must say; the
    others have the one right default.
    """

    runs_by_itself = False
    """It carries traffic without typed input (a relay): batch mode's end of stdin neither
    half-closes nor stops it; it runs until SIGINT or SIGTERM (or --once)."""

    def __init__(self, endpoint: Endpoint, link: SessionLink) -> None:
        self.endpoint = endpoint
        self._address = endpoint.label
        self._finished = 0
        self.cancel = link.cancel
        """Set by the user's Ctrl-C: whatever this transport is blocked on gives up."""
        self._post_event = link.post
        self._ids = link.ids
        self._changed = threading.Condition()
        self.loop = IOLoop(f"netrepl-io-{endpoint.protocol}", on_error=self._loop_failed)
        self.started_at = time.monotonic()

    @classmethod
    def open(cls, endpoint: Endpoint, link: SessionLink) -> Self:
        """Connect or listen now; on failure nothing is left open. Raises ConnectError."""
        transport = cls(endpoint, link)
        try:
            transport._open()
        except BaseException:
            transport.loop.stop()
            raise
        return transport

    @abstractmethod
    def _open(self) -> None:
        """Connect or listen (called once, by `open`). Raises ConnectError or UsageError."""

    # ---- events and waiting

    def post(self, event: Event) -> None:
        """Post an event for the display, and wake everyone waiting on this transport for
        what it changed. Data read changes nothing a waiter waits on (peers, clients come and
        gone, being open, what was sent), and waking them for each read cost a relay's round
        trip more than forwarding did (benchmarks/relaying.py)."""
        self._post_event(event)
        if not isinstance(event, Received):
            with self._changed:
                self._changed.notify_all()

    def notify(self) -> None:
        """Wake everyone waiting on this transport (a state changed without an event)."""
        with self._changed:
            self._changed.notify_all()

    def wait_for(self, predicate: Callable[[], bool], timeout: float | None) -> bool:
        """Wait until `predicate()` holds; it is checked after every event this posts."""
        with self._changed:
            return self._changed.wait_for(predicate, timeout)

    def _loop_failed(self, error: BaseException) -> None:
        self.post(
            Noticed(f"internal error in the {self.endpoint.kind} transport: {error!r}", "error")
        )

    # ---- what the session reads (any thread)

    @property
    def address(self) -> str:
        """Where this transport is, as people write it (`127.0.0.1:80`, `*:9000`,
        `unix:/tmp/dev.sock`): a listener's bound address, with the port the system chose
        for port 0, or else the endpoint's label. The toolbar and status lines show it."""
        return self._address

    @property
    @abstractmethod
    def state(self) -> str:
        """`connected`, `listening, 2 clients`, `reconnecting`, `closed`: for the toolbar."""

    @property
    @abstractmethod
    def is_open(self) -> bool:
        """Still connected, listening, or reconnecting."""

    @property
    @abstractmethod
    def can_send(self) -> bool:
        """There is someone to send to right now."""

    @property
    def awaiting_peer(self) -> bool:
        """Nobody to send to yet, but someone may come: a listener before its first client
        (or datagram), a client while it reconnects."""
        return self.is_open and not self.can_send and not self.peers()

    @property
    @abstractmethod
    def received(self) -> int:
        """Bytes received over every connection this transport has had."""

    @property
    @abstractmethod
    def sent(self) -> int:
        """Bytes handed to the sockets of every connection this transport has had."""

    @property
    @abstractmethod
    def last_activity(self) -> float:
        """When something was last received or sent (time.monotonic): batch --linger."""

    @property
    def failure(self) -> str | None:
        """Why the last connection failed, if it did (batch mode exits 1)."""
        return None

    @property
    def finished(self) -> int:
        """Clients that have come and gone (a listener's; batch --once waits for the first)."""
        return self._finished

    @abstractmethod
    def peers(self) -> list[PeerInfo]:
        """The open connections (a client's one peer, a listener's clients, UDP senders)."""

    def default_target(self) -> Target:
        """Where typed data goes until /to says otherwise."""
        return "all"

    def check_target(self, target: Target) -> None:
        """Raise UsageError for a /to target this kind cannot send to (by default an
        address: a stream listener sends to its clients, by id)."""
        if isinstance(target, tuple):
            raise UsageError("/to HOST:PORT is for UDP; for a TCP client use /to N (/clients)")

    def reply_target(self, conn: int) -> Target:
        """Where an automatic reply (/when) to what connection `conn` sent goes."""
        return conn

    def has_left(self, target: Target, conn: int) -> bool:
        """Connection `conn` has closed: was it the one `target` chose (/to N)?"""
        return conn == target

    def summary(self) -> str:
        """One line on what it did, for the end of a run that ran by itself."""
        return f"{self.received:,} bytes received, {self.sent:,} sent"

    def relay_controls(self) -> RelayControls:
        """Holds and rewrites (/hold, /forward, /drop, /rewrite): a relay's."""
        raise UsageError("only a relay (-l PORT --relay HOST:PORT) holds or rewrites")

    def flow_starter(self) -> Callable[[], None]:
        """What lets the conversations it starts by itself begin when it was opened with
        `flows_wait` (a relay's flows, once a --script's /hold and /rewrite are in place)."""
        return lambda: None  # the others start nothing by themselves

    def set_framing(self, framing: Framing) -> None:
        """The /frame mode changed: a relay holds and rewrites whole frames of it."""
        return  # the others leave framing to the display

    def flow_list(self) -> list[FlowInfo]:
        """A relay's flows (/flows)."""
        raise UsageError("/flows: only a relay (-l PORT --relay HOST:PORT) has flows")

    # ---- what the session does (any thread)

    @abstractmethod
    def send(self, data: bytes, target: Target, *, as_hex: bool) -> None:
        """Send `data` whole to `target`, returning once the loop has tried the socket (its
        `Sent` posted). Raises SendError (nothing sent) or SendInterrupted."""

    def deliver(self, target: Target, *, whole: bool = False) -> Delivery:
        """A send in pieces (a file) to `target`; by default each piece is one `send`.
        `whole`: the pieces are one payload (a file), one message where the transport has
        messages (a WebSocket's frames of one message); a stream or datagrams ignore it."""
        return DirectDelivery(
            self.endpoint.label, lambda data, as_hex: self.send(data, target, as_hex=as_hex)
        )

    def send_eof(self, target: Target) -> None:
        raise UsageError(f"/eof: {self.endpoint.kind} has no half-close")

    def ping(self, target: Target, payload: bytes) -> None:
        """Send a WebSocket ping to `target` (its pong is shown with the round trip)."""
        raise UsageError("/ping: only a WebSocket (ws://, -l PORT --ws) has pings")

    def close_with(self, code: int, reason: str) -> None:
        """Close as `close` does, saying why in the protocol's own terms (a WebSocket close
        frame's code and reason)."""
        raise UsageError(
            "/close CODE REASON: only a WebSocket closes with a code; /close alone closes"
        )

    def kick(self, conn: int) -> None:
        raise UsageError("/kick: only a listening netrepl has clients to kick")

    def chain(self, conn: int | None) -> tuple[CertificateInfo, ...]:
        raise UsageError("/cert: this connection does not use TLS")

    @abstractmethod
    def close(self) -> None:
        """Close every connection (and the listener) and stop the loop; say so in events.
        Calling it again does nothing."""
