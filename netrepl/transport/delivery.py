"""What a send to one or several connections means, decided in one place.

A send (a typed line, or the pieces of a file) goes to the recipients chosen when it begins.
Each recipient gets all of it, or a contiguous prefix and the reason it stopped (it stopped
reading, it left, the user interrupted): never a copy with holes. Counts are the bytes handed
to each socket, so a final line agrees with the toolbar. Nothing here renders or prints.
"""

from __future__ import annotations

import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable

from netrepl.errors import SendError
from netrepl.records import record
from netrepl.transport import CANCEL_POLL_SECONDS
from netrepl.transport.stream import SEND_WAIT_SECONDS, SendInterrupted, StreamChannel

Waiting = Callable[[], None]
"""Called every few tens of milliseconds while a send waits for a peer to read."""


@record
class Recipient:
    """One connection a send goes to, and how much of the send it got."""

    conn: int
    label: str
    """`#2` for a client of a listener, the peer's address for a client connection."""
    queued: int = 0
    """Bytes of this send queued for it."""
    handed: int = 0
    """Bytes of this send handed to its socket."""
    stopped: str | None = None
    """Why it gets no more of this send (None: it got everything so far)."""
    error: str = ""
    """The whole message of the error that stopped it."""


class Delivery(ABC):
    """One send to a fixed set of recipients, written piece by piece.

    `write` queues a piece for every recipient still in the send, waiting for those whose
    queue is full (each up to SEND_WAIT_SECONDS; a recipient that takes nothing in that time
    is not reading, and is left out of the rest of this send); `withdraw` takes back what has
    not reached the sockets when the user interrupts. Any thread; on an I/O loop's own thread
    (an automatic reply) nothing waits.
    """

    def __init__(self, recipients: list[Recipient]) -> None:
        self.recipients = recipients
        self._by_conn = {recipient.conn: recipient for recipient in recipients}

    @abstractmethod
    def write(
        self, data: bytes, *, as_hex: bool, waiting: Waiting | None = None, settle: bool = False
    ) -> None:
        """Queue `data` for every recipient still in the send. Raises SendError when none of
        them took it, SendInterrupted when the user interrupted. `settle`: return once what
        could go at once has gone (its `Sent` posted), as a typed line must."""

    def withdraw(self) -> None:
        """The send stops here (interrupted): take back what has not reached a socket."""
        for recipient in self.live:
            recipient.stopped = "interrupted"

    @abstractmethod
    def finish(self, cancel: threading.Event, waiting: Waiting | None = None) -> None:
        """Wait until what was queued has reached the sockets, so the counts are final.
        Raises SendInterrupted (after withdrawing) when the user interrupts."""

    def count(self, conn: int, size: int) -> None:
        """`size` more bytes of this send reached the socket of `conn` (any thread)."""
        recipient = self._by_conn.get(conn)
        if recipient is not None:
            recipient.handed += size

    @property
    def live(self) -> list[Recipient]:
        return [recipient for recipient in self.recipients if recipient.stopped is None]

    @property
    def handed(self) -> int:
        """How far the send has gone: the least handed to a recipient still in it (or, when
        none is left, the most any recipient got)."""
        live = self.live
        counts = [r.handed for r in (live or self.recipients)]
        if not counts:
            return 0
        return min(counts) if live else max(counts)

    def outcome(self) -> str:
        """Per recipient, when they differ: `#2 got 4,194,304 (not reading)`; "" when every
        recipient got the same."""
        if len({(r.handed, r.stopped) for r in self.recipients}) <= 1:
            return ""
        return "; ".join(
            f"{r.label} got {r.handed:,}" + (f" ({r.stopped})" if r.stopped else "")
            for r in self.recipients
        )


class ChannelDelivery(Delivery):
    """A send over stream channels (TCP, unix, TLS): queued on their I/O loop."""

    def __init__(self, channels: list[tuple[StreamChannel, str]], cancel: threading.Event) -> None:
        super().__init__([Recipient(channel.id, label) for channel, label in channels])
        self._channels = {channel.id: channel for channel, _ in channels}
        self._cancel = cancel
        self._echoed = False

    def write(
        self, data: bytes, *, as_hex: bool, waiting: Waiting | None = None, settle: bool = False
    ) -> None:
        live = self.live
        if not live:
            raise SendError(self._why_nobody())
        # Those with room first, so a recipient that is not reading delays the others by
        # nothing but the time this call takes to return.
        live.sort(key=lambda r: not self._channels[r.conn].has_room)
        took = 0
        for recipient in live:
            channel = self._channels[recipient.conn]
            try:
                channel.send(
                    data,
                    as_hex=as_hex,
                    echo=not self._echoed,
                    delivery=self,
                    timeout=SEND_WAIT_SECONDS,
                    waiting=waiting,
                    settle=settle,
                )
            except SendInterrupted:
                missed = live[live.index(recipient) :]
                for rest in missed:
                    rest.stopped = "interrupted"
                if not took:
                    raise
                names = ", ".join(r.label for r in missed)
                raise SendInterrupted(
                    f"interrupted while waiting for {names} to read: not sent to"
                    f" {'it' if len(missed) == 1 else 'them'}; sent to the rest"
                ) from None
            except SendError as error:
                recipient.error = str(error)
                recipient.stopped = self._reason(channel)
                # What it has queued of this send will not go either: its copy ends exactly
                # where the count says.
                channel.withdraw(self)
                continue
            recipient.queued += len(data)
            took += 1
            self._echoed = True
        if not took:
            raise SendError(self._why_nobody())

    def withdraw(self) -> None:
        for recipient in self.recipients:
            self._channels[recipient.conn].withdraw(self)
        super().withdraw()

    def finish(self, cancel: threading.Event, waiting: Waiting | None = None) -> None:
        progress_at = time.monotonic()
        last = [r.handed for r in self.recipients]
        while behind := [r for r in self.live if r.handed < r.queued]:
            if cancel.is_set():
                self.withdraw()
                raise SendInterrupted("interrupted")
            counts = [r.handed for r in self.recipients]
            now = time.monotonic()
            if counts != last:
                last, progress_at = counts, now
            elif now - progress_at >= SEND_WAIT_SECONDS:
                # Nobody read a byte for the whole wait: what is still queued never goes.
                for recipient in behind:
                    self._channels[recipient.conn].withdraw(self)
                    recipient.stopped = f"not reading for {SEND_WAIT_SECONDS:g} s"
                return
            if waiting is not None:
                waiting()
            cancel.wait(CANCEL_POLL_SECONDS)

    @staticmethod
    def _reason(channel: StreamChannel) -> str:
        if not channel.is_open or channel.state in ("closing", "closed"):
            return "its connection closed"
        if not channel.can_send:
            return "half-closed"
        return f"not reading for {SEND_WAIT_SECONDS:g} s"

    def _why_nobody(self) -> str:
        if len(self.recipients) == 1:
            return self.recipients[0].error or "nobody to send to"
        reasons = [f"{r.label}: {r.stopped}" for r in self.recipients if r.stopped]
        return "no client took it: " + "; ".join(reasons)


class DirectDelivery(Delivery):
    """A send whose every piece is handed over at once by `send` (a UDP datagram each)."""

    def __init__(self, label: str, send: Callable[[bytes, bool], None]) -> None:
        super().__init__([Recipient(0, label)])
        self._send = send

    def write(
        self, data: bytes, *, as_hex: bool, waiting: Waiting | None = None, settle: bool = False
    ) -> None:
        self._send(data, as_hex)
        self.recipients[0].queued += len(data)
        self.recipients[0].handed += len(data)

    def finish(self, cancel: threading.Event, waiting: Waiting | None = None) -> None:
        pass  # every piece was handed over by its `write`
