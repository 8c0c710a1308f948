"""A real relay's log, exported and replayed: `netrepl -l --relay --log` between a Python
Modbus/TCP client and a Python upstream, stopped with SIGTERM; the pcap must hold one
conversation between the client's address and the upstream's whose directions reassemble to
what each peer received, and `netrepl replay` must label both directions of the flow."""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.core.test_pcap import ACK, FIN, PSH, SYN, check_conversation, read_pcap
from tests.net.conftest import (
    WAIT,
    RunningNetrepl,
    ScriptedServer,
    hexdump_line,
    run_netrepl,
)
from tests.net.transport_helpers import recv_exact, recv_until_eof

# Modbus/TCP read holding registers (unit 1, 2 registers from 0), and the device's answer.
REQUEST = bytes.fromhex("0001 0000 0006 01 03 0000 0002")
RESPONSE = bytes.fromhex("0001 0000 0007 01 03 04 04d2 162e")
# What the user types into the relay: a second request, to the upstream (transaction 2).
INJECTED = bytes.fromhex("0002 0000 0006 01 03 0010 0001")
INJECTED_RESPONSE = bytes.fromhex("0002 0000 0005 01 03 02 0007")
ANSWERS = {REQUEST: RESPONSE, INJECTED: INJECTED_RESPONSE}


def modbus_device(server: ScriptedServer, sock: socket.socket) -> None:
    """Answers each Modbus/TCP frame it knows with a fixed reply; closes at end of stream."""
    pending = bytearray()
    while True:
        while len(pending) < 6 or len(pending) < 6 + int.from_bytes(pending[4:6], "big"):
            data = server.recv(sock)
            if not data:
                sock.close()
                return
            pending += data
        size = 6 + int.from_bytes(pending[4:6], "big")
        frame, pending[:] = bytes(pending[:size]), pending[size:]
        sock.sendall(ANSWERS.get(frame, b""))


@dataclass
class RelayedSession:
    log: Path
    client: tuple[str, int]
    """The client socket's own address: one end of the exported conversation."""
    upstream: tuple[str, int]
    relay_port: int
    stderr: bytes


@pytest.fixture
def relayed_modbus(tmp_path, make_server, start_netrepl) -> Iterator[RelayedSession]:
    """One flow through a real relay: the client's request and its reply, a request the user
    injects toward the upstream and its reply (forwarded to the client), then the client
    half-closes, the device closes, and the relay is stopped with SIGTERM."""
    device = make_server(modbus_device)
    log = tmp_path / "relay.jsonl"
    relay: RunningNetrepl = start_netrepl(
        "-l", "127.0.0.1", "0", "--relay", f"127.0.0.1:{device.port}", "--log", str(log)
    )
    port = int(
        relay.wait_stderr_match(rb"relaying 127\.0\.0\.1:(\d+) \(TCP\) to 127\.0\.0\.1:").group(1)
    )
    with socket.create_connection(("127.0.0.1", port), timeout=WAIT) as client:
        client_end = client.getsockname()[:2]
        client.sendall(REQUEST)
        assert recv_exact(client, len(RESPONSE)) == RESPONSE
        relay.write(f"/x {INJECTED.hex(' ')}\n".encode())
        assert recv_exact(client, len(INJECTED_RESPONSE)) == INJECTED_RESPONSE
        client.shutdown(socket.SHUT_WR)
        # The device closes on our end of stream; the relay passes its close back.
        assert recv_until_eof(client) == b""
    assert device.wait_finished() == REQUEST + INJECTED
    relay.wait_stderr(b"#1 client " + f"{client_end[0]}:{client_end[1]}".encode() + b" connection")
    relay.process.send_signal(signal.SIGTERM)
    done = relay.finish()
    assert done.returncode == 0, done.stderr
    yield RelayedSession(log, client_end, ("127.0.0.1", device.port), port, done.stderr)


def export(session: RelayedSession, tmp_path: Path) -> Path:
    out = tmp_path / "relay.pcap"
    result = run_netrepl("export", str(session.log), "--pcap", str(out))
    assert result.returncode == 0, result.stderr
    assert b"wrote 11 packets of 1 connection" in result.stderr
    return out


def test_a_relay_log_exports_as_one_conversation_between_client_and_upstream(
    relayed_modbus, tmp_path
):
    packets = read_pcap(export(relayed_modbus, tmp_path).read_bytes())
    client, upstream = relayed_modbus.client, relayed_modbus.upstream
    # Only the two real ends: neither the relay's listening port nor its source port shows.
    assert {((p.src, p.sport), (p.dst, p.dport)) for p in packets} == {
        (client, upstream),
        (upstream, client),
    }
    assert relayed_modbus.relay_port not in {p.sport for p in packets}
    streams = check_conversation(packets, client)  # the handshake, sequence and ack numbers
    # Each direction is what that peer received: the device got the client's request and
    # the injected one; the client got both replies.
    assert streams == {"c2s": REQUEST + INJECTED, "s2c": RESPONSE + INJECTED_RESPONSE}
    from_client = [(p.src, p.sport) == client for p in packets]
    assert [(c, p.flags) for c, p in zip(from_client, packets, strict=True)] == [
        (True, SYN),
        (False, SYN | ACK),
        (True, ACK),
        (True, PSH | ACK),
        (False, PSH | ACK),
        (True, PSH | ACK),  # injected: the device received it from the client's side
        (False, PSH | ACK),
        (True, FIN | ACK),  # the client's half-close, as netrepl passed it on
        (False, ACK),
        (False, FIN | ACK),  # the device's close
        (True, ACK),
    ]


def test_a_relay_log_replays_with_both_directions_labelled(relayed_modbus):
    result = run_netrepl("replay", str(relayed_modbus.log), "--view", "hex")
    assert result.returncode == 0, result.stderr
    out = result.stdout.decode()
    blocks = out.split("── ")[1:]
    labels = [block.splitlines()[0] for block in blocks]
    assert labels == [
        "#1 client → upstream",
        "#1 upstream → client",
        f"#1 netrepl → upstream · {len(INJECTED)} bytes injected",
        "#1 upstream → client",
    ]
    assert blocks[0].splitlines()[1:] == [hexdump_line(0, REQUEST).rstrip("\n")]
    # The injected request is a block of its own; the upstream's replies keep their offsets.
    assert blocks[1].splitlines()[1:] == [hexdump_line(0, RESPONSE).rstrip("\n")]
    assert blocks[3].splitlines()[1:] == [
        hexdump_line(len(RESPONSE), INJECTED_RESPONSE).rstrip("\n")
    ]
    assert "#1 client" in result.stderr.decode()


@pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark is not installed")
def test_tshark_dissects_the_exported_relay_log(relayed_modbus, tmp_path):
    path = export(relayed_modbus, tmp_path)
    port = relayed_modbus.upstream[1]
    command = ["tshark", "-r", str(path), "-o", "tcp.check_checksum:TRUE"]
    command += ["-d", f"tcp.port=={port},mbtcp", "-Y", "mbtcp"]
    command += ["-T", "fields", "-e", "mbtcp.trans_id", "-e", "modbus.func_code"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["1", "3", "1", "3", "2", "3", "2", "3"]
    follow = ["tshark", "-r", str(path), "-q", "-z", "follow,tcp,raw,0"]
    result = subprocess.run(follow, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    lines = [line.strip() for line in result.stdout.splitlines()]
    for frame in (REQUEST, RESPONSE, INJECTED, INJECTED_RESPONSE):
        assert frame.hex() in lines


@pytest.mark.skipif(shutil.which("tcpdump") is None, reason="tcpdump is not installed")
def test_tcpdump_reads_the_exported_relay_log(relayed_modbus, tmp_path):
    path = export(relayed_modbus, tmp_path)
    command = ["tcpdump", "-r", str(path), "-nn", "-v"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=20)
    assert result.returncode == 0, result.stderr
    client = "{}.{}".format(*relayed_modbus.client)
    upstream = "{}.{}".format(*relayed_modbus.upstream)
    assert result.stdout.count(f"{client} > {upstream}") == 6
    assert result.stdout.count(f"{upstream} > {client}") == 5
    assert "incorrect" not in result.stdout  # tcpdump -v checks the checksums
