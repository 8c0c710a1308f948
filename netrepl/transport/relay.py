"""A stream relay (--relay): netrepl between real clients and a real server.

Each client the listener accepts gets a connection of its own to the upstream; the pair is a
flow (#1, #2). Every byte read on one leg is posted (so it is shown, logged and watched like
any received data) and forwarded to the other leg, unchanged, on the same I/O thread. What the
user types is sent on the leg `/to` chooses and is posted as `Sent` there: forwarded bytes are
never posted twice, so a `Sent` on a relay leg is an injected one.

The life of a flow follows the wire: a half-close on one leg half-closes the other, a reset
resets the other, and a leg that falls behind stops the other from reading (TCP's own
backpressure) instead of piling up memory.
"""

from __future__ import annotations

import contextlib
import socket
import ssl
import threading
import time
from collections.abc import Callable, Sequence

from netrepl.errors import ConnectError, SendError, UsageError
from netrepl.events import CertificateInfo, Connected, Event, Noticed, Side
from netrepl.framing import Framing
from netrepl.interception import other_side
from netrepl.records import record
from netrepl.traffic import count
from netrepl.transport import (
    Endpoint,
    FlowInfo,
    PeerInfo,
    SessionLink,
    Target,
    points_at_itself,
    resolve,
)
from netrepl.transport.client import connected_channel, open_connection
from netrepl.transport.delivery import ChannelDelivery
from netrepl.transport.flows import (
    check_flow_target,
    chosen_flows,
    default_flow_target,
    flow_has_left,
    leg_reply_target,
)
from netrepl.transport.intercepting import Intercepting
from netrepl.transport.server import StreamServer
from netrepl.transport.stream import RelayLeg, StreamChannel
from netrepl.transport.tls import TlsLayer, client_context


@record(eq=False)
class _Flow:
    """One relayed conversation: the client that came in and its upstream leg."""

    id: int
    client: StreamChannel
    upstream: StreamChannel | None = None
    opened_at: float = 0.0

    def leg(self, side: Side) -> StreamChannel | None:
        return self.client if side == "client" else self.upstream

    def other(self, channel: StreamChannel) -> StreamChannel | None:
        return self.upstream if channel is self.client else self.client

    def side_of(self, channel: StreamChannel) -> Side:
        return "client" if channel is self.client else "upstream"

    @property
    def is_open(self) -> bool:
        return self.client.is_open or (self.upstream is not None and self.upstream.is_open)


class StreamRelay(Intercepting, StreamServer):
    """A stream listener whose every client is relayed to `endpoint.upstream`.

    The loop thread accepts, joins each client to its upstream connection once that is up
    (connecting, with its TLS handshake, runs on a short thread of its own per flow, so a
    slow upstream never holds the loop), forwards, and propagates half-closes, resets and
    backpressure between the legs; it alone changes `flows`. The session's thread sends
    (injects) on the legs `/to` names, half-closes them, kicks flows and closes.
    """

    runs_by_itself = True

    def __init__(self, endpoint: Endpoint, link: SessionLink) -> None:
        super().__init__(endpoint, link)
        assert endpoint.upstream is not None
        self.upstream = endpoint.upstream
        self.flows: dict[int, _Flow] = {}
        self._flow_of: dict[int, _Flow] = {}
        """Each leg's connection id -> its flow."""
        self._flow_count = 0
        self._upstream_context: ssl.SSLContext | None = None
        self._stopping = threading.Event()
        self._earlier_upstream_received = 0
        self._earlier_upstream_sent = 0
        self._start_intercepting()
        self._deferred: list[_Flow] | None = [] if link.flows_wait else None
        """Flows accepted before the session says go (`flow_starter`), connected then (loop
        thread)."""

    def _open(self) -> None:
        upstream = self.upstream
        with contextlib.suppress(OSError):  # a name that does not resolve yet fails per flow
            assert upstream.host is not None
            for family, _, _, _, address in resolve(
                upstream.host, upstream.port, upstream.family, socket.SOCK_STREAM
            ):
                if points_at_itself(self.endpoint, family, address):
                    raise UsageError(
                        f"--relay {upstream.label} is where this relay listens: each client"
                        " would come back to it as a new flow"
                    )
        if self.upstream.tls is not None:
            # A bad --relay-cafile or --relay-cert is a usage error now, not at the first client.
            self._upstream_context = client_context(self.upstream.tls)
        super()._open()

    # ---- state

    def _open_flows(self) -> list[_Flow]:
        return [flow for flow in list(self.flows.values()) if flow.is_open]

    @property
    def can_send(self) -> bool:
        # A flow is someone to send to once both its legs are there.
        return any(
            flow.upstream is not None and (flow.client.can_send or flow.upstream.can_send)
            for flow in self._open_flows()
        )

    @property
    def awaiting_peer(self) -> bool:
        return self.is_open and not any(f.upstream is not None for f in self._open_flows())

    @property
    def state(self) -> str:
        if not self.is_open:
            return "closed"
        count = len(self._open_flows())
        return f"relaying, {count} flow{'s' if count != 1 else ''}"

    def _upstream_legs(self) -> list[StreamChannel]:
        # Open ones only: a closed leg's counts are in _earlier_upstream_* already (its flow
        # stays open while the client leg still writes).
        legs = [f.upstream for f in self._open_flows() if f.upstream is not None]
        return [leg for leg in legs if leg.is_open]

    @property
    def received(self) -> int:
        legs = self._upstream_legs()
        return super().received + self._earlier_upstream_received + sum(c.received for c in legs)

    @property
    def sent(self) -> int:
        legs = self._upstream_legs()
        return super().sent + self._earlier_upstream_sent + sum(c.sent for c in legs)

    @property
    def last_activity(self) -> float:
        return max([super().last_activity, *(c.last_activity for c in self._upstream_legs())])

    def peers(self) -> list[PeerInfo]:
        now = time.monotonic()
        return [
            PeerInfo(f.id, _pair(f), now - f.opened_at, f.client.received, f.client.sent, "open")
            for f in self._open_flows()
        ]

    def summary(self) -> str:
        flows = self._flow_count
        from_clients = self._earlier_received + sum(c.received for c in self._open_clients())
        from_upstream = self.received - from_clients
        return (
            f"relayed {count(flows, 'flow')}: {count(from_clients, 'byte')} from the clients,"
            f" {from_upstream:,} from the upstream"
        )

    def flow_list(self) -> list[FlowInfo]:
        now = time.monotonic()
        infos = []
        for flow in self._open_flows():
            upstream = flow.upstream
            infos.append(
                FlowInfo(
                    flow.id,
                    flow.client.peer,
                    upstream.peer if upstream is not None else self.upstream.label,
                    now - flow.opened_at,
                    to_upstream=flow.client.received,
                    to_client=upstream.received if upstream is not None else 0,
                    state=_flow_state(flow),
                    held=self.interceptor.held_of(flow.id),
                )
            )
        return infos

    # ---- targets (what they mean is flows.py's, for every relay)

    def default_target(self) -> Target:
        return default_flow_target()

    def check_target(self, target: Target) -> None:
        check_flow_target(target, {flow.id for flow in self._open_flows()})

    def _targets(self, target: Target) -> list[StreamChannel]:
        waiting = f"relaying {self.address} to {self.upstream.label}"
        legs = []
        for flow, side in chosen_flows(target, self._open_flows(), waiting):
            leg = flow.leg(side)
            if leg is None or not leg.is_open:
                state = "not connected yet" if leg is None else "closed"
                raise SendError(f"#{flow.id} {side}: {state}: nothing sent")
            legs.append(leg)
        return legs

    def deliver(self, target: Target, *, whole: bool = False) -> ChannelDelivery:
        legs = [(leg, self._leg_label(leg)) for leg in self._targets(target) if leg.can_send]
        if not legs:
            raise SendError("that side is half-closed: nothing can be sent")
        return ChannelDelivery(legs, self.cancel)

    def _leg_label(self, channel: StreamChannel) -> str:
        flow = self._flow_of.get(channel.id)
        return f"#{flow.id} {flow.side_of(channel)}" if flow else f"#{channel.id}"

    def _leg(self, conn: int) -> tuple[int | None, Side | None]:
        flow = self._flow_of.get(conn)
        if flow is None:
            return None, None
        return flow.id, "client" if flow.client.id == conn else "upstream"

    def reply_target(self, conn: int) -> Target:
        return leg_reply_target(*self._leg(conn), conn)

    def has_left(self, target: Target, conn: int) -> bool:
        return flow_has_left(target, *self._leg(conn))

    # ---- actions

    def kick(self, conn: int) -> None:
        flow = self.flows.get(conn)
        if flow is None or not flow.is_open:
            raise UsageError(f"/kick: no flow #{conn} (/flows lists them)")
        for leg in (flow.client, flow.upstream):
            if leg is not None:
                leg.close()

    def chain(self, conn: int | None) -> tuple[CertificateInfo, ...]:
        if conn is None:
            flows = self._open_flows()
            if len(flows) != 1:
                raise UsageError("/cert N: which flow? (/flows lists them)")
            conn = flows[0].id
        flow = self.flows.get(conn)
        if flow is None:
            raise UsageError(f"/cert: no flow #{conn}")
        for leg in (flow.upstream, flow.client):
            if leg is not None and leg.tls_info is not None and leg.tls_info.chain:
                return leg.tls_info.chain
        raise UsageError(f"/cert: flow #{conn} has no certificate on either side")

    # ---- interception (the controls are Intercepting's)

    def set_framing(self, framing: Framing) -> None:
        self._intercept(lambda: self.interceptor.set_framing(framing))

    def close(self) -> None:
        self._stopping.set()
        for leg in self._upstream_legs():
            leg.close()
        super().close()

    # ---- loop thread: flows

    def _relay_leg(self) -> RelayLeg | None:
        return self

    def _welcome(self, channel: StreamChannel) -> None:
        # The client is read only once its upstream is there to take what it sends.
        self._flow_count += 1
        flow = _Flow(self._flow_count, channel, opened_at=time.monotonic())
        self.flows[flow.id] = flow
        self._flow_of[channel.id] = flow
        self.post(
            Connected(
                channel.id,
                channel.peer,
                channel.local,
                self.endpoint.protocol,
                accepted=True,
                at=time.time(),
                flow=flow.id,
                side="client",
            )
        )
        if self._deferred is not None:
            self._deferred.append(flow)
            return
        self._start_connecting(flow)

    def _start_connecting(self, flow: _Flow) -> None:
        threading.Thread(
            target=self._connect_upstream, args=(flow,), name="netrepl-relay-connect", daemon=True
        ).start()

    def flow_starter(self) -> Callable[[], None]:
        def start() -> None:
            deferred, self._deferred = self._deferred or [], None
            for flow in deferred:
                self._start_connecting(flow)

        return lambda: self.loop.call_soon(start)

    def _connect_upstream(self, flow: _Flow) -> None:
        """On a thread of its own: connect (and shake hands) with the upstream for `flow`."""
        timeout = self.upstream.connect_timeout
        deadline = None if timeout is None else time.monotonic() + timeout
        try:
            sock, layer, early = open_connection(
                self.upstream, deadline, self._stopping, self._upstream_context
            )
        except ConnectError as error:
            reason = str(error)
            self.loop.call_soon(lambda: self._unreachable(flow, reason))
            return
        self.loop.call_soon(lambda: self._join(flow, sock, layer, early))

    def _unreachable(self, flow: _Flow, reason: str) -> None:
        text = f"#{flow.id} {flow.client.peer}: {reason}; closing the client"
        self.post(Noticed(text, "error"))
        flow.client.close()

    def _join(self, flow: _Flow, sock: socket.socket, layer: TlsLayer | None, early: bytes) -> None:
        if not flow.client.is_open or not self.is_open or self._stopping.is_set():
            sock.close()  # the client left, or the relay stopped, while we connected
            return
        conn = next(self._ids)
        leg = connected_channel(
            self.loop,
            sock,
            conn,
            self.post,
            self.upstream.label,
            layer,
            early,
            on_closed=self._client_closed,
            cancel=self.cancel,
            relay=self,
            proxied=self.upstream.proxy is not None,
        )
        peer, local = leg.peer, leg.local
        flow.upstream = leg
        self._flow_of[conn] = flow
        self.post(
            Connected(
                conn,
                peer,
                local,
                self.upstream.protocol,
                at=time.time(),
                flow=flow.id,
                side="upstream",
                via=self.upstream.proxy.label if self.upstream.proxy is not None else None,
            )
        )
        if leg.tls_info is not None:
            self.post(leg.tls_info)
            if self.upstream.tls is not None and self.upstream.tls.insecure:
                self.post(
                    Noticed(
                        f"warning: #{flow.id} upstream: --relay-insecure: the certificate"
                        " was not verified",
                        "error",
                    )
                )
        flow.client.start()
        leg.start()

    # ---- loop thread: what the legs say (StreamChannel's RelayLeg)

    def leg_received(self, channel: StreamChannel, data: bytes) -> Sequence[Event]:
        flow = self._flow_of.get(channel.id)
        if flow is None:
            return ()
        side = flow.side_of(channel)
        if not self.interceptor.busy(flow.id, side):
            self._forward(flow, channel, data)
            return ()
        return self._intercept_data(flow.id, side, data)

    def leg_ended(self, channel: StreamChannel) -> None:
        flow = self._flow_of.get(channel.id)
        if flow is not None:
            self._carry_out(self.interceptor.ended(flow.id, flow.side_of(channel)))

    def _forward(self, flow: _Flow, channel: StreamChannel, data: bytes) -> None:
        other = flow.other(channel)
        if other is None or not other.is_open:
            return
        other.forward(data)
        if other.backed_up:
            channel.pause_reading()
            other.when_drained(channel.resume_reading)

    def _forward_frame(self, flow: int, side: Side, data: bytes) -> None:
        found = self.flows.get(flow)
        leg = found.leg(side) if found is not None else None
        if found is not None and leg is not None:
            self._forward(found, leg, data)

    def _pause_side(self, flow: int, side: Side, paused: bool) -> None:
        found = self.flows.get(flow)
        leg = found.leg(side) if found is not None else None
        if leg is not None:
            if paused:
                leg.pause_reading("held")
            else:
                leg.resume_reading("held")

    def _pass_end(self, flow: int, side: Side) -> None:
        found = self.flows.get(flow)
        other = found.leg(other_side(side)) if found is not None else None
        if other is not None:
            other.end_writing()

    def _client_closed(self, channel: StreamChannel) -> None:
        """A leg closed (both legs' channels report here): the other leg follows."""
        flow = self._flow_of.pop(channel.id, None)
        if flow is None or channel is flow.client:
            super()._client_closed(channel)
        else:
            self._earlier_upstream_received += channel.received
            self._earlier_upstream_sent += channel.sent
        if flow is None:
            return
        other = flow.other(channel)
        side = flow.side_of(channel)
        if other is not None and other.is_open:
            if channel.failure is not None:
                other.reset(f"reset, as the {side} leg failed: {channel.failure}")
            elif not channel.peer_ended:
                # Its end of stream came as the close (it was not passed on yet); the other
                # side may still be sending, and ends once its own peer ends too.
                self._carry_out(self.interceptor.ended(flow.id, side))
        if not flow.is_open:
            self.flows.pop(flow.id, None)
            self._carry_out(self.interceptor.forget(flow.id))
        self.notify()


def _pair(flow: _Flow) -> str:
    upstream = flow.upstream.peer if flow.upstream is not None else "(connecting)"
    return f"{flow.client.peer} ⇄ {upstream}"


def _flow_state(flow: _Flow) -> str:
    if flow.upstream is None:
        return "connecting"
    ended = [
        f"{flow.side_of(leg)} ended"
        for leg in (flow.client, flow.upstream)
        if leg.peer_ended or not leg.is_open
    ]
    return ", ".join(ended) or "open"
