"""The TCP relay (`-l PORT --relay HOST:PORT`) with real processes on both sides: netrepl in a
subprocess between a Python client and a Python upstream, over loopback.

Forwarding (byte-exact, both ways at once), the labels of each direction in each view, the
life of a flow (half-close, reset, an unreachable upstream, --max-clients, --once, /kick),
injecting with /to, backpressure with memory measured, TLS on either side, a unix listener,
the batch logging relay and its signals, /when and /expect on relayed data, and the log.
"""

from __future__ import annotations

import hashlib
import re
import signal
import socket

import pytest

from tests.net.conftest import hexdump_line
from tests.net.relay_peers import (
    Background,
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
from tests.net.transport_helpers import payload, recv_exact, reset


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
@pytest.mark.parametrize("time_mode", ["on", "delta"])
def test_each_block_is_labelled_with_its_flow_and_direction(start_relay, view, time_mode):
    relay = start_relay("--view", view, "--time", time_mode)
    first = relay.connect()
    converse(first, b"ping 1\n", b"pong 1\n")
    inject(relay, b"typed 1", first.upstream)
    second = relay.connect()
    converse(second, b"ping 2\n", b"pong 2\n")
    inject(relay, b"typed 2", second.upstream)  # the newest flow's upstream
    stdout = relay.netrepl.wait_stdout("#2 netrepl → upstream".encode()).decode()
    stdout = relay.netrepl.wait_stdout(b"typed 2" if view == "utf8" else b"|typed 2.|").decode()

    stamp = CLOCK if time_mode == "on" else DELTA
    expected = [
        ("#1 client → upstream", b"ping 1\n", ""),
        ("#1 upstream → client", b"pong 1\n", ""),
        ("#1 netrepl → upstream", b"typed 1\n", " injected"),
        ("#2 client → upstream", b"ping 2\n", ""),
        ("#2 upstream → client", b"pong 2\n", ""),
        ("#2 netrepl → upstream", b"typed 2\n", " injected"),
    ]
    got = blocks(stdout)
    assert len(got) == len(expected), stdout
    for (label, body), (direction, data, mark) in zip(got, expected, strict=True):
        assert re.fullmatch(rf"{stamp} {direction} · {len(data)} bytes{mark}", label), label
        assert body == (data.decode() if view == "utf8" else hexdump_line(0, data)), stdout


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


def test_a_client_that_reads_nothing_stops_the_upstream_and_memory_stays_bounded(upstream):
    # The raw view to /dev/null: the display costs nothing, so what is measured is the relay.
    netrepl = NetreplToFile("-l", "127.0.0.1", "0", "--relay", upstream.address, "--view", "raw")
    try:
        relay = Relay(netrepl, upstream)
        flow = relay.connect()
        idle = memory_kib(netrepl.process.pid)
        # What the kernel may hold of a flow: both legs' buffers, each autotuned (32 MiB of
        # receive buffer on some machines), not counting netrepl's own queue.
        kernel = 2 * loopback_buffers()
        size = max(300 * 1024 * 1024, 4 * kernel)
        pour = Pour(flow.upstream, size, seed=5)

        # The client reads nothing: netrepl stops reading the upstream, whose send blocks.
        held = pour.wait_stall(timeout=30)
        stalled = memory_kib(netrepl.process.pid)
        # The kernel's buffers, the relay's queue (RELAY_HIGH_WATER, 2 MiB) and one read past
        # it (READ_SIZE, 1 MiB): far from all of it.
        assert held < kernel + 3 * 1024 * 1024, f"{held:,} bytes taken before the upstream stalled"

        # Then the client reads everything, byte-exact.
        assert digest_of_stream(flow.client, size, timeout=90) == pour.digest()
        peak = memory_kib(netrepl.process.pid)["VmHWM"]
    finally:
        netrepl.kill()
    # Idle RSS x 1.5 (the bound), plus 4 MiB for what the relay holds by design: a
    # queue of up to RELAY_HIGH_WATER (2 MiB) for the slow side and the 1 MiB read (READ_SIZE)
    # that crossed it, with the event that carries that read to the display.
    bound = idle["VmRSS"] * 1.5 + 4 * 1024
    report = (
        f"idle {idle['VmRSS']:,} KiB, at the stall (after {held:,} bytes) {stalled['VmRSS']:,}"
        f" KiB, peak {peak:,} KiB, bound {bound:,.0f} KiB"
    )
    print(report)
    assert peak <= bound, report
