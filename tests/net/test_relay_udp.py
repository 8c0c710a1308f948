"""The UDP relay (-u -l PORT --relay HOST:PORT) over loopback, against a Python UDP echo
upstream and plain UDP sockets as the senders: each sender a flow with an upstream socket of
its own, datagrams whole both ways, the legs labelled, injected, listed, kicked, ended when
quiet, logged, and a dead upstream said in one line.
"""

from __future__ import annotations

import itertools
import os
import re
import resource
import signal
import socket
import threading
import time
from collections.abc import Iterator

import pytest

from netrepl.errors import ConnectError, SendError, UsageError
from netrepl.events import Closed, Connected, Listening, Noticed, Received, Sent
from netrepl.transport import Endpoint, FlowSide, open_transport
from netrepl.transport.kinds.udp import UdpRelaySettings
from netrepl.transport.udp import MAX_DATAGRAM
from netrepl.view import View
from tests.net import transport_helpers
from tests.net.conftest import WAIT, EventTap, RunningNetrepl, run_netrepl
from tests.net.transport_helpers import payload, port_of, wait_noticed
from tests.peers import has_ipv6_loopback
from tests.transcripts import entries

raw = transport_helpers.raw
transports = transport_helpers.transports

needs_ipv6 = pytest.mark.skipif(not has_ipv6_loopback(), reason="no IPv6 loopback (::1)")


class UdpEcho:
    """A UDP server on loopback that answers each datagram with `reply(data)` to its sender,
    and records (data, sender) of each; its thread ends when it is closed."""

    def __init__(self, host: str = "127.0.0.1", prefix: bytes = b"echo:") -> None:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.sock = socket.socket(family, socket.SOCK_DGRAM)
        self.sock.bind((host, 0))
        self.host = host
        self.port = self.sock.getsockname()[1]
        self.prefix = prefix
        self.heard: list[tuple[bytes, tuple]] = []
        self._stopping = False
        self._changed = threading.Condition()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    @property
    def relay_to(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"

    def _serve(self) -> None:
        while True:
            try:
                data, sender = self.sock.recvfrom(65536)
                if self._stopping:
                    return
                self.sock.sendto(self.prefix + data if data else data, sender)
            except OSError:
                return  # closed by the test
            with self._changed:
                self.heard.append((data, sender))
                self._changed.notify_all()

    def wait_heard(self, count: int) -> list[tuple[bytes, tuple]]:
        with self._changed:
            if not self._changed.wait_for(lambda: len(self.heard) >= count, WAIT):
                raise AssertionError(f"the upstream heard {self.heard!r}, not {count} datagrams")
            return list(self.heard)

    def close(self) -> None:
        # A close does not wake a thread blocked in recvfrom: a datagram does.
        self._stopping = True
        family = self.sock.family
        with socket.socket(family, socket.SOCK_DGRAM) as poke:
            poke.sendto(b"", (self.host, self.port))
        self._thread.join(WAIT)
        self.sock.close()


@pytest.fixture
def echo() -> Iterator[UdpEcho]:
    server = UdpEcho()
    yield server
    server.close()


def relay_endpoint(upstream: str, host: str | None = "127.0.0.1", **settings: float) -> Endpoint:
    up_host, _, up_port = upstream.rpartition(":")
    up = Endpoint(protocol="udp", host=up_host.strip("[]"), port=int(up_port))
    kind_settings = UdpRelaySettings(**settings) if settings else None
    return Endpoint(
        protocol="udp", host=host, port=0, listen=True, upstream=up, kind_settings=kind_settings
    )


def free_udp_port() -> int:
    """A loopback UDP port nothing is bound to: datagrams to it are refused (ICMP)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def legs(tap: EventTap) -> dict[tuple[int, str], Connected]:
    """(flow, side) -> the Connected of that leg."""
    return {(e.flow, e.side): e for e in tap.of_type(Connected)}


def received_on(tap: EventTap, conn: int) -> list[bytes]:
    return [e.data for e in tap.of_type(Received) if e.conn == conn]


def recv(sock: socket.socket) -> tuple[bytes, tuple]:
    sock.settimeout(WAIT)
    return sock.recvfrom(65536)


@pytest.fixture
def relay(transports, echo):
    """A UDP relay on 127.0.0.1 to the echo upstream: (transport, tap, (host, port))."""
    transport, tap = transports.open(relay_endpoint(echo.relay_to))
    return transport, tap, ("127.0.0.1", port_of(transport.address))


# ---- flows: one per sender, each with its own upstream socket ---------------------------------


def test_two_senders_each_get_their_own_replies(relay, echo, raw):
    transport, tap, address = relay
    [listening] = tap.of_type(Listening)
    assert listening.upstream == echo.relay_to and listening.protocol == "udp"
    first, second = raw.udp(), raw.udp()
    first.sendto(b"from the first", address)
    second.sendto(b"from the second", address)
    # Interleaved, so a relay that answered "the last sender" would mix them up.
    first.sendto(b"first again", address)

    assert recv(first) == (b"echo:from the first", address)
    assert recv(second) == (b"echo:from the second", address)
    assert recv(first) == (b"echo:first again", address)

    heard = echo.wait_heard(3)
    sources = {data: sender for data, sender in heard}
    assert sources[b"from the first"] == sources[b"first again"]
    assert sources[b"from the first"] != sources[b"from the second"], "a socket per flow"
    assert address not in sources.values(), "not from the listener's own socket"

    found = legs(tap)
    assert sorted(found) == [(1, "client"), (1, "upstream"), (2, "client"), (2, "upstream")]
    assert found[1, "client"].peer == f"127.0.0.1:{first.getsockname()[1]}"
    assert found[1, "client"].accepted and found[1, "client"].datagrams
    assert found[1, "upstream"].peer == echo.relay_to and not found[1, "upstream"].accepted
    assert found[1, "upstream"].local == f"127.0.0.1:{sources[b'from the first'][1]}"
    assert found[2, "upstream"].local == f"127.0.0.1:{sources[b'from the second'][1]}"
    assert len({e.conn for e in found.values()}) == 4, "every leg its own connection id"
    assert transport.state == "relaying, 2 flows"
    assert not tap.of_type(Sent), "forwarded datagrams are not posted as sent"


def test_datagram_boundaries_are_kept_both_ways(relay, echo, raw):
    _, tap, address = relay
    sender = raw.udp()
    sizes = [1, 0, 17, 1000, 1, 8192, MAX_DATAGRAM - len(b"echo:")]
    sent = [payload(size, seed=size) for size in sizes]
    for data in sent:
        sender.sendto(data, address)
        # One at a time: the kernel keeps datagrams whole, but a burst may be dropped.
        expected = b"echo:" + data if data else b""
        assert recv(sender) == (expected, address)
    assert [data for data, _ in echo.wait_heard(len(sent))] == sent

    found = legs(tap)
    client, upstream = found[1, "client"].conn, found[1, "upstream"].conn
    tap.wait_until(lambda: len(received_on(tap, upstream)) == len(sent), "every reply posted")
    assert received_on(tap, client) == sent
    assert received_on(tap, upstream) == [b"echo:" + d if d else b"" for d in sent]
    assert all(e.datagram for e in tap.of_type(Received))


def test_a_relay_on_every_interface_answers_an_ipv4_sender(transports, echo, raw):
    # On a dual-stack socket the sender's address is ::ffff:127.0.0.1: replies must still go.
    transport, tap = transports.open(relay_endpoint(echo.relay_to, host=None))
    assert transport.address.startswith("*:")
    address = ("127.0.0.1", port_of(transport.address))
    sender = raw.udp()
    sender.sendto(b"anyone", address)
    assert recv(sender) == (b"echo:anyone", address)
    assert legs(tap)[1, "client"].peer == f"127.0.0.1:{sender.getsockname()[1]}"


@needs_ipv6
def test_an_ipv6_relay_to_an_ipv6_upstream(transports, raw):
    upstream = UdpEcho("::1")
    try:
        transport, tap = transports.open(relay_endpoint(upstream.relay_to, host="::1"))
        sender = raw.udp("::1")
        address = ("::1", port_of(transport.address))
        sender.sendto(b"six", address)
        data, source = recv(sender)
        assert data == b"echo:six" and source[:2] == address
        assert legs(tap)[1, "upstream"].peer == upstream.relay_to
    finally:
        upstream.close()


# ---- the flow-facing API: targets, injection, flows, kick -------------------------------------


def test_injected_datagrams_go_to_the_side_chosen(relay, echo, raw):
    transport, tap, address = relay
    first, second = raw.udp(), raw.udp()
    first.sendto(b"one", address)
    recv(first)
    second.sendto(b"two", address)
    recv(second)
    found = legs(tap)

    assert transport.default_target() == FlowSide("newest", "upstream")
    transport.send(b"to the newest upstream", transport.default_target(), as_hex=False)
    assert recv(second) == (b"echo:to the newest upstream", address), "its reply is relayed"
    transport.send(b"to the newest client", FlowSide("newest", "client"), as_hex=False)
    assert recv(second) == (b"to the newest client", address)
    transport.send(b"to #1's client", FlowSide(1, "client"), as_hex=False)
    assert recv(first) == (b"to #1's client", address)
    transport.send(b"a bare 1", 1, as_hex=False)  # a flow's number alone: its upstream
    assert recv(first) == (b"echo:a bare 1", address)

    sent = [(e.conn, e.data) for e in tap.of_type(Sent)]
    assert sent == [
        (found[2, "upstream"].conn, b"to the newest upstream"),
        (found[2, "client"].conn, b"to the newest client"),
        (found[1, "client"].conn, b"to #1's client"),
        (found[1, "upstream"].conn, b"a bare 1"),
    ]
    # The injected datagram's Sent is ahead of the reply it provoked (which is forwarded
    # before it is posted: wait for its event).
    tap.wait_until(
        lambda: any(e.data == b"echo:a bare 1" for e in tap.of_type(Received)), "the reply"
    )
    events = [e for e in tap.snapshot() if isinstance(e, Sent | Received)]
    injected = next(i for i, e in enumerate(events) if e.data == b"a bare 1")
    reply = next(i for i, e in enumerate(events) if e.data == b"echo:a bare 1")
    assert injected < reply

    transport.send(b"everyone", FlowSide("all", "client"), as_hex=False)
    assert recv(first)[0] == recv(second)[0] == b"everyone"
    assert [e.echo for e in tap.of_type(Sent)][-2:] == [True, False]


def test_targets_that_name_no_flow_are_refused(relay, raw):
    transport, tap, address = relay
    with pytest.raises(SendError, match="no flow yet"):
        transport.send(b"x", transport.default_target(), as_hex=False)
    sender = raw.udp()
    sender.sendto(b"hi", address)
    recv(sender)
    for target, words in (
        ("last", "a relay sends to a side of a flow"),
        (("127.0.0.1", 9), "a relay sends to a side of a flow"),
        (FlowSide(7, "client"), "no flow #7"),
        (7, "no flow #7"),
    ):
        with pytest.raises(UsageError, match=words):
            transport.check_target(target)
    transport.check_target(FlowSide(1, "client"))
    with pytest.raises(SendError, match="no flow #7"):
        transport.send(b"x", FlowSide(7, "upstream"), as_hex=False)
    found = legs(tap)
    assert transport.reply_target(found[1, "client"].conn) == FlowSide(1, "client")
    assert transport.reply_target(found[1, "upstream"].conn) == FlowSide(1, "upstream")
    assert transport.has_left(1, found[1, "client"].conn)
    assert not transport.has_left(1, found[1, "upstream"].conn)
    assert not transport.has_left(FlowSide("newest", "upstream"), found[1, "client"].conn)


def test_flows_and_peers_list_both_legs(relay, echo, raw):
    transport, _, address = relay
    sender = raw.udp()
    sender.sendto(b"12345", address)
    recv(sender)
    # Counted just after the reply went out: wait for the count, which wakes waiters.
    assert transport.wait_for(lambda: transport.sent == 15, WAIT)
    [flow] = transport.flow_list()
    assert flow.flow == 1 and flow.client == f"127.0.0.1:{sender.getsockname()[1]}"
    assert flow.upstream == echo.relay_to and flow.state == "open"
    assert (flow.to_upstream, flow.to_client) == (5, 10)
    [peer] = transport.peers()
    assert peer.conn == 1 and peer.address == f"{flow.client} ⇄ {echo.relay_to}"
    assert (peer.received, peer.sent, peer.remark) == (5, 10, "")
    assert transport.received == 15 and transport.sent == 15


def test_kick_forgets_the_flow_and_closes_its_upstream_socket(relay, echo, raw):
    transport, tap, address = relay
    sender = raw.udp()
    sender.sendto(b"before", address)
    recv(sender)
    old = legs(tap)
    old_source = echo.wait_heard(1)[0][1]

    transport.kick(1)
    closed = {e.conn: e for e in tap.of_type(Closed)}
    assert set(closed) == {old[1, "client"].conn, old[1, "upstream"].conn}
    assert all(e.reason == "ended by /kick" and not e.failed for e in closed.values())
    assert transport.flow_list() == [] and transport.state == "relaying, 0 flows"
    with pytest.raises(UsageError, match="no flow #1"):
        transport.kick(1)
    # Its socket is closed: the port it sent from is free again.
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(old_source)

    sender.sendto(b"after", address)
    assert recv(sender) == (b"echo:after", address)
    new = legs(tap)
    assert (2, "client") in new and new[2, "client"].peer == old[1, "client"].peer
    assert new[2, "client"].conn not in closed and new[2, "upstream"].conn not in closed
    assert [f.flow for f in transport.flow_list()] == [2]


def test_a_flow_quiet_both_ways_ends(transports, echo, raw):
    idle = 0.3
    transport, tap = transports.open(relay_endpoint(echo.relay_to, idle=idle))
    address = ("127.0.0.1", port_of(transport.address))
    sender = raw.udp()
    quiet_from = time.monotonic()  # at the latest, the flow is quiet from its reply on
    sender.sendto(b"ping", address)
    recv(sender)
    found = legs(tap)

    tap.wait_until(lambda: len(tap.of_type(Closed)) == 2, "both legs ended")
    assert time.monotonic() - quiet_from >= idle
    reasons = {e.conn: e.reason for e in tap.of_type(Closed)}
    assert set(reasons) == {found[1, "client"].conn, found[1, "upstream"].conn}
    assert all("--relay-idle" in reason for reason in reasons.values())
    assert transport.flow_list() == [] and transport.is_open

    sender.sendto(b"again", address)
    assert recv(sender) == (b"echo:again", address), "the next datagram starts a new flow"
    assert (2, "upstream") in legs(tap)


def test_a_flow_that_keeps_talking_outlives_its_idle_time(transports, echo, raw):
    idle = 0.3
    transport, tap = transports.open(relay_endpoint(echo.relay_to, idle=idle))
    address = ("127.0.0.1", port_of(transport.address))
    sender = raw.udp()
    started = time.monotonic()
    for number in range(8):
        sender.sendto(b"%d" % number, address)
        assert recv(sender)[0] == b"echo:%d" % number
        time.sleep(idle / 3)  # pacing: a datagram each third of the idle time
    assert time.monotonic() - started > 2 * idle
    assert not tap.of_type(Closed) and [f.flow for f in transport.flow_list()] == [1]
    tap.wait_until(lambda: len(tap.of_type(Closed)) == 2, "the flow ends once quiet")


# ---- an upstream that is not there ------------------------------------------------------------


def test_an_unreachable_upstream_is_said_in_one_line(transports, raw):
    upstream = f"127.0.0.1:{free_udp_port()}"
    transport, tap = transports.open(relay_endpoint(upstream))
    address = ("127.0.0.1", port_of(transport.address))
    sender = raw.udp()
    sender.sendto(b"anyone there?", address)
    notice = wait_noticed(tap, "port unreachable")
    assert notice.level == "error" and "\n" not in notice.text
    assert notice.text == (
        f"#1 upstream {upstream}: port unreachable (ICMP): nothing listens there;"
        " that datagram was dropped"
    )
    assert transport.is_open and transport.flow_list()[0].state == "1 unreachable"
    # Injected into the flow's upstream, the refusal is said, never raised as a traceback.
    transport.send(b"still?", FlowSide(1, "upstream"), as_hex=False)
    sender.sendto(b"and again", address)
    tap.wait_until(
        lambda: transport.flow_list()[0].state != "1 unreachable", "more refusals counted"
    )
    assert len([e for e in tap.of_type(Noticed) if "unreachable" in e.text]) <= 2


def test_an_upstream_that_does_not_resolve_is_refused_at_the_start(transports):
    bad = Endpoint(protocol="udp", host="no-such-host.invalid", port=9)
    endpoint = Endpoint(protocol="udp", host="127.0.0.1", port=0, listen=True, upstream=bad)
    with pytest.raises(ConnectError, match=r"cannot relay to no-such-host\.invalid:9"):
        open_transport(endpoint, EventTap(), itertools.count(1))


# ---- a session: the views, /to, /flows, the log, batch mode ---------------------------------


def test_the_hex_view_labels_each_flow_and_direction(make_session, echo, raw):
    harness = make_session(view=View(mode="hex", timestamps="on"), batch=True)
    session = harness.session
    session.open(relay_endpoint(echo.relay_to))
    address = ("127.0.0.1", port_of(session.transport.address))
    sender = raw.udp()
    sender.sendto(b"request", address)
    recv(sender)

    session.submit("/to client")
    session.submit("to the client")
    assert recv(sender)[0] == b"to the client\n"
    session.submit("/to upstream")
    session.submit("to the upstream")
    assert recv(sender)[0] == b"echo:to the upstream\n"
    session.submit("/flows")
    out = harness.output.wait_stdout("|ream.|")
    harness.output.wait_stderr("#1 ")
    stdout, stderr = harness.finish()

    lines = stdout.splitlines()
    labels = [line.split(" ", 2)[2] for line in lines if line.startswith("── ")]
    assert labels == [
        "#1 client → upstream · 7 bytes",
        "#1 upstream → client · 12 bytes",
        "#1 netrepl → client · 14 bytes injected",
        "#1 netrepl → upstream · 16 bytes injected",
        "#1 upstream → client · 21 bytes",
    ]
    assert "00000000  72 65 71 75 65 73 74" in out and "|request|" in out
    assert "relaying 127.0.0.1:" in stderr and f"(UDP) to {echo.relay_to}" in stderr
    flows = next(line for line in stderr.splitlines() if line.strip().startswith("#1 "))
    client = f"127.0.0.1:{sender.getsockname()[1]}"
    assert flows.split()[:3] == ["#1", client, echo.relay_to]
    assert flows.split()[-2:] == ["7", "33"], "bytes to the upstream and to the client"


def ready(netrepl: RunningNetrepl) -> None:
    """Wait until batch mode reads its input, by then ready for SIGTERM (which kills it
    outright while it opens its transport)."""
    netrepl.write(b"/flows\n")
    netrepl.wait_stderr(b"no flows yet")


def test_a_batch_relay_logs_both_legs_and_ends_on_sigterm(start_netrepl, echo, raw, tmp_path):
    log = tmp_path / "relay.jsonl"
    netrepl = start_netrepl(
        "-u", "-l", "127.0.0.1", "0", "--relay", echo.relay_to, "--view", "hex", "--log", str(log)
    )
    match = netrepl.wait_stderr_match(rb"relaying 127\.0\.0\.1:(\d+) \(UDP\) to ")
    address = ("127.0.0.1", int(match.group(1)))
    ready(netrepl)
    netrepl.close_stdin()  # a relay runs on after its input ends
    sender = raw.udp()
    sender.sendto(b"via the relay", address)
    assert recv(sender) == (b"echo:via the relay", address)
    netrepl.wait_stdout(b"#1 upstream \xe2\x86\x92 client")

    netrepl.process.send_signal(signal.SIGTERM)
    result = netrepl.finish()
    assert result.returncode == 0, result.stderr
    stderr = result.stderr.decode()
    assert "Traceback" not in stderr
    assert stderr.splitlines()[-1] == (
        "netrepl: relayed 1 flow: 13 bytes (1 datagram) from the clients,"
        " 18 bytes (1 datagram) from the upstream"
    )
    stdout = result.stdout.decode()
    assert "#1 client → upstream · 13 bytes" in stdout
    assert "|via the relay|" in stdout and "|echo:via the rel|" in stdout

    events = [entry.event for entry in entries(log)]
    connected = {(e.flow, e.side): e for e in events if isinstance(e, Connected)}
    assert set(connected) == {(1, "client"), (1, "upstream")}
    client, upstream = connected[1, "client"], connected[1, "upstream"]
    assert client.peer == f"127.0.0.1:{sender.getsockname()[1]}"
    assert upstream.peer == echo.relay_to
    received = [(e.conn, e.data) for e in events if isinstance(e, Received)]
    assert received == [(client.conn, b"via the relay"), (upstream.conn, b"echo:via the relay")]
    assert {e.conn for e in events if isinstance(e, Closed)} == {client.conn, upstream.conn}


def test_a_batch_relay_to_nothing_says_so_without_a_traceback(start_netrepl, raw):
    upstream = f"127.0.0.1:{free_udp_port()}"
    netrepl = start_netrepl("-u", "-l", "127.0.0.1", "0", "--relay", upstream)
    match = netrepl.wait_stderr_match(rb"relaying 127\.0\.0\.1:(\d+) \(UDP\)")
    ready(netrepl)
    sender = raw.udp()
    sender.sendto(b"hello?", ("127.0.0.1", int(match.group(1))))
    netrepl.wait_stderr(b"port unreachable (ICMP): nothing listens there")
    netrepl.process.send_signal(signal.SIGTERM)
    result = netrepl.finish()
    assert result.returncode == 0
    stderr = result.stderr.decode()
    assert "Traceback" not in stderr
    [line] = [line for line in stderr.splitlines() if "unreachable" in line]
    assert line == (
        f"netrepl: #1 upstream {upstream}: port unreachable (ICMP): nothing listens there;"
        " that datagram was dropped"
    )
    assert stderr.splitlines()[-1].startswith("netrepl: relayed 1 flow: 6 bytes (1 datagram)")


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("-u -l 1 --relay 127.0.0.1:2 --relay-tls", "--relay-tls goes over TCP, not UDP"),
        ("-u -l 1 --relay-idle 5", "--relay-idle is for a UDP relay"),
        ("-u -l 1 --relay 127.0.0.1:2 --relay-idle -1", "--relay-idle"),
    ],
)
def test_what_a_udp_relay_cannot_do_is_a_usage_error(line, message):
    result = run_netrepl(*line.split())
    assert result.returncode == 2
    assert message in result.stderr.decode() and b"Traceback" not in result.stderr


def test_relaying_to_its_own_address_is_refused():
    port = free_udp_port()
    result = run_netrepl("-u", "-l", "127.0.0.1", str(port), "--relay", f"127.0.0.1:{port}")
    assert result.returncode == 2
    assert result.stderr.decode() == (
        f"netrepl: --relay 127.0.0.1:{port} is where this relay listens: each datagram would"
        " come back to it as a new flow\n"
    )


def client_flows(tap) -> list[Connected]:
    return [event for event in tap.of_type(Connected) if event.side == "client"]


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="counts descriptors in /proc")
def test_out_of_file_descriptors_a_new_flow_is_said_and_the_relay_goes_on(relay, echo, raw):
    """A socket per flow: a relay heard by many senders can run out of descriptors."""
    transport, tap, address = relay
    senders = [raw.udp() for _ in range(12)]
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    # A new descriptor is the lowest free number: fill the holes below the highest open one,
    # then a limit two above it leaves room for two upstream sockets, far fewer than 12.
    highest = max(int(name) for name in os.listdir("/proc/self/fd"))
    fillers = [os.open(os.devnull, os.O_RDONLY)]
    while fillers[-1] < highest:  # at most `highest` of them
        fillers.append(os.open(os.devnull, os.O_RDONLY))
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(fillers) + 3, hard))
    try:
        for sender in senders:
            sender.sendto(b"hello", address)
        # Every sender's flow, not every Received: the upstream's echoes are Received too,
        # and the count reached 12 with a sender's flow still to come (a CI run).
        tap.wait_until(lambda: len(client_flows(tap)) >= len(senders), "every sender's flow")
        notice = wait_noticed(tap, "cannot open a socket")
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
        for filler in fillers:
            os.close(filler)
    assert notice.level == "error" and "too many open files" in notice.text
    assert len(client_flows(tap)) == len(senders)
    failed = int(notice.text.split()[0].removeprefix("#"))
    assert "no upstream: cannot open a socket" in transport.flow_list()[failed - 1].state

    # With descriptors again, /kick and the sender's next datagram give it its upstream.
    transport.kick(failed)
    again = senders[failed - 1]
    again.sendto(b"again", address)
    assert recv(again) == (b"echo:again", address)


# ---- holding and rewriting: each datagram is one frame -----------------------------------------


def test_a_held_datagram_waits_for_forward_and_a_dropped_one_never_arrives(relay, echo, raw):
    transport, tap, address = relay
    sender = raw.udp()
    transport.hold(("upstream",))
    sender.sendto(b"one", address)
    sender.sendto(b"two", address)
    echo.wait_heard(2)
    tap.wait_until(
        lambda: any(e.text.startswith("held 2:") for e in tap.of_type(Noticed)), "held 2"
    )
    assert [frame.data for frame in transport.holding()[1]] == [b"echo:one", b"echo:two"]
    transport.forward_held("1")
    assert recv(sender)[0] == b"echo:one"
    transport.drop_held(None)  # the oldest: echo:two
    transport.hold(())
    sender.sendto(b"three", address)
    assert recv(sender)[0] == b"echo:three"  # never echo:two
    texts = [e.text for e in tap.of_type(Noticed)]
    assert "held 1: #1 upstream → client, 8 bytes (/forward 1, /drop 1)" in texts
    assert "dropped frame 2 (8 bytes): never seen by #1 client" in texts


def test_a_rewrite_changes_a_whole_datagram_on_its_way(relay, echo, raw):
    transport, _, address = relay
    sender = raw.udp()
    transport.add_rewrite("client", re.compile(b"^ping"), lambda match, before: b"PONG", "", False)
    sender.sendto(b"ping 7", address)
    assert recv(sender)[0] == b"echo:PONG 7"
    assert echo.wait_heard(1)[0][0] == b"PONG 7"
