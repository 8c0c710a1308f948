"""The TCP relay (`-l PORT --relay HOST:PORT`) with real processes on both sides: netrepl in a
subprocess between a Python client and a Python upstream, over loopback.

Forwarding (byte-exact, both ways at once), the labels of each direction in each view, the
life of a flow (half-close, reset, an unreachable upstream, --max-clients, --once, /kick),
injecting with /to, backpressure with memory measured, TLS on either side, a unix listener,
the batch logging relay and its signals, /when and /expect on relayed data, and the log.
"""

from __future__ import annotations

import hashlib
import os
import re
import signal
import socket
import ssl
import threading

import pytest

from netrepl.events import Connected
from netrepl.transport import Endpoint, FlowSide
from netrepl.transport.loop import IOLoop
from netrepl.transport.stream import StreamChannel
from tests.net import transport_helpers
from tests.net.conftest import WAIT, EventTap, hexdump_line, run_netrepl
from tests.net.relay_peers import (
    Background,
    Flow,
    NetreplToFile,
    Pour,
    Relay,
    Upstream,
    digest_of_stream,
    loopback_buffers,
    memory_kib,
    read_to_end,
    stop_with,
    wait_exit,
    wait_reset,
)
from tests.net.test_cli_transports import Certs, make_certs
from tests.net.transport_helpers import payload, port_of, recv_exact, reset

transports = transport_helpers.transports


@pytest.fixture
def upstream():
    peer = Upstream()
    yield peer
    peer.close()


@pytest.fixture
def start_relay(start_netrepl, upstream):
    """start_relay(*args, upstream=...) -> a Relay: netrepl -l 127.0.0.1 0 --relay UPSTREAM."""
    relays: list[Relay] = []

    def start(*args: str, to: Upstream = upstream, listen: tuple[str, ...] = ()) -> Relay:
        where = listen or ("-l", "127.0.0.1", "0")
        netrepl = start_netrepl(*where, "--relay", to.address, *args)
        relay = Relay(netrepl, to)
        relays.append(relay)
        return relay

    yield start
    for relay in relays:
        relay.close()


# Both signals that end a logging relay. A process started in the background by a shell
# without job control ignores SIGINT, and so would the netrepl it starts: skip it then.
SIGNALS = [
    pytest.param(signal.SIGTERM, id="SIGTERM"),
    pytest.param(
        signal.SIGINT,
        id="SIGINT",
        marks=pytest.mark.skipif(
            signal.getsignal(signal.SIGINT) is signal.SIG_IGN, reason="SIGINT is ignored here"
        ),
    ),
]


# ---- forwarding ------------------------------------------------------------------------------


def test_large_payloads_cross_both_ways_at_once_byte_exact(start_relay):
    relay = start_relay("--view", "hex")
    flow = relay.connect()
    size = 20 * 1024 * 1024
    up, down = payload(size, seed=1), payload(size, seed=2)
    sending = [
        Background(lambda: flow.client.sendall(up)),
        Background(lambda: flow.upstream.sendall(down)),
    ]
    at_upstream = Background(lambda: digest_of_stream(flow.upstream, size, timeout=60))
    at_client = Background(lambda: digest_of_stream(flow.client, size, timeout=60))
    assert at_upstream.result(70) == hashlib.sha256(up).hexdigest()
    assert at_client.result(70) == hashlib.sha256(down).hexdigest()
    for sender in sending:
        sender.result(70)


# ---- labels ----------------------------------------------------------------------------------

CLOCK = r"\d\d:\d\d:\d\d\.\d{3}"
DELTA = r"\+\d+\.\d{3}s"


def converse(flow, request: bytes, reply: bytes) -> None:
    """The client asks, the upstream answers; each side reads exactly what the other sent."""
    flow.client.sendall(request)
    assert recv_exact(flow.upstream, len(request)) == request
    flow.upstream.sendall(reply)
    assert recv_exact(flow.client, len(reply)) == reply


def inject(relay: Relay, line: bytes, sock) -> None:
    """Type `line` (stdin: batch mode) and wait until `sock`'s side of the flow has it."""
    relay.netrepl.write(line + b"\n")
    assert recv_exact(sock, len(line) + 1) == line + b"\n"


def blocks(stdout: str) -> list[tuple[str, str]]:
    """(label, body) for each block of a batch output."""
    parts = re.split(r"(?m)^── (.*)\n", stdout)
    assert parts[0] == "", f"output before the first label: {parts[0]!r}"
    return list(zip(parts[1::2], parts[2::2], strict=True))


@pytest.mark.parametrize("view", ["utf8", "hex"])
@pytest.mark.parametrize("time_mode", ["off", "on", "delta"])
def test_each_block_is_labelled_with_its_flow_and_direction(start_relay, view, time_mode):
    relay = start_relay("--view", view, "--time", time_mode)
    first = relay.connect()
    converse(first, b"ping 1\n", b"pong 1\n")
    inject(relay, b"typed 1", first.upstream)
    first.upstream.sendall(b"late 1\n")  # the same leg again, after the injected block
    assert recv_exact(first.client, 7) == b"late 1\n"
    second = relay.connect()
    converse(second, b"ping 2\n", b"pong 2\n")
    inject(relay, b"typed 2", second.upstream)  # the newest flow's upstream
    stdout = relay.netrepl.wait_stdout(b"typed 2" if view == "utf8" else b"|typed 2.|").decode()

    stamp = {"off": "", "on": CLOCK + " ", "delta": DELTA + " "}[time_mode]
    expected = [  # label, bytes, mark, the offset of the bytes in their leg's stream
        ("#1 client → upstream", b"ping 1\n", "", 0),
        ("#1 upstream → client", b"pong 1\n", "", 0),
        ("#1 netrepl → upstream", b"typed 1\n", " injected", 0),
        ("#1 upstream → client", b"late 1\n", "", 7),
        ("#2 client → upstream", b"ping 2\n", "", 0),
        ("#2 upstream → client", b"pong 2\n", "", 0),
        ("#2 netrepl → upstream", b"typed 2\n", " injected", 0),
    ]
    got = blocks(stdout)
    assert len(got) == len(expected), stdout
    for (label, body), (direction, data, mark, offset) in zip(got, expected, strict=True):
        # A running stream (--time off) labels a change of direction, a block its size.
        size = f" · {len(data)} bytes" if stamp or mark else ""
        assert re.fullmatch(rf"{stamp}{direction}{size}{mark}", label), label
        assert body == (data.decode() if view == "utf8" else hexdump_line(offset, data)), stdout


# ---- injecting -------------------------------------------------------------------------------


def test_to_picks_the_flow_and_the_side(start_relay):
    relay = start_relay()
    first, second = relay.connect(), relay.connect()
    steps = [
        ("", b"a", [second.upstream]),  # the default: the newest flow's upstream
        ("/to client", b"b", [second.client]),
        ("/to upstream", b"c", [second.upstream]),
        ("/to 1", b"d", [first.upstream]),
        ("/to #1 client", b"e", [first.client]),
        ("/to all upstream", b"f", [first.upstream, second.upstream]),
        ("/to all client", b"g", [first.client, second.client]),
    ]
    for command, line, reached in steps:
        if command:
            relay.netrepl.write(command.encode() + b"\n")
        relay.netrepl.write(line + b"\n")
        for sock in reached:
            assert recv_exact(sock, 2) == line + b"\n", command
    # Each side read exactly its own lines, in order, and nothing else before the last.
    relay.netrepl.write(b"/to\n")
    relay.netrepl.wait_stderr(b"to every flow's client\n")
    for sock in (first.upstream, second.upstream, first.client, second.client):
        sock.setblocking(False)
        with pytest.raises(BlockingIOError):
            sock.recv(1)


def test_flows_and_clients_list_each_flow_with_its_bytes_each_way(start_relay):
    relay = start_relay()
    first, second = relay.connect(), relay.connect()
    converse(first, b"12345\n", b"1234567890\n")
    converse(second, b"abc\n", b"abcdefgh\n")
    inject(relay, b"to the upstream", second.upstream)  # injected: not the client's bytes
    relay.netrepl.write(b"/flows\n/clients\n")
    stderr = relay.netrepl.wait_stderr_match(rb"(?s)id\s+address.*#2  [^\n]*\n").string.decode()

    def row(flow, number: int) -> str:
        client = f"127.0.0.1:{flow.client.getsockname()[1]}"
        upstream = relay.upstream.address
        return rf"(?m)^\s+#{number}\s+{re.escape(client)}\s+{re.escape(upstream)}\s+\d+s\s+"

    flows_table = stderr[stderr.index("to upstream") :]
    assert re.search(r"(?m)^\s+id\s+client\s+upstream\s+age\s+to upstream\s+to client$", stderr)
    assert re.search(row(first, 1) + r"6\s+11$", flows_table), flows_table
    assert re.search(row(second, 2) + r"4\s+9$", flows_table), flows_table
    # /clients: each flow once, with both legs' addresses and the client leg's bytes.
    clients_table = stderr[stderr.index("id  address") :]
    for flow, number, received, sent in ((first, 1, 6, 11), (second, 2, 4, 9)):
        client = f"127.0.0.1:{flow.client.getsockname()[1]}"
        pair = f"{client} ⇄ {relay.upstream.address}"
        pattern = rf"(?m)^\s+#{number}\s+{re.escape(pair)}\s+\d+s\s+{received}\s+{sent}$"
        assert re.search(pattern, clients_table), clients_table


@pytest.mark.parametrize(
    ("command", "error"),
    [
        ("/to 9", "/to: no flow #9 (/flows lists them)"),
        ("/to 9 client", "/to: no flow #9 (/flows lists them)"),
        ("/to x y", "/to: 'y' is not a side (client or upstream)"),
        ("/to 1 sideways", "/to: 'sideways' is not a side (client or upstream)"),
        ("/to last", "/to: a relay sends to a side of a flow"),
        ("/to 127.0.0.1:9", "/to: a relay sends to a side of a flow"),
    ],
)
def test_a_bad_to_is_one_line_and_ends_the_batch_run_with_usage_status(start_relay, command, error):
    relay = start_relay()
    flow = relay.connect()
    relay.netrepl.write(command.encode() + b"\n")
    result = relay.netrepl.finish()
    assert result.returncode == 2, result.stderr
    lines = [line for line in result.stderr.decode().splitlines() if "stdin line" in line]
    assert len(lines) == 1 and lines[0].startswith(f"netrepl: stdin line 1: {error}"), lines
    assert read_to_end(flow.client) == b"", "the relay ended, so the flow with it"


# ---- the life of a flow ----------------------------------------------------------------------


def test_a_client_half_close_reaches_the_upstream_and_its_reply_still_comes_back(start_relay):
    relay = start_relay()
    flow = relay.connect()
    flow.client.sendall(b"all of the request")
    flow.client.shutdown(socket.SHUT_WR)
    assert read_to_end(flow.upstream) == b"all of the request", "EOF after the request"
    relay.netrepl.wait_stderr(b"#1 client sent end of stream (half-close): passed on")
    flow.upstream.sendall(b"the reply, after the client's end")
    flow.upstream.close()
    assert read_to_end(flow.client) == b"the reply, after the client's end"


def test_an_upstream_half_close_reaches_the_client_which_may_still_send(start_relay):
    relay = start_relay()
    flow = relay.connect()
    flow.upstream.sendall(b"banner, then end of stream")
    flow.upstream.shutdown(socket.SHUT_WR)
    assert read_to_end(flow.client) == b"banner, then end of stream"
    relay.netrepl.wait_stderr(b"#1 upstream sent end of stream (half-close): passed on")
    flow.client.sendall(b"the client still talks")
    flow.client.close()
    assert read_to_end(flow.upstream) == b"the client still talks"


@pytest.mark.parametrize("crashing", ["client", "upstream"])
def test_a_reset_on_one_side_resets_the_other(start_relay, crashing):
    relay = start_relay()
    flow = relay.connect()
    converse(flow, b"hello\n", b"hi\n")
    other = "upstream" if crashing == "client" else "client"
    reset(getattr(flow, crashing))
    assert wait_reset(getattr(flow, other)) == b""
    relay.netrepl.wait_stderr(f"#1 {other} ".encode())
    relay.netrepl.wait_stderr(f"reset, as the {crashing} leg failed: ".encode())


def test_an_unreachable_upstream_closes_the_client_with_one_line(start_relay, upstream):
    upstream.close()  # nothing listens on its port any more: connecting is refused
    relay = start_relay()
    client = relay.connect_client()
    assert read_to_end(client) == b""
    port = client.getsockname()[1]
    relay.netrepl.wait_stderr(b"closing the client")
    result = stop_with(relay.netrepl, signal.SIGTERM)
    why = [line for line in result.stderr.decode().splitlines() if "refused" in line]
    assert why == [
        f"netrepl: #1 127.0.0.1:{port}: cannot connect to {upstream.address}:"
        " connection refused; closing the client"
    ]


def test_max_clients_refuses_the_next_client_with_a_line(start_relay):
    relay = start_relay("--max-clients", "1")
    flow = relay.connect()
    refused = relay.connect_client()
    assert read_to_end(refused) == b""
    relay.netrepl.wait_stderr(b"already 1 client (--max-clients 1)")
    converse(flow, b"still relayed\n", b"yes\n")


def test_once_exits_after_the_first_client_leaves(start_relay):
    relay = start_relay("--once")
    flow = relay.connect()
    converse(flow, b"one exchange\n", b"and done\n")
    flow.client.close()
    assert read_to_end(flow.upstream) == b""
    flow.upstream.close()
    result = wait_exit(relay.netrepl)  # stdin stays open: --once alone ends it
    assert result.returncode == 0, result.stderr
    assert result.stderr.decode().splitlines()[-1] == (
        "netrepl: relayed 1 flow: 13 bytes from the clients, 9 from the upstream"
    )


def test_kick_closes_both_legs_of_that_flow_only(start_relay):
    relay = start_relay()
    first, second = relay.connect(), relay.connect()
    relay.netrepl.write(b"/kick 1\n")
    assert read_to_end(first.client) == b""
    assert read_to_end(first.upstream) == b""
    converse(second, b"flow 2 goes on\n", b"good\n")


# ---- backpressure ----------------------------------------------------------------------------


@pytest.mark.parametrize("idle_side", ["client", "upstream"])
def test_a_side_that_reads_nothing_stops_the_other_and_memory_stays_bounded(upstream, idle_side):
    # The raw view to /dev/null: the display costs nothing, so what is measured is the relay.
    netrepl = NetreplToFile("-l", "127.0.0.1", "0", "--relay", upstream.address, "--view", "raw")
    try:
        relay = Relay(netrepl, upstream)
        flow = relay.connect()
        reader = getattr(flow, idle_side)
        writer = flow.upstream if idle_side == "client" else flow.client
        idle = memory_kib(netrepl.process.pid)
        # What the kernel may hold of a flow: both legs' buffers, each autotuned (32 MiB of
        # receive buffer on some machines), not counting netrepl's own queue.
        kernel = 2 * loopback_buffers()
        size = max(300 * 1024 * 1024, 4 * kernel)
        pour = Pour(writer, size, seed=5)

        # One side reads nothing: netrepl stops reading the other, whose send blocks.
        held = pour.wait_stall(timeout=30)
        stalled = memory_kib(netrepl.process.pid)
        # The kernel's buffers, the relay's queue (RELAY_HIGH_WATER, 1 MiB) and one read past
        # it (READ_SIZE, 1 MiB): far from all of it.
        assert held < kernel + 3 * 1024 * 1024, f"{held:,} bytes taken before the sender stalled"

        # Then it reads everything, byte-exact.
        assert digest_of_stream(reader, size, timeout=90) == pour.digest()
        peak = memory_kib(netrepl.process.pid)["VmHWM"]
    finally:
        netrepl.kill()
    # Idle RSS x 1.5 (the bound), plus 4 MiB for what the relay holds by design: a
    # queue of up to RELAY_HIGH_WATER (1 MiB) for the slow side and the 1 MiB read (READ_SIZE)
    # that crossed it, with the event that carries that read to the display.
    bound = idle["VmRSS"] * 1.5 + 4 * 1024
    report = (
        f"idle {idle['VmRSS']:,} KiB, at the stall (after {held:,} bytes) {stalled['VmRSS']:,}"
        f" KiB, peak {peak:,} KiB, bound {bound:,.0f} KiB"
    )
    print(report)
    assert peak <= bound, report


# ---- TLS -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def certs(tmp_path_factory) -> Certs:
    return make_certs(tmp_path_factory.mktemp("relay-certs"))


def server_context(certs: Certs) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(certs.server_cert, certs.server_key)
    return context


@pytest.fixture
def tls_upstream(certs):
    """An upstream that speaks TLS with a certificate from the test's own CA."""
    peer = Upstream(server_context(certs))
    yield peer
    peer.close()


def test_a_tls_client_is_ended_at_netrepl_so_its_plaintext_is_shown(start_relay, certs):
    relay = start_relay("--tls", "--cert", certs.server_cert, "--key", certs.server_key)
    client_context = ssl.create_default_context(cafile=certs.ca)
    raw_client = relay.connect_client()
    client = client_context.wrap_socket(raw_client, server_hostname="localhost")
    upstream = relay.upstream.accept()
    relay.netrepl.wait_stderr(relay.leg_connected(1))
    converse(Flow(client, upstream), b"the secret request\n", b"the plain reply\n")
    stdout = relay.netrepl.wait_stdout(b"the plain reply\n").decode()
    assert blocks(stdout) == [
        ("#1 client → upstream", "the secret request\n"),
        ("#1 upstream → client", "the plain reply\n"),
    ]


def test_relay_tls_carries_a_plaintext_client_to_a_tls_upstream(start_relay, certs, tls_upstream):
    relay = start_relay("--relay-tls", "--relay-cafile", certs.ca, to=tls_upstream)
    flow = relay.connect()
    assert flow.upstream.version() is not None, "the upstream's side is TLS"
    converse(flow, b"plain to TLS\n", b"TLS to plain\n")
    stdout = relay.netrepl.wait_stdout(b"TLS to plain\n").decode()
    assert blocks(stdout) == [
        ("#1 client → upstream", "plain to TLS\n"),
        ("#1 upstream → client", "TLS to plain\n"),
    ]
    stderr = relay.netrepl.wait_stderr(b"#1 upstream: TLS").decode()
    assert "insecure" not in stderr and "not verified" not in stderr


def test_an_unverified_upstream_closes_the_client_with_one_line(start_relay, tls_upstream):
    relay = start_relay("--relay-tls", to=tls_upstream)  # the test's CA is not trusted
    client = relay.connect_client()
    with pytest.raises(ssl.SSLError):
        tls_upstream.accept()  # netrepl gives up on the handshake
    assert read_to_end(client) == b""
    port = client.getsockname()[1]
    relay.netrepl.wait_stderr(b"closing the client")
    result = stop_with(relay.netrepl, signal.SIGTERM)
    why = [line for line in result.stderr.decode().splitlines() if "certificate" in line]
    assert len(why) == 1, why
    assert why[0].startswith(f"netrepl: #1 127.0.0.1:{port}: "), why
    assert "certificate verify failed" in why[0] and why[0].endswith("; closing the client")


def test_relay_insecure_warns_for_every_flow(start_relay, tls_upstream):
    relay = start_relay("--relay-tls", "--relay-insecure", to=tls_upstream)
    for number in (1, 2):
        flow = relay.connect()
        converse(flow, b"anyway\n", b"ok\n")
        warning = f"warning: #{number} upstream: --relay-insecure: the certificate was not verified"
        relay.netrepl.wait_stderr(warning.encode())
    result = stop_with(relay.netrepl, signal.SIGTERM)
    assert result.stderr.count(b"--relay-insecure") == 2, result.stderr


# ---- a unix listener -------------------------------------------------------------------------


def test_a_unix_socket_listener_relays_to_tcp(start_netrepl, upstream, tmp_path):
    path = str(tmp_path / "relay.sock")
    netrepl = start_netrepl("--unix", path, "-l", "--relay", upstream.address, "--view", "hex")
    netrepl.wait_stderr(f"relaying unix:{path} (unix) to {upstream.address}".encode())
    client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        client.settimeout(WAIT)
        client.connect(path)
        flow = Flow(client, upstream.accept())
        netrepl.wait_stderr(f"#1 client unix:pid {os.getpid()} connected".encode())
        netrepl.wait_stderr(f"#1 upstream {upstream.address} connected".encode())
        converse(flow, b"over unix\n", b"back over tcp\n")
        client.shutdown(socket.SHUT_WR)
        assert read_to_end(flow.upstream) == b""
        flow.upstream.sendall(b"after the half-close")
        flow.upstream.close()
        assert read_to_end(client) == b"after the half-close"
    finally:
        client.close()
    stdout = netrepl.wait_stdout(b"|lose|\n").decode()
    assert [label for label, _ in blocks(stdout)] == [
        "#1 client → upstream",
        "#1 upstream → client",
    ]


# ---- the batch logging relay -----------------------------------------------------------------


@pytest.mark.parametrize("signum", SIGNALS)
def test_a_logging_relay_runs_until_a_signal_and_ends_with_a_summary(upstream, tmp_path, signum):
    traffic = tmp_path / "traffic.txt"
    netrepl = NetreplToFile(
        "-l", "127.0.0.1", "0", "--relay", upstream.address, "--view", "hex", "--time", "on",
        stdout=str(traffic),
    )  # fmt: skip
    try:
        relay = Relay(netrepl, upstream)
        done = relay.connect()
        converse(done, b"first request\n", b"first reply\n")
        done.client.close()
        assert read_to_end(done.upstream) == b""
        done.upstream.close()
        netrepl.wait_stderr(b"#1 client 127.0.0.1:")
        netrepl.wait_stderr_match(rb"#1 client \S+ connection closed")
        still_open = relay.connect()  # open when the signal comes
        converse(still_open, b"second\n", b"2nd\n")
        result = stop_with(netrepl, signum)
    finally:
        netrepl.kill()
    assert result.returncode == 0, result.stderr
    assert result.stderr.decode().splitlines()[-1] == (
        "netrepl: relayed 2 flows: 21 bytes from the clients, 16 from the upstream"
    )
    assert b"Traceback" not in result.stderr
    assert read_to_end(still_open.client) == b"", "the open flow ended with netrepl"
    got = blocks(traffic.read_text(encoding="utf-8"))
    expected = [
        ("#1 client → upstream", b"first request\n"),
        ("#1 upstream → client", b"first reply\n"),
        ("#2 client → upstream", b"second\n"),
        ("#2 upstream → client", b"2nd\n"),
    ]
    assert len(got) == len(expected), got
    for (label, body), (direction, data) in zip(got, expected, strict=True):
        assert re.fullmatch(rf"{CLOCK} {direction} · {len(data)} bytes", label), label
        assert body == hexdump_line(0, data)


# ---- /when and /expect -----------------------------------------------------------------------


def test_a_when_reply_goes_back_to_the_side_whose_data_matched(start_relay):
    relay = start_relay()
    flow = relay.connect()
    relay.netrepl.write(b"/when ^ping$ -> pong from netrepl\n/when ^ready$ -> go\n")
    inject(relay, b"rules set", flow.upstream)

    # The client's data matches: the reply goes to the client; the data still goes on.
    flow.client.sendall(b"ping\n")
    assert recv_exact(flow.upstream, 5) == b"ping\n"
    assert recv_exact(flow.client, 18) == b"pong from netrepl\n"
    # The upstream's data matches: the reply goes to the upstream; the data still goes on.
    flow.upstream.sendall(b"ready\n")
    assert recv_exact(flow.client, 6) == b"ready\n"
    assert recv_exact(flow.upstream, 3) == b"go\n"
    # Neither reply went the other way: next on each side is what is sent now.
    inject(relay, b"upstream marker", flow.upstream)
    relay.netrepl.write(b"/to client\n")
    inject(relay, b"client marker", flow.client)


def test_expect_matches_data_from_either_side(start_relay):
    relay = start_relay()
    flow = relay.connect()
    # Each /expect holds up the next line (batch mode), which is sent only once it matched;
    # a timeout would end the run with status 3 instead.
    relay.netrepl.write(b"/expect ^from the client$ 5\nafter the client\n")
    flow.client.sendall(b"from the client\n")
    assert recv_exact(flow.upstream, 33) == b"from the client\nafter the client\n"
    relay.netrepl.write(b"/expect ^from the upstream$ 5\nafter the upstream\n")
    flow.upstream.sendall(b"from the upstream\n")
    assert recv_exact(flow.client, 18) == b"from the upstream\n"
    assert recv_exact(flow.upstream, 19) == b"after the upstream\n"
    assert relay.netrepl.process.poll() is None, "no /expect timed out"


# ---- the log ---------------------------------------------------------------------------------


@pytest.mark.parametrize("time_mode", ["off", "on"])
def test_replaying_a_relay_log_shows_the_same_labels(start_relay, tmp_path, time_mode):
    log = str(tmp_path / "relay.jsonl")
    timing = ("--time", time_mode) if time_mode != "off" else ()
    relay = start_relay("--view", "hex", *timing, "--log", log)
    first = relay.connect()
    converse(first, b"request 1\n", b"reply 1\n")
    second = relay.connect()
    converse(second, b"request 2\n", b"reply 2\n")
    relay.netrepl.write(b"/to 1 client\n")
    inject(relay, b"injected", first.client)
    live = stop_with(relay.netrepl, signal.SIGTERM)
    assert live.returncode == 0, live.stderr

    replayed = run_netrepl("replay", log, "--view", "hex", *timing)
    assert replayed.returncode == 0, replayed.stderr
    live_blocks, replayed_blocks = blocks(live.stdout.decode()), blocks(replayed.stdout.decode())
    assert replayed_blocks == live_blocks
    directions = [
        "#1 client → upstream",
        "#1 upstream → client",
        "#2 client → upstream",
        "#2 upstream → client",
        "#1 netrepl → client",
    ]
    assert [re.sub(rf"^{CLOCK} | · .*$", "", label) for label, _ in live_blocks] == directions
    assert live_blocks[-1][0].endswith(" · 9 bytes injected")
    # The status lines name the legs as live: the flows, their sides, their ends.
    replayed_stderr = replayed.stderr.decode()
    for line in ("#1 client 127.0.0.1:", "#2 upstream 127.0.0.1:", "relaying 127.0.0.1:"):
        assert line in replayed_stderr, replayed_stderr


# ---- a leg closed as its flow joins ----------------------------------------------------------


def test_a_leg_closed_before_the_loop_started_it_is_left_closed():
    # A relay that stops as a flow joins closes the new upstream leg from the session's
    # thread while the loop thread has yet to run its start: the start must find it closed.
    errors: list[BaseException] = []
    loop = IOLoop("test-relay-leg", errors.append).start()
    ours, theirs = socket.socketpair()
    tap = EventTap()
    try:
        leg = StreamChannel(loop, ours, 1, tap, peer="upstream", local="", relay=None)
        leg.close()
        assert tap.wait_closed(1).failed is False
        leg.start()
        started = threading.Event()
        loop.call_soon(started.set)  # after the start, in the loop's order
        assert started.wait(WAIT)
        assert errors == []
        assert [type(event).__name__ for event in tap.snapshot()] == ["Closed"]
    finally:
        loop.stop()
        theirs.close()


# ---- counts ----------------------------------------------------------------------------------


def test_an_upstream_leg_that_closed_first_is_counted_once(transports, upstream):
    # The user's /eof half-closes the upstream leg; the upstream answers and closes, so that
    # leg is closed while its flow's client leg is still open (half-closed toward the client).
    relay, tap = transports.open(
        Endpoint(
            listen=True,
            host="127.0.0.1",
            port=0,
            upstream=Endpoint(host="127.0.0.1", port=upstream.port),
        )
    )
    client = socket.create_connection(("127.0.0.1", port_of(relay.address)), timeout=WAIT)
    try:
        flow = Flow(client, upstream.accept())
        tap.wait_until(lambda: len(tap.of_type(Connected)) == 2, "both legs connected")
        client.sendall(b"request\n")
        assert recv_exact(flow.upstream, 8) == b"request\n"
        relay.send_eof(FlowSide(1, "upstream"))
        assert read_to_end(flow.upstream) == b""
        flow.upstream.sendall(b"the reply\n")
        flow.upstream.close()
        assert read_to_end(client) == b"the reply\n"
        upstream_leg = tap.of_type(Connected)[1].conn
        tap.wait_closed(upstream_leg)
        assert relay.received == 8 + 10, "each byte received counted once"
        assert relay.sent == 10 + 8, "each byte sent counted once"
    finally:
        client.close()


def test_many_flows_at_once_keep_their_bytes_apart(start_relay):
    relay = start_relay("--view", "hex")
    flows = [relay.connect() for _ in range(3)]
    # Then many clients at once, each connected before any upstream side is accepted.
    count = 40
    clients = [relay.connect_client() for _ in range(count)]
    upstreams = [relay.upstream.accept() for _ in range(count)]
    # Which upstream connection is whose: each client names itself first.
    for number, client in enumerate(clients):
        client.sendall(b"%03d" % number)
    by_number = {int(recv_exact(sock, 3)): sock for sock in upstreams}
    assert sorted(by_number) == list(range(count))
    flows += [Flow(client, by_number[n]) for n, client in enumerate(clients)]
    exchanges = []
    for number, flow in enumerate(flows):
        request, reply = payload(70_000, seed=2 * number), payload(50_000, seed=2 * number + 1)
        flow.client.sendall(request)
        flow.upstream.sendall(reply)
        exchanges.append((flow, request, reply))
    for flow, request, reply in exchanges:
        assert recv_exact(flow.upstream, len(request)) == request
        assert recv_exact(flow.client, len(reply)) == reply
    relay.netrepl.write(b"/flows\n")
    relay.netrepl.wait_stderr(f"#{count + 3}  127.0.0.1:".encode())


# ---- a signal no one is woken by -------------------------------------------------------------

# netrepl with SIGINT and SIGTERM blocked in its main thread and in every thread it starts,
# but for one thread that takes them: as when the system hands a signal to another thread
# than the main one, or the signal comes just before the main thread blocks. The handler is
# then due on the main thread, and nothing wakes it.
SIGNALS_TO_ANOTHER_THREAD = """
import signal, sys, threading
from netrepl.cli import main
threading.Thread(target=threading.Event().wait, name="takes-signals", daemon=True).start()
signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
sys.argv[0] = "netrepl"
raise SystemExit(main())
"""


@pytest.mark.parametrize("signum", SIGNALS)
@pytest.mark.parametrize("stdin_open", [False, True], ids=["stdin-ended", "stdin-open"])
def test_a_signal_another_thread_took_still_ends_the_relay(upstream, signum, stdin_open):
    netrepl = NetreplToFile(
        "-l", "127.0.0.1", "0", "--relay", upstream.address,
        launcher=("-c", SIGNALS_TO_ANOTHER_THREAD), stdin_open=stdin_open,
    )  # fmt: skip
    try:
        relay = Relay(netrepl, upstream)
        flow = relay.connect()
        converse(flow, b"before the signal\n", b"ok\n")
        result = stop_with(netrepl, signum)
    finally:
        netrepl.kill()
    assert result.returncode == 0, result.stderr
    assert result.stderr.decode().splitlines()[-1] == (
        "netrepl: relayed 1 flow: 18 bytes from the clients, 3 from the upstream"
    )
