"""What every transport is to the session: send, half-close, list and kick peers, close.

A transport owns one I/O loop thread and its sockets. Its public methods are called from the
session's thread; they queue work for the loop and raise SendError or UsageError at once for
what cannot be done, so the user gets one line and nothing is sent by halves.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Self

from netrepl.errors import UsageError
from netrepl.events import CertificateInfo, Event, Noticed
from netrepl.transport import Endpoint, PeerInfo, SessionLink, Target
from netrepl.transport.delivery import Delivery, DirectDelivery
from netrepl.transport.loop import IOLoop


class Transport:
    """Base of every transport: the loop, the event post, and waiting on state changes."""

    def __init__(self, endpoint: Endpoint, link: SessionLink) -> None:
        self.endpoint = endpoint
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

    def _open(self) -> None:
        raise NotImplementedError

    # ---- events and waiting

    def post(self, event: Event) -> None:
        """Post an event for the display, and wake everyone waiting on this transport."""
        self._post_event(event)
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
    def state(self) -> str:
        raise NotImplementedError

    @property
    def is_open(self) -> bool:
        """Still connected, listening, or reconnecting."""
        raise NotImplementedError

    @property
    def can_send(self) -> bool:
        raise NotImplementedError

    @property
    def awaiting_peer(self) -> bool:
        """Nobody to send to yet, but someone may come: a listener before its first client
        (or datagram), a client while it reconnects."""
        return self.is_open and not self.can_send and not self.peers()

    @property
    def received(self) -> int:
        raise NotImplementedError

    @property
    def sent(self) -> int:
        raise NotImplementedError

    @property
    def last_activity(self) -> float:
        raise NotImplementedError

    @property
    def failure(self) -> str | None:
        """Why the last connection failed, if it did (batch mode exits 1)."""
        return None

    finished = 0
    """Clients that have come and gone (a listener's; batch --once waits for the first)."""

    def peers(self) -> list[PeerInfo]:
        raise NotImplementedError

    def default_target(self) -> Target:
        return "all"

    # ---- what the session does (any thread)

    def send(self, data: bytes, target: Target, *, as_hex: bool) -> None:
        raise NotImplementedError

    def deliver(self, target: Target) -> Delivery:
        """A send in pieces (a file) to `target`; by default each piece is one `send`."""
        return DirectDelivery(
            self.endpoint.label, lambda data, as_hex: self.send(data, target, as_hex=as_hex)
        )

    def send_eof(self, target: Target) -> None:
        raise UsageError(f"/eof: {self.endpoint.kind} has no half-close")

    def kick(self, conn: int) -> None:
        raise UsageError("/kick: only a listening netrepl has clients to kick")

    def chain(self, conn: int | None) -> tuple[CertificateInfo, ...]:
        raise UsageError("/cert: this connection does not use TLS")

    def close(self) -> None:
        raise NotImplementedError
