"""WebSocket connections: a stream channel that carries messages, a client that upgrades
after connecting (and TLS, for wss), and a listener whose clients upgrade as they come.

The protocol itself is `netrepl/websocket.py` (sans-I/O, over wsproto); here the I/O loop
feeds it, writes what it answers, and posts what it says as events. A client's upgrade runs
on the connecting thread with the connect's deadline, as its TLS handshake does, so a
refused upgrade is a ConnectError that shows what the server said.
"""

from __future__ import annotations

import socket
import threading
import time
from collections import deque
from collections.abc import Sequence

from netrepl.codec import escape_text
from netrepl.errors import ConnectError, SendError, UsageError
from netrepl.events import Received, Sent, Signalled, Upgraded
from netrepl.transport import (
    Endpoint,
    Target,
    describe_os_error,
    format_address,
    wait_ready,
)
from netrepl.transport.client import StreamClient
from netrepl.transport.delivery import ChannelDelivery, Delivery, Waiting
from netrepl.transport.kinds.websocket import SCHEMES, WebSocketSettings, settings_of
from netrepl.transport.server import StreamServer
from netrepl.transport.stream import CLOSE_FLUSH_SECONDS, StreamChannel, _Outgoing
from netrepl.transport.tls import TlsLayer
from netrepl.websocket import (
    CLOSE_REASON_LIMIT,
    CONTROL_PAYLOAD_LIMIT,
    ControlReceived,
    HandshakeFailed,
    Happening,
    MessagePiece,
    ProtocolViolated,
    UpgradeAccepted,
    UpgradeRefused,
    WebSocketProtocol,
    check_close_code,
    describe_close,
    message_type,
)

READ_SIZE = 65536


class WebSocketChannel(StreamChannel):
    """A stream channel whose payloads are WebSocket messages, each `Received` one message
    (or a piece of one larger than --max-message), and whose close is the closing handshake.

    A server's channel holds what is sent to it until its client's upgrade request came and
    was answered; a client's arrives upgraded (`accepted`, with what came after the 101).
    Pings, pongs and closes either way are posted as `Signalled`.
    """

    frames_payloads = True

    def __init__(
        self,
        *args: object,
        protocol: WebSocketProtocol,
        settings: WebSocketSettings,
        accepted: UpgradeAccepted | None = None,
        early: Sequence[Happening] = (),
        **kwargs: object,
    ) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.protocol = protocol
        self.settings = settings
        self._accepted = accepted
        self._early_happenings = list(early)
        self._pings: deque[tuple[bytes, float]] = deque()
        self._ping_count = 0
        self._close_code = 1000
        self._close_reason = ""
        self._closing_since: float | None = None
        self.subprotocol: str | None = accepted.subprotocol if accepted else None
        self._fragmenting: Delivery | None = None
        """The send whose pieces are the frames of the message under way (a file)."""
        self._deferred: list[_Outgoing] = []
        """Messages queued while a file's message is under way: no frame of another
        message may come between its frames (RFC 6455 5.4)."""

    # ---- any thread

    @property
    def can_send(self) -> bool:
        return super().can_send and not self.protocol.close_sent

    def ping(self, payload: bytes) -> None:
        """Send a ping now (its pong is posted with the round trip)."""
        if not self.can_send:
            raise SendError(self._not_sendable())
        self._loop.call_soon(lambda: self._ping(payload))

    def close_with(self, code: int, reason: str) -> None:
        """The closing handshake with this code and reason, then the close."""
        self._close_code, self._close_reason = code, reason
        self.close()

    def _not_sendable(self) -> str:
        if self.protocol.close_sent or self.protocol.close_received:
            return f"the WebSocket to {self.peer} is closing: nothing more can be sent"
        return super()._not_sendable()

    # ---- loop thread

    @property
    def _holding(self) -> bool:
        return super()._holding or not self.protocol.upgraded

    def _start(self) -> None:
        super()._start()
        if self._accepted is not None and self.state != "closed":
            self._upgraded(self._accepted)
            early, self._early_happenings = self._early_happenings, []
            self._happened(early)

    def _framed(self, item: _Outgoing) -> memoryview:
        assert item.data is not None
        if _whole(item.delivery):
            self._fragmenting = item.delivery
            return memoryview(self.protocol.fragment(item.data, last=False))
        binary = message_type(item.data, item.as_hex) == "binary"
        return memoryview(self.protocol.message(item.data, binary=binary))

    def _write(self, item: _Outgoing) -> None:
        if item.data is not None and self.protocol.upgraded and not self.protocol.open:
            self._dequeued(item.plain)  # queued before our close went: it cannot follow it
            return
        if (
            item.data is not None
            and self._fragmenting is not None
            and item.delivery is not self._fragmenting
        ):
            self._deferred.append(item)
            return
        super()._write(item)

    def _sent_event(self, item: _Outgoing, data: bytes) -> Sent:
        if _whole(item.delivery):
            message, more = "binary", True
        else:
            message, more = message_type(item.data or b"", item.as_hex), False
        return Sent(self.id, data, item.as_hex, item.echo, time.time(), False, message, more)

    def end_message(self, delivery: Delivery, *, finished: bool) -> None:
        """The pieces of `delivery` are all queued (`finished`), or it stopped short: end
        its message with a final frame, then let the messages that waited for it go."""
        self._loop.call_soon(lambda: self._end_message(delivery, finished))

    def _end_message(self, delivery: Delivery, finished: bool) -> None:
        if self.state == "closed" or not self.protocol.open:
            return
        if self._fragmenting is delivery:
            frame = self.protocol.fragment(b"", last=True)
            self._post(Sent(self.id, b"", False, False, time.time(), False, "binary", False))
        elif finished and not any(item.delivery is delivery for item in self._held):
            frame = self.protocol.message(b"", binary=True)  # an empty file: an empty message
        else:
            return
        self._fragmenting = None
        if self.tls is not None:
            self.tls.encrypt(frame)
            frame = self.tls.take_outgoing()
        self._out.append(_Outgoing(memoryview(frame), 0))
        self._flush()
        deferred, self._deferred = self._deferred, []
        for item in deferred:
            self._write(item)

    def _arrived(self, data: bytes) -> None:
        try:
            happenings = self.protocol.feed(data)
        except HandshakeFailed as error:
            self._answer()
            self._flush()
            what = "WebSocket error" if self.protocol.upgraded else "not a WebSocket upgrade"
            self._finish(f"{what}: {error}", failed=True)
            return
        self._happened(happenings)

    def _happened(self, happenings: Sequence[Happening]) -> None:
        for happening in happenings:
            if self.state == "closed":
                return
            match happening:
                case MessagePiece(data, binary, offset, more):
                    # Messages are the activity (batch --linger): pings and pongs are not.
                    self.received += len(data)
                    self.last_activity = time.monotonic()
                    message = "binary" if binary else "text"
                    self._post(Received(self.id, data, False, time.time(), message, offset, more))
                case ControlReceived():
                    self._control(happening)
                case UpgradeAccepted():
                    self._upgraded(happening)
                case ProtocolViolated(code, reason):
                    self._post(Signalled(self.id, "close", True, b"", code, reason, at=time.time()))
                    self._answer()
                    described = describe_close(code, reason)
                    self._finish(f"the peer broke the WebSocket protocol: {described}", failed=True)
                    return
                case UpgradeRefused():  # a client's refusal is seen before the channel exists
                    self._finish(f"the upgrade was refused: {happening.status_line}", failed=True)
        self._answer()

    def _upgraded(self, accepted: UpgradeAccepted) -> None:
        self.subprotocol = accepted.subprotocol
        self._post(
            Upgraded(
                self.id, accepted.target, accepted.subprotocol, accepted.request, accepted.response
            )
        )
        self._answer()
        self._release_held()
        if self.settings.ping_interval is not None:
            self._loop.call_later(self.settings.ping_interval, self._ping_tick)

    def _control(self, control: ControlReceived) -> None:
        at = time.time()
        if control.opcode == "pong":
            round_trip = self._answered(control.payload)
            self._post(
                Signalled(self.id, "pong", False, control.payload, round_trip=round_trip, at=at)
            )
            return
        if control.opcode == "ping":
            self._post(Signalled(self.id, "ping", False, control.payload, at=at))
            # Its pong is on its way (the protocol queued it): logged, so a capture has it.
            self._post(Signalled(self.id, "pong", True, control.payload, at=at))
            return
        self._post(Signalled(self.id, "close", False, b"", control.code, control.reason, at=at))
        if self._closing_since is None:
            # Our answer (the protocol queued it) echoes the peer's code, as RFC 6455 5.5.1 asks.
            self._post(Signalled(self.id, "close", True, b"", control.code, "", at=at))
        described = describe_close(control.code, control.reason)
        if self._closing_since is not None:
            # The peer answered our close: the closing handshake is done.
            self._answer()
            self._finish(f"closed: {described}")
            return
        self._answer()  # the protocol has queued our reply
        self._close_reply_reason = f"closed by peer: {described}"
        self.state = "closing"
        self._flush()

    def _answer(self) -> None:
        """Write what the protocol says must go back (101, pong, close reply) ahead of any
        payload still queued: control frames may come between a message's frames, and
        ours are whole frames, written after whatever frame is half out (under TLS, after
        every record already made)."""
        data = self.protocol.outgoing()
        if not data or self.state == "closed":
            return
        if self.tls is not None:
            # TLS records go in the order they were made (each carries its sequence
            # number): ours goes after those already made of the queued frames.
            self.tls.encrypt(data)
            self._out.append(_Outgoing(memoryview(self.tls.take_outgoing()), 0))
        elif self._out and self._started:
            self._out.insert(1, _Outgoing(memoryview(data), 0))  # after the frame half out
        else:
            self._out.appendleft(_Outgoing(memoryview(data), 0))
        self._flush()

    def _closing_done(self) -> bool:
        # Our close went: wait (up to CLOSE_FLUSH_SECONDS) for the peer's; the peer's close
        # answered: done once the answer is out.
        return not (self.protocol.close_sent and not self.protocol.close_received)

    def _closing_reason(self) -> str:
        return getattr(self, "_close_reply_reason", "connection closed")

    def _begin_close(self) -> None:
        if self.state == "closed":
            return
        if not self.protocol.upgraded or self.protocol.close_sent:
            super()._begin_close()
            return
        frame = self.protocol.close(self._close_code, self._close_reason)
        self._closing_since = time.monotonic()
        self._post(
            Signalled(
                self.id,
                "close",
                True,
                b"",
                self._close_code,
                self._close_reason,
                at=time.time(),
            )
        )
        # Our close goes after what is queued: every message typed before /close arrives.
        if self.tls is not None:
            self.tls.encrypt(frame)
            frame = self.tls.take_outgoing()
        self._out.append(_Outgoing(memoryview(frame), 0))
        self.state = "closing"
        self._loop.call_later(CLOSE_FLUSH_SECONDS, self._close_overdue)
        self._flush()

    def _close_overdue(self) -> None:
        if self.state != "closed":
            self._finish("connection closed (the peer did not answer the close)")

    def _peer_sent_eof(self, reason: str) -> None:
        if not self.protocol.upgraded:
            reason = "connection closed by peer before the WebSocket upgrade"
        elif not self.protocol.close_received:
            reason = "connection closed by peer without a close frame (1006 abnormal closure)"
        elif self._closing_since is None and self.state == "closing":
            reason = self._closing_reason()
        self.protocol.peer_ended()
        self._finish(reason, failed=not self.protocol.close_received)

    # ---- pings

    def _ping(self, payload: bytes) -> None:
        if self.state != "open" or not self.protocol.open:
            return
        frame = self.protocol.ping(payload)
        sent_at = time.monotonic()
        self._pings.append((payload, sent_at))
        self._post(Signalled(self.id, "ping", True, payload, at=time.time()))
        if self.tls is not None:
            self.tls.encrypt(frame)
            frame = self.tls.take_outgoing()
        self._out.append(_Outgoing(memoryview(frame), 0))
        self._flush()
        timeout = self.settings.ping_timeout
        self._loop.call_later(timeout, lambda: self._ping_overdue(payload, sent_at))

    def _answered(self, payload: bytes) -> float | None:
        """The round trip of the ping this pong answers (and of no earlier one, which a
        peer may leave unanswered: a pong answers the latest ping)."""
        for index, (sent, sent_at) in enumerate(self._pings):
            if sent == payload:
                for _ in range(index + 1):
                    self._pings.popleft()
                return time.monotonic() - sent_at
        return None  # unsolicited: a heartbeat of the peer's own

    def _ping_overdue(self, payload: bytes, sent_at: float) -> None:
        if self.state == "closed" or (payload, sent_at) not in self._pings:
            return
        timeout = self.settings.ping_timeout
        self._finish(f"no pong within {timeout:g} s (--ping-timeout): closed", failed=True)

    def _ping_tick(self) -> None:
        interval = self.settings.ping_interval
        if interval is None or self.state != "open" or not self.protocol.open:
            return
        self._ping_count += 1
        self._ping(f"netrepl {self._ping_count}".encode())
        self._loop.call_later(interval, self._ping_tick)


def _whole(delivery: Delivery | None) -> bool:
    return isinstance(delivery, MessageDelivery)


class MessageDelivery(ChannelDelivery):
    """A payload in pieces (/sendfile, --stdin raw) as one binary message: each piece a
    frame, the message ended once every piece is queued, or when the send stops short (the
    peer then has a shorter message, as a stream's peer has a prefix)."""

    def finish(self, cancel: threading.Event, waiting: Waiting | None = None) -> None:
        self._end(finished=True)
        super().finish(cancel, waiting)

    def withdraw(self) -> None:
        super().withdraw()
        self._end(finished=False)

    def _end(self, *, finished: bool) -> None:
        for channel in self._channels.values():
            if isinstance(channel, WebSocketChannel):
                channel.end_message(self, finished=finished)


def _check_ping(payload: bytes) -> None:
    if len(payload) > CONTROL_PAYLOAD_LIMIT:
        raise UsageError(
            f"/ping: a ping carries at most {CONTROL_PAYLOAD_LIMIT} bytes, not {len(payload):,}"
        )


def _check_close(code: int, reason: str) -> None:
    try:
        check_close_code(code)
    except ValueError as error:
        raise UsageError(f"/close: {error}") from None
    if len(reason.encode("utf-8")) > CLOSE_REASON_LIMIT:
        raise UsageError(f"/close: a close reason is at most {CLOSE_REASON_LIMIT} bytes of UTF-8")


def host_header(endpoint: Endpoint) -> str:
    """The Host header: the port only when it is not the scheme's own."""
    assert endpoint.host is not None
    scheme = "wss" if endpoint.tls is not None else "ws"
    if endpoint.port == SCHEMES[scheme]:
        return f"[{endpoint.host}]" if ":" in endpoint.host else endpoint.host
    return format_address(endpoint.host, endpoint.port)


def describe_refusal(refused: UpgradeRefused) -> str:
    """The server's status line and headers (and the start of its body), one per line,
    escaped: what it said instead of 101."""
    lines = [f"  {escape_text(refused.status_line).text}"]
    lines += [f"  {escape_text(f'{name}: {value}').text}" for name, value in refused.headers]
    if refused.body:
        body = refused.body.decode("utf-8", "backslashreplace").strip()
        lines += [f"  | {escape_text(line).text}" for line in body.splitlines()[:8]]
    return "\n".join(lines)


def client_upgrade(
    sock: socket.socket,
    layer: TlsLayer | None,
    early: bytes,
    endpoint: Endpoint,
    deadline: float | None,
    cancel: threading.Event,
) -> tuple[WebSocketProtocol, UpgradeAccepted, list[Happening]]:
    """Send the upgrade request on a connected blocking socket (TLS done) and read the
    answer: the protocol, what the server accepted, and what came after its 101. Raises
    ConnectError with what the server said instead."""
    settings = settings_of(endpoint)
    protocol = WebSocketProtocol(client=True, max_message=settings.max_message)
    headers = list(settings.headers)
    if settings.origin is not None:
        headers.append(("Origin", settings.origin))
    request = protocol.request(
        host_header(endpoint), settings.target, headers=headers, subprotocols=settings.subprotocols
    )
    what = f"cannot connect to {endpoint.label}"

    def write(data: bytes) -> None:
        if layer is not None:
            layer.encrypt(data)
            data = layer.take_outgoing()
        sock.sendall(data)

    try:
        write(request)
        happenings = protocol.feed(early) if early else []
        while not any(isinstance(h, UpgradeAccepted | UpgradeRefused) for h in happenings):
            wait_ready(sock, write=False, deadline=deadline, cancel=cancel, what=what)
            data = sock.recv(READ_SIZE)
            ended = not data
            if layer is not None and data:
                data = layer.feed(data)
                if out := layer.take_outgoing():
                    sock.sendall(out)
                ended = layer.peer_closed
            if data:
                happenings += protocol.feed(data)
            if ended and not any(
                isinstance(h, UpgradeAccepted | UpgradeRefused) for h in happenings
            ):
                refused = protocol.unanswered()
                if refused is None:
                    raise ConnectError(
                        f"{what}: the server closed without answering the WebSocket upgrade"
                    )
                happenings.append(refused)
    except TimeoutError:
        raise ConnectError(
            f"{what}: no answer to the WebSocket upgrade within"
            f" {endpoint.connect_timeout:g} s (--connect-timeout)"
        ) from None
    except HandshakeFailed as error:
        raise ConnectError(f"{what}: not a WebSocket answer: {error}") from None
    except OSError as error:
        raise ConnectError(f"{what}: {describe_os_error(error)}") from None
    for index, happening in enumerate(happenings):
        if isinstance(happening, UpgradeRefused):
            raise ConnectError(
                f"{what}: the server refused the WebSocket upgrade:\n{describe_refusal(happening)}"
            )
        if isinstance(happening, UpgradeAccepted):
            return protocol, happening, happenings[index + 1 :]
    raise AssertionError("the loop above ends on an answer")


class WebSocketClient(StreamClient):
    """A WebSocket client: a stream client whose connection upgrades before it is
    announced; `--reconnect` upgrades each new connection again."""

    def _connect(self) -> None:
        from netrepl.transport.client import open_connection

        endpoint = self.endpoint
        timeout = endpoint.connect_timeout
        deadline = None if timeout is None else time.monotonic() + timeout
        sock, layer, early = open_connection(endpoint, deadline, self.cancel)
        try:
            upgrade = client_upgrade(sock, layer, early, endpoint, deadline, self.cancel)
        except BaseException:
            sock.close()
            raise
        sock.settimeout(None)
        with self._install_lock:
            if self._closed_by_user:
                sock.close()
                return
            self._pending_upgrade = upgrade
            self._install(sock, layer, b"")

    def _new_channel(self, *args: object, **kwargs: object) -> StreamChannel:
        protocol, accepted, early = self._pending_upgrade
        return WebSocketChannel(
            *args,
            protocol=protocol,
            settings=settings_of(self.endpoint),
            accepted=accepted,
            early=early,
            **kwargs,
        )

    def _delivery(self, channels: list[tuple[StreamChannel, str]], whole: bool) -> ChannelDelivery:
        return (
            MessageDelivery(channels, self.cancel) if whole else super()._delivery(channels, whole)
        )

    def ping(self, target: Target, payload: bytes) -> None:
        _check_ping(payload)
        channel = self.channel
        if not isinstance(channel, WebSocketChannel) or not channel.is_open:
            raise SendError("not connected: no one to ping")
        channel.ping(payload)

    def close_with(self, code: int, reason: str) -> None:
        _check_close(code, reason)
        channel = self.channel
        if not isinstance(channel, WebSocketChannel) or not channel.is_open:
            raise UsageError("not connected: nothing to close")
        with self._install_lock:
            self._closed_by_user = True
            self._stop_reconnecting.set()
            self._reconnecting = False
        channel.close_with(code, reason)
        self.loop.stop()

    def send_eof(self, target: Target) -> None:
        raise UsageError(_NO_HALF_CLOSE)


_NO_HALF_CLOSE = "/eof: a WebSocket has no half-close; /close [CODE [REASON]] sends a close frame"


class WebSocketServer(StreamServer):
    """A listener whose clients are WebSocket connections: each is announced when it
    connects and upgrades when its request comes; what is sent to it waits for that."""

    def _new_channel(self, *args: object, **kwargs: object) -> StreamChannel:
        settings = settings_of(self.endpoint)
        protocol = WebSocketProtocol(
            client=False, max_message=settings.max_message, subprotocols=settings.subprotocols
        )
        return WebSocketChannel(*args, protocol=protocol, settings=settings, **kwargs)

    def _delivery(self, channels: list[tuple[StreamChannel, str]], whole: bool) -> ChannelDelivery:
        return (
            MessageDelivery(channels, self.cancel) if whole else super()._delivery(channels, whole)
        )

    def _websocket_targets(self, target: Target) -> list[WebSocketChannel]:
        return [c for c in self._targets(target) if isinstance(c, WebSocketChannel)]

    def ping(self, target: Target, payload: bytes) -> None:
        _check_ping(payload)
        channels = [c for c in self._websocket_targets(target) if c.can_send]
        if not channels:
            raise SendError("no WebSocket client to ping")
        for channel in channels:
            channel.ping(payload)

    def close_with(self, code: int, reason: str) -> None:
        _check_close(code, reason)
        for channel in self._websocket_targets("all"):
            channel.close_with(code, reason)
        self.close()

    def send_eof(self, target: Target) -> None:
        raise UsageError(_NO_HALF_CLOSE)
