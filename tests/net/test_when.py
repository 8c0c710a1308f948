"""/when and /when-hex over real loopback: automatic replies with their groups, per connection,
in listen mode, with checksums, and the guard that stops two rules answering each other.
"""

from __future__ import annotations

import re
import socket
import time

import pytest

from netrepl.errors import UsageError
from netrepl.events import Connected, Sent
from netrepl.transport import Endpoint
from netrepl.watch import WHEN_LIMIT_PER_SECOND
from tests.net.conftest import WAIT, Harness
from tests.net.session_helpers import connect, crc16_modbus, errors


@pytest.fixture
def harness(make_session) -> Harness:
    return make_session()


# ---- /when ---------------------------------------------------------------------------------------


def test_when_answers_a_ping_with_its_number(harness, make_peer):
    client = connect(harness, make_peer())
    harness.session.submit(r"/when ^PING (\d+) -> PONG \1")
    client.send(b"PING 7\n")
    assert client.wait_for(b"\n") == b"PONG 7\n"
    # Not at a line start: no answer; the next line's ping is answered.
    client.send(b"xPING 8\nPING 12345\n")
    assert client.wait_for(b"PONG 12345\n") == b"PONG 7\nPONG 12345\n"


def test_when_answers_each_match_on_the_connection(harness, make_peer):
    client = connect(harness, make_peer())
    harness.session.submit("/when PING -> PONG {counter}")
    assert harness.output.wait_stderr("rule 1: when PING -> PONG {counter}")
    client.send(b"PING\n")
    client.wait_for(b"PONG 1\n")
    # One read with two pings, and one ping cut across two reads.
    client.send(b"PING PING\nPI")
    client.wait_for(b"PONG 3\n")
    harness.tap.wait_received(len(b"PING\nPING PING\nPI"))
    client.send(b"NG\n")
    assert client.wait_for(b"PONG 4\n") == b"PONG 1\nPONG 2\nPONG 3\nPONG 4\n"
    harness.session.submit("/when")
    harness.output.wait_stderr("1: /when PING -> PONG {counter} (fired 4x)")


def test_when_with_a_caret_answers_every_ping_line(harness, make_peer):
    client = connect(harness, make_peer())
    harness.session.submit("/when ^PING -> PONG")
    harness.session.submit("/when SYNC -> SYNCED")
    client.send(b"PING\n")
    client.wait_for(b"PONG\n")
    client.send(b"PING\n")
    client.send(b"SYNC\n")
    # Rules answer in order on the one stream: a PONG for the second ping comes before SYNCED.
    assert client.wait_for(b"SYNCED\n") == b"PONG\nPONG\nSYNCED\n"


def test_when_reply_naming_a_missing_group_is_a_usage_error(harness):
    with pytest.raises(UsageError, match=r"\\1"):
        harness.session.submit(r"/when PING -> PONG \1")


class RawClient:
    """A plain loopback client of a netrepl listener: everything it received, so far."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=WAIT)
        self.received = bytearray()

    def read_until(self, expected: bytes, timeout: float = WAIT) -> bytes:
        """Read until `expected` has arrived (bounded by `timeout`); return all received."""
        deadline = time.monotonic() + timeout
        while expected not in self.received:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"never received {expected!r}; got {bytes(self.received)!r}")
            self.sock.settimeout(left)
            chunk = self.sock.recv(65536)
            if not chunk:
                raise AssertionError(f"closed before {expected!r}; got {bytes(self.received)!r}")
            self.received += chunk
        return bytes(self.received)


def test_when_in_listen_mode_answers_only_the_client_that_matched(harness):
    session = harness.session
    session.open(Endpoint(listen=True, host="127.0.0.1", port=0))
    port = int(session.transport.address.rsplit(":", 1)[1])
    session.submit(r"/when ^PING (\d+) -> PONG \1")
    session.submit("/when SYNC -> SYNCED")
    first, second = RawClient(port), RawClient(port)
    harness.tap.wait_until(
        lambda: len([e for e in harness.tap.events if isinstance(e, Connected)]) == 2,
        "two clients",
    )
    first.sock.sendall(b"PING 1\n")
    assert first.read_until(b"PONG 1\n") == b"PONG 1\n"
    second.sock.sendall(b"SYNC\n")
    # The second client got nothing of the first one's answer, only its own.
    assert second.read_until(b"SYNCED\n") == b"SYNCED\n"
    second.sock.sendall(b"PING 2\n")
    assert second.read_until(b"PONG 2\n") == b"SYNCED\nPONG 2\n"
    first.sock.sendall(b"SYNC\n")
    assert first.read_until(b"SYNCED\n") == b"PONG 1\nSYNCED\n"
    for client in (first, second):
        client.sock.close()


def test_when_hex_answers_a_modbus_read_with_its_crc(harness, make_peer):
    client = connect(harness, make_peer())
    harness.session.submit("/when-hex 01 03 ?? ?? ?? ?? ?? ?? -> 01 03 02 00 2a {crc16-modbus}")
    reply = bytes.fromhex("01 03 02 00 2a") + crc16_modbus(bytes.fromhex("01 03 02 00 2a"))
    client.send(bytes.fromhex("01 03 00 00 00 0a c5 cd"))
    assert client.wait_for_size(len(reply)) == reply  # no end of line after a hex reply
    # A second request, cut across reads.
    client.send(bytes.fromhex("01 03 00 10"))
    harness.tap.wait_received(12)
    client.send(bytes.fromhex("00 01 85 cf"))
    assert client.wait_for_size(2 * len(reply)) == reply * 2
    # Sent is posted once the bytes are handed to the socket, which the peer may see first.
    harness.tap.wait_until(lambda: len(harness.tap.of_type(Sent)) == 2, "two replies sent")
    assert [e.as_hex for e in harness.tap.of_type(Sent)] == [True, True]


def test_when_loop_between_two_rules_is_stopped_by_the_guard(harness, echo_peer):
    client = connect(harness, echo_peer)
    harness.session.submit("/when ping -> pong")
    harness.session.submit("/when pong -> ping")
    harness.session.submit("ping")
    harness.output.wait_stderr("times in a second (a loop?); /unwhen removes it")
    # Nothing of the loop is in flight once a rule has stopped: a marker sent now, once
    # echoed, is the last thing either side sees.
    harness.session.submit("MARK")
    harness.tap.wait_until(lambda: b"MARK\n" in harness.tap.received_bytes(), "the marker")
    seen = client.wait_for(b"MARK\n")
    assert seen.endswith(b"ping\nMARK\n")
    lines = seen.splitlines()[:-1]
    assert set(lines) == {b"ping", b"pong"}
    limit = WHEN_LIMIT_PER_SECOND
    assert 2 * limit <= len(lines) <= 2 * limit + 2, len(lines)
    stopped = [text for text in errors(harness) if "stopped" in text]
    assert len(stopped) == 1, stopped
    assert re.fullmatch(
        rf"/when [12] stopped: fired more than {limit} times in a second \(a loop\?\); "
        r"/unwhen removes it",
        stopped[0],
    )
    rules = harness.session.replies.rules()
    assert sum(rule.stopped is not None for rule in rules) == 1
    # /unwhen all removes them; the echo of a new ping is then left alone.
    harness.session.submit("/unwhen all")
    harness.output.wait_stderr("removed rule 1, rule 2")
    harness.session.submit("ping")
    harness.session.submit("END")
    assert client.wait_for(b"END\n").endswith(b"MARK\nping\nEND\n")
