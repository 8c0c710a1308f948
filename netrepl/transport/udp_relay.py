"""A datagram relay (-u -l PORT --relay HOST:PORT): netrepl between UDP senders and a UDP
server.

Each address that sends to the listener is a flow (#1, #2) with an upstream socket of its own
(connected to the upstream from an ephemeral port), so the upstream's replies go back to the
sender they answer, as `socat UDP-LISTEN:P,fork UDP:HOST:PORT` does. Every datagram is posted
on the leg it arrived on and forwarded whole to the other leg on the same I/O thread; forwarded
datagrams are never posted as `Sent`, so a `Sent` on a leg is one the user typed. UDP has no
close: a flow ends when both sides have been quiet for --relay-idle seconds (120 by default;
0: never), on /kick, or when the relay stops. Like the UDP listener it builds on, it never
waits on anything but its sockets: a datagram a socket will not take now is dropped and
counted, as the network would drop it.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Sequence

from netrepl.errors import ConnectError, SendError, UsageError
from netrepl.events import Closed, Connected, Event, Noticed, Received, Side
from netrepl.records import record
from netrepl.transport import (
    CANCEL_POLL_SECONDS,
    Endpoint,
    FlowInfo,
    PeerInfo,
    SessionLink,
    Target,
    describe_os_error,
    format_sockaddr,
    points_at_itself,
    resolve,
)
from netrepl.transport.flows import (
    check_flow_target,
    chosen_flows,
    default_flow_target,
    flow_has_left,
    leg_reply_target,
)
from netrepl.transport.intercepting import Intercepting
from netrepl.transport.kinds.udp import DEFAULT_RELAY_IDLE, UdpRelaySettings
from netrepl.transport.loop import READ
from netrepl.transport.udp import (
    DATAGRAMS_PER_WAKE,
    DEFAULT_RCVBUF,
    POSTS_PER_TURN,
    RECEIVE_SIZE,
    DatagramTransport,
    Sender,
    set_receive_buffer,
)

# An unreachable upstream answers every datagram with an ICMP error (loopback without any
# rate limit): one line per flow per this many seconds, the rest counted in the next line and
# in /flows.
UNREACHABLE_REPORT_SECONDS = 1.0
# The idle sweep runs this often at most, so an idle flow ends within a second of its time.
SWEEP_SECONDS = 1.0


@record(eq=False)
class _UpstreamLeg(Sender):
    """A flow's socket toward the upstream: connected, from an ephemeral port of its own."""

    sock: socket.socket | None = None
    """None once the flow has ended."""
    local: str = ""


@record(eq=False)
class _Flow:
    """One relayed UDP conversation: a client's address and its upstream socket."""

    id: int
    client: Sender
    opened_at: float
    quiet_since: float
    """When a datagram last went either way (time.monotonic)."""
    upstream: _UpstreamLeg | None = None
    failure: str | None = None
    """Why it has no upstream socket (its client's datagrams go nowhere)."""
    dropped: int = 0
    """Datagrams a socket would not take at once (its send buffer full), or with no upstream."""
    unreachable: int = 0
    """ICMP errors the upstream socket reported."""
    unreachable_said: int = 0
    unreachable_said_at: float = float("-inf")
    dropped_said: bool = False

    def leg(self, side: Side) -> Sender | None:
        return self.client if side == "client" else self.upstream

    def side_of(self, conn: int) -> Side:
        return "client" if conn == self.client.conn else "upstream"


class DatagramRelay(Intercepting, DatagramTransport):
    """A UDP listener whose every sender is relayed to `endpoint.upstream`, each from a
    socket of its own.

    The loop thread reads the listener (as DatagramTransport does) and every upstream socket,
    opens a flow's upstream socket with its sender's first datagram, forwards, and ends
    flows that have been quiet for `idle` seconds; it alone changes `flows`, under
    `_flows_lock`. The session's thread injects (`send`, on the legs `/to` names), kicks
    flows (handing the work to the loop thread and waiting for it) and closes.
    """

    runs_by_itself = True

    def __init__(self, endpoint: Endpoint, link: SessionLink) -> None:
        super().__init__(endpoint, link)
        assert endpoint.upstream is not None
        self.upstream = endpoint.upstream
        settings = endpoint.kind_settings
        self.idle = settings.idle if isinstance(settings, UdpRelaySettings) else DEFAULT_RELAY_IDLE
        """Seconds a flow may be quiet both ways before it ends; 0: never."""
        self.flows: dict[int, _Flow] = {}
        self._flow_of: dict[int, _Flow] = {}
        """Each leg's connection id -> its flow."""
        self._flows_lock = threading.Lock()
        self._flow_count = 0
        self._upstream_family = socket.AF_INET
        self._upstream_address: tuple = ()  # type: ignore[type-arg]
        self._upstream_received = 0
        self._client_datagrams = 0
        self._upstream_datagrams = 0
        self._start_intercepting()
        self._held_full: set[tuple[int, Side]] = set()
        """Directions holding all the interceptor holds: their datagrams are dropped (loop)."""

    def _open(self) -> None:
        # Resolved once, now: a name that does not resolve fails the start (exit status 1),
        # and the loop thread never waits on a lookup when a new sender comes.
        upstream = self.upstream
        assert upstream.host is not None
        try:
            family, _, _, _, address = resolve(
                upstream.host, upstream.port, upstream.family, socket.SOCK_DGRAM
            )[0]
        except OSError as error:
            raise ConnectError(
                f"cannot relay to {upstream.label}: {describe_os_error(error)}"
            ) from None
        self._upstream_family, self._upstream_address = family, address
        if points_at_itself(self.endpoint, family, address):
            raise UsageError(
                f"--relay {upstream.label} is where this relay listens: each datagram would"
                " come back to it as a new flow"
            )
        super()._open()
        if self.idle:
            self.loop.call_later(self._sweep_period, self._sweep)

    @property
    def _sweep_period(self) -> float:
        return min(max(self.idle / 4, 0.01), SWEEP_SECONDS)

    # ---- state

    def _open_flows(self) -> list[_Flow]:
        with self._flows_lock:
            return list(self.flows.values())

    @property
    def state(self) -> str:
        if not self.is_open:
            return "closed"
        count = len(self.flows)
        return f"relaying, {count} flow{'s' if count != 1 else ''}"

    @property
    def can_send(self) -> bool:
        return self.is_open and bool(self.flows)

    @property
    def received(self) -> int:
        return self._received + self._upstream_received

    def peers(self) -> list[PeerInfo]:
        now = time.monotonic()
        return [
            PeerInfo(f.id, _pair(f), now - f.opened_at, f.client.received, f.client.sent, "udp")
            for f in self._open_flows()
        ]

    def flow_list(self) -> list[FlowInfo]:
        now = time.monotonic()
        return [
            FlowInfo(
                flow.id,
                flow.client.label,
                flow.upstream.label if flow.upstream is not None else self.upstream.label,
                now - flow.opened_at,
                to_upstream=flow.client.received,
                to_client=flow.upstream.received if flow.upstream is not None else 0,
                state=_flow_state(flow),
                held=self.interceptor.held_of(flow.id),
            )
            for flow in self._open_flows()
        ]

    def summary(self) -> str:
        flows = self._flow_count
        return (
            f"relayed {flows:,} flow{'s' if flows != 1 else ''}:"
            f" {_amount(self._received, self._client_datagrams)} from the clients,"
            f" {_amount(self._upstream_received, self._upstream_datagrams)} from the upstream"
        )

    # ---- targets

    def default_target(self) -> Target:
        return default_flow_target()

    def check_target(self, target: Target) -> None:
        check_flow_target(target, {flow.id for flow in self._open_flows()})

    def reply_target(self, conn: int) -> Target:
        flow = self._flow_of.get(conn)
        if flow is None:
            return conn
        return leg_reply_target(flow.id, flow.side_of(conn), conn)

    def has_left(self, target: Target, conn: int) -> bool:
        flow = self._flow_of.get(conn)
        if flow is None:
            return False
        return flow_has_left(target, flow.id, flow.side_of(conn))

    def _recipients(self, target: Target) -> list[Sender]:
        waiting = f"relaying {self.address} to {self.upstream.label}"
        legs: list[Sender] = []
        for flow, side in chosen_flows(target, self._open_flows(), waiting):
            leg = flow.leg(side)
            if leg is None:
                raise SendError(f"#{flow.id} upstream: {flow.failure}: nothing sent")
            legs.append(leg)
        return legs

    def _socket_for(self, sender: Sender) -> tuple[socket.socket, bool]:
        if not isinstance(sender, _UpstreamLeg):
            return super()._socket_for(sender)
        sock = sender.sock
        if sock is None:
            raise SendError(f"{self._leg_name(sender)}: the flow has ended: nothing sent")
        return sock, True

    def _send_one(self, sender: Sender, data: bytes) -> None:
        super()._send_one(sender, data)
        flow = self._flow_of.get(sender.conn)
        if flow is not None:
            flow.quiet_since = time.monotonic()

    # ---- actions

    def send(self, data: bytes, target: Target, *, as_hex: bool) -> None:
        # On the loop thread, which reads the replies: the `Sent` of an injected datagram is
        # posted before the reply it provokes, as a stream's is.
        if not self._on_loop(lambda: DatagramTransport.send(self, data, target, as_hex=as_hex)):
            raise SendError("the relay has stopped: nothing sent")

    def kick(self, conn: int) -> None:
        flow = self.flows.get(conn)
        if flow is None:
            raise UsageError(f"/kick: no flow #{conn} (/flows lists them)")
        self._on_loop(lambda: self._end_flow(flow, "ended by /kick"))

    def _on_loop(self, call: Callable[[], None]) -> bool:
        """Run `call` on the loop thread (or here, once the loop has stopped) and wait for
        it; raise what it raised. False: the loop stopped before it ran."""
        if self.loop.in_loop() or not self.loop.thread.is_alive():
            call()
            return True
        done = threading.Event()
        failure: list[BaseException] = []

        def run() -> None:
            try:
                call()
            except BaseException as error:
                failure.append(error)
            finally:
                done.set()

        self.loop.call_soon(run)
        while not done.wait(CANCEL_POLL_SECONDS) and self.loop.thread.is_alive():
            pass
        if failure:
            raise failure[0]
        return done.is_set()

    # ---- the legs (loop thread, or `close` once the loop has stopped)

    def _welcome(self, sender: Sender, local: str, at: float) -> None:
        self._flow_count += 1
        now = time.monotonic()
        flow = _Flow(self._flow_count, sender, now, now)
        with self._flows_lock:
            self.flows[flow.id] = flow
            self._flow_of[sender.conn] = flow
        self._post_event(
            Connected(
                sender.conn,
                sender.label,
                local,
                "udp",
                accepted=True,
                at=at,
                datagram=True,
                flow=flow.id,
                side="client",
            )
        )
        if not self.loop.in_loop():
            flow.failure = "the relay stopped"  # a datagram read while closing
            return
        self._open_upstream(flow, at)

    def _open_upstream(self, flow: _Flow, at: float) -> None:
        label = self.upstream.label
        try:
            # Out of file descriptors (a sender per flow, many senders) fails here, and is
            # said like any other reason the flow has no upstream.
            sock = socket.socket(self._upstream_family, socket.SOCK_DGRAM)
        except OSError as error:
            flow.failure = f"cannot open a socket: {describe_os_error(error)}"
            self._no_upstream(flow)
            return
        try:
            sock.setblocking(False)
            set_receive_buffer(sock, self.endpoint.rcvbuf or DEFAULT_RCVBUF)
            sock.connect(self._upstream_address)
            peer, local = sock.getpeername(), sock.getsockname()
        except OSError as error:
            sock.close()
            flow.failure = f"cannot send to {label}: {describe_os_error(error)}"
            self._no_upstream(flow)
            return
        leg = _UpstreamLeg(
            next(self._ids),
            self._upstream_address,
            format_sockaddr(peer),
            time.monotonic(),
            sock=sock,
            local=format_sockaddr(local),
        )
        flow.upstream = leg
        with self._flows_lock:
            self._flow_of[leg.conn] = flow
        self.loop.register(sock, READ, lambda mask: self._read_upstream(flow, POSTS_PER_TURN))
        self._post_event(
            Connected(
                leg.conn,
                leg.label,
                leg.local,
                "udp",
                at=at,
                datagram=True,
                flow=flow.id,
                side="upstream",
            )
        )

    def _no_upstream(self, flow: _Flow) -> None:
        self._post_event(
            Noticed(
                f"#{flow.id} upstream: {flow.failure}; what {flow.client.label} sends is"
                f" dropped (/kick {flow.id}, and its next datagram tries again)",
                "error",
            )
        )

    def _arrived(self, sender: Sender, data: bytes) -> Sequence[Event]:
        """A client's datagram, about to be posted: on to its upstream (or held)."""
        self._client_datagrams += 1
        flow = self._flow_of.get(sender.conn)
        if flow is None:
            return ()
        flow.quiet_since = time.monotonic()
        return self._intercepted(flow, "client", data)

    def _intercepted(self, flow: _Flow, side: Side, data: bytes) -> Sequence[Event]:
        if not self.interceptor.busy(flow.id, side):
            self._forward_frame(flow.id, side, data)
        elif (flow.id, side) in self._held_full:
            flow.dropped += 1  # over the bound of what is held: as the network would
        else:
            return self._intercept_data(flow.id, side, data)
        return ()

    def _forward_frame(self, flow: int, side: Side, data: bytes) -> None:
        found = self.flows.get(flow)
        if found is None:
            return
        if side == "client":
            leg = found.upstream
            if leg is None or leg.sock is None:
                found.dropped += 1
                return
            self._pass_on(found, leg, leg.sock, None, data)
        elif self._sock is not None:
            self._pass_on(found, found.client, self._sock, found.client.address, data)

    def _pause_side(self, flow: int, side: Side, paused: bool) -> None:
        if paused:
            self._held_full.add((flow, side))
        else:
            self._held_full.discard((flow, side))

    def _read_upstream(self, flow: _Flow, limit: int) -> None:
        """Post up to `limit` datagrams the upstream sent this flow, each passed on to its
        client; ICMP errors the socket reports are said (a few) and counted."""
        leg = flow.upstream
        if leg is None or leg.sock is None:
            return
        sock, post = leg.sock, self._post_event
        for _ in range(limit):
            try:
                data = sock.recv(RECEIVE_SIZE)
            except BlockingIOError:
                break
            except OSError as error:
                # ICMP (port or host unreachable) for an earlier datagram: said once read.
                self._unreachable(flow, leg, error)
                continue
            leg.received += len(data)
            self._upstream_received += len(data)
            self._upstream_datagrams += 1
            flow.quiet_since = time.monotonic()
            notes = self._intercepted(flow, "upstream", data)
            post(Received(leg.conn, data, True, time.time()))
            for note in notes:
                post(note)
        self._last_activity = time.monotonic()
        self.notify()

    def _pass_on(
        self,
        flow: _Flow,
        leg: Sender,
        sock: socket.socket,
        address: tuple | None,  # type: ignore[type-arg]
        data: bytes,
    ) -> None:
        """Forward `data` to `leg` on `sock` (to `address`, or connected), at once or never:
        a datagram the socket will not take now is dropped, as the network would drop it."""
        for _ in range(2):
            try:
                if address is None:
                    sock.send(data)
                else:
                    sock.sendto(data, address)
            except BlockingIOError:
                self._dropped(flow, leg)
                return
            except OSError as error:
                if isinstance(leg, _UpstreamLeg) and isinstance(error, ConnectionRefusedError):
                    # An earlier datagram's refusal, reported now; this one was not sent.
                    self._unreachable(flow, leg, error)
                    continue
                self._post_event(
                    Noticed(
                        f"{self._leg_name(leg)} {leg.label}: send failed:"
                        f" {describe_os_error(error)}; that datagram was dropped",
                        "error",
                    )
                )
                return
            leg.sent += len(data)
            self._sent += len(data)
            return
        self._dropped(flow, leg)

    def _report_unreachable(self, sender: Sender | None = None) -> None:
        flow = self._flow_of.get(sender.conn) if sender is not None else None
        if flow is None or not isinstance(sender, _UpstreamLeg):
            super()._report_unreachable(sender)
            return
        self._unreachable(flow, sender, ConnectionRefusedError())

    def _unreachable(self, flow: _Flow, leg: _UpstreamLeg, error: OSError) -> None:
        flow.unreachable += 1
        now = time.monotonic()
        if now - flow.unreachable_said_at < UNREACHABLE_REPORT_SECONDS:
            return
        if isinstance(error, ConnectionRefusedError):
            reason = "port unreachable (ICMP): nothing listens there"
        else:
            reason = describe_os_error(error)
        unsaid = flow.unreachable - flow.unreachable_said
        lost = "that datagram was dropped" if unsaid == 1 else f"{unsaid:,} datagrams dropped"
        flow.unreachable_said, flow.unreachable_said_at = flow.unreachable, now
        self.post(Noticed(f"#{flow.id} upstream {leg.label}: {reason}; {lost}", "error"))

    def _dropped(self, flow: _Flow, leg: Sender) -> None:
        flow.dropped += 1
        if not flow.dropped_said:
            flow.dropped_said = True
            self._post_event(
                Noticed(
                    f"{self._leg_name(leg)}: its socket's send buffer is full: datagrams"
                    " to it are dropped, as the network would (/flows counts them)",
                    "error",
                )
            )

    def _leg_name(self, leg: Sender) -> str:
        flow = self._flow_of.get(leg.conn)
        return f"#{flow.id} {flow.side_of(leg.conn)}" if flow is not None else f"#{leg.conn}"

    def _sweep(self) -> None:
        if self._closing:
            return
        now = time.monotonic()
        for flow in self._open_flows():
            if now - flow.quiet_since >= self.idle:
                reason = f"quiet both ways for {self.idle:g} s: flow ended (--relay-idle)"
                self._end_flow(flow, reason)
        self.loop.call_later(self._sweep_period, self._sweep)

    def _end_flow(self, flow: _Flow, reason: str) -> None:
        """Post what the upstream socket holds (passed on), close it, say each leg's end,
        and forget the flow: its sender's next datagram starts a new one."""
        if flow.id not in self.flows:
            return
        leg = flow.upstream
        if leg is not None and leg.sock is not None:
            self._read_upstream(flow, DATAGRAMS_PER_WAKE)
            self.loop.unregister(leg.sock)
            leg.sock.close()
            leg.sock = None
        self._forget(flow.client)
        self._finished += 1
        # Closed goes out while the legs are still known, so the session can tell that a
        # flow it sends to has left.
        self._post_event(Closed(flow.client.conn, reason, flow.client.received, flow.client.sent))
        if leg is not None:
            self._post_event(Closed(leg.conn, reason, leg.received, leg.sent))
        self._carry_out(self.interceptor.forget(flow.id))
        self._held_full -= {(flow.id, "client"), (flow.id, "upstream")}
        with self._flows_lock:
            self.flows.pop(flow.id, None)
            self._flow_of.pop(flow.client.conn, None)
            if leg is not None:
                self._flow_of.pop(leg.conn, None)
        self.notify()

    def _closing_sockets(self) -> None:
        for flow in self._open_flows():
            self._end_flow(flow, "the relay stopped")


def _pair(flow: _Flow) -> str:
    upstream = flow.upstream.label if flow.upstream is not None else "(no upstream)"
    return f"{flow.client.label} ⇄ {upstream}"


def _flow_state(flow: _Flow) -> str:
    parts = []
    if flow.failure is not None:
        parts.append(f"no upstream: {flow.failure}")
    if flow.unreachable:
        parts.append(f"{flow.unreachable:,} unreachable")
    if flow.dropped:
        parts.append(f"{flow.dropped:,} dropped")
    return ", ".join(parts) or "open"


def _amount(size: int, datagrams: int) -> str:
    return f"{size:,} bytes ({datagrams:,} datagram{'s' if datagrams != 1 else ''})"
