"""A log started in the middle of a connection begins with who is connected (and, for a
listener, where it listens), so `netrepl export` uses the real addresses; when export has to
make addresses up, it says so."""

from __future__ import annotations

import socket

from netrepl.events import Connected, Received, Sent
from netrepl.transport import Endpoint
from tests.core.test_pcap import read_pcap
from tests.net.conftest import WAIT, run_netrepl
from tests.net.test_offline import write_transcript
from tests.net.transport_helpers import port_of
from tests.transcripts import records


def test_a_log_started_mid_connection_begins_with_its_connected_record(
    make_session, make_peer, tmp_path
):
    peer = make_peer(echo=True)
    harness = make_session()
    harness.session.connect(peer.host, peer.port)
    client = peer.wait_for_client()
    harness.session.submit("before the log")
    client.wait_for(b"before the log\n")
    harness.tap.wait_received(len(b"before the log\n"))

    log = tmp_path / "midway.jsonl"
    harness.session.submit(f"/log {log}")
    harness.session.submit("during")
    harness.tap.wait_received(len(b"before the log\nduring\n"))
    harness.session.submit("/log off")
    harness.stop()

    connected = harness.tap.of_type(Connected)[0]
    first = records(log)[0]
    assert first["type"] == "connected" and first["t"] == connected.at
    assert (first["peer"], first["local"]) == (connected.peer, connected.local)

    out = tmp_path / "midway.pcap"
    result = run_netrepl("export", str(log), "--pcap", str(out))
    assert result.returncode == 0, result.stderr
    assert b"note:" not in result.stderr, result.stderr
    packets = read_pcap(out.read_bytes())
    assert {p.dport for p in packets} == {peer.port, int(connected.local.rsplit(":", 1)[1])}


def test_a_listener_log_begins_with_the_listener_and_its_clients(make_session, tmp_path):
    harness = make_session()
    harness.session.open(Endpoint(listen=True, host="127.0.0.1", port=0))
    port = port_of(harness.session.transport.address)  # type: ignore[union-attr]
    with socket.create_connection(("127.0.0.1", port), timeout=WAIT) as sock:
        harness.tap.wait_until(lambda: harness.tap.of_type(Connected), "the client")
        log = tmp_path / "listener.jsonl"
        harness.session.submit(f"/log {log}")
        sock.sendall(b"hi\n")
        harness.tap.wait_received(3)
        harness.session.submit("/log off")
    kinds = [record["type"] for record in records(log)]
    assert kinds[:3] == ["listening", "connected", "received"], kinds


def test_export_says_when_it_makes_addresses_up(tmp_path):
    path = tmp_path / "no-connected.jsonl"
    write_transcript(
        path,
        [
            (1.0, Sent(7, b"PING\n", False)),
            (1.1, Received(7, b"+PONG\n")),
            (2.0, Connected(8, "unix:/run/dev.sock", "", "unix")),
            (2.1, Sent(8, b"x", False)),
        ],
    )
    result = run_netrepl("export", str(path), "--pcap", str(tmp_path / "out.pcap"))
    assert result.returncode == 0, result.stderr
    lines = result.stderr.decode().splitlines()
    assert (
        "netrepl: note: 1 connection had no `connected` record (the log began mid-connection):"
        " their addresses and ports are made up (10.0.0.1 for this side, 10.0.0.2 for the"
        " peer), and their handshakes are not shown"
    ) in lines, lines
    assert (
        "netrepl: note: 1 connection had an end that is not an IP address (a unix socket, a"
        " host name): made-up addresses stand in for it"
    ) in lines, lines
