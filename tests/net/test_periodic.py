"""/every, /stop and /repeat over real loopback: periodic and repeated sends, their counters,
and what stops them.
"""

from __future__ import annotations

import re
import socket
import threading
import time

import pytest

from netrepl.errors import NetreplError, UsageError
from tests.net.conftest import WAIT, Harness
from tests.net.session_helpers import connect, errors
from tests.peers import PeerClient


@pytest.fixture
def harness(make_session) -> Harness:
    return make_session()


# ---- /every, /stop ------------------------------------------------------------------------------


def test_every_sends_until_stop(harness, make_peer):
    client = connect(harness, make_peer())
    harness.session.submit("/every 20 tick")
    client.wait_for(b"tick\n" * 3)
    harness.session.submit("/every")
    harness.output.wait_stderr("1: every 20 ms: tick (")
    harness.session.submit("/stop 1")
    harness.output.wait_stderr("stopped job 1")
    harness.session.submit("MARK")
    # The timer thread keeps running for another job: had job 1 survived /stop, one of its
    # ticks would fall between these three tocks or after the marker.
    harness.session.submit("/every 20 tock")
    received = client.wait_for(b"tock\n" * 3)
    harness.session.submit("/stop all")
    before, after = received.split(b"MARK\n")
    assert set(before.splitlines()) == {b"tick"} and len(before.splitlines()) >= 3
    assert b"tick" not in after
    harness.session.submit("/every")
    harness.output.wait_stderr("nothing runs")


def test_every_counter_increments(harness, make_peer):
    client = connect(harness, make_peer())
    harness.session.submit("x={counter}")
    harness.session.submit("/every 20 n={counter}")
    client.wait_for(b"n=4\n")
    harness.session.submit("/stop 1")
    harness.session.submit("/every 20 END")
    typed, *ticks = client.wait_for(b"END\n").split(b"END\n")[0].splitlines()
    harness.session.submit("/stop all")
    # The counter numbers every send: the typed line was 1, the job's sends follow on.
    assert typed == b"x=1"
    assert len(ticks) >= 3 and ticks == [b"n=%d" % n for n in range(2, len(ticks) + 2)]


class UnreadPeer:
    """A listener whose one client is not read until `go` is set (a tiny receive buffer, so
    what netrepl sends piles up in its own queue); then everything is read into `got`."""

    def __init__(self) -> None:
        self.listener = socket.socket()
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen()
        self.port = self.listener.getsockname()[1]
        self.go = threading.Event()
        self.got = bytearray()
        self._changed = threading.Condition()
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        sock, _ = self.listener.accept()
        with sock:
            self.go.wait(WAIT)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
            while data := sock.recv(1 << 20):
                with self._changed:
                    self.got += data
                    self._changed.notify_all()

    def wait_size(self, size: int) -> bytes:
        with self._changed:
            if not self._changed.wait_for(lambda: len(self.got) >= size, WAIT):
                raise AssertionError(f"the peer got {len(self.got)} of {size} bytes")
            return bytes(self.got)

    def close(self) -> None:
        self.listener.close()


def test_lines_sent_at_the_same_time_get_different_counters(harness, tmp_path, monkeypatch):
    peer = UnreadPeer()
    session = harness.session
    session.connect("127.0.0.1", peer.port)
    # 16 MiB the peer does not read yet: every further send waits for room in the queue.
    fill = tmp_path / "fill.bin"
    size = 16 * 1024 * 1024
    fill.write_bytes(bytes(size))
    session.submit(f"/x {{file:{fill}}}")
    counted = threading.Semaphore(0)
    context = session.send_context

    def counting_context():
        made = context()
        counted.release()
        return made

    monkeypatch.setattr(session, "send_context", counting_context)
    senders = [
        threading.Thread(target=session.submit, args=(f"{name}={{counter}}",), daemon=True)
        for name in ("a", "b")
    ]
    for sender in senders:
        sender.start()
    # Both lines have their number (or the second waits its turn, if sends are serialised).
    counted.acquire(timeout=WAIT)
    counted.acquire(timeout=2)
    peer.go.set()
    for sender in senders:
        sender.join(WAIT)
    lines = sorted(peer.wait_size(size + 8)[size:].splitlines())
    peer.close()
    assert [line[2:] for line in lines] == [b"2", b"3"], lines


def wait_count(client: PeerClient, needle: bytes, count: int) -> bytes:
    """Wait until `needle` occurs `count` times in what the client sent; return all of it."""
    with client._changed:
        if not client._changed.wait_for(lambda: client.received.count(needle) >= count, WAIT):
            raise AssertionError(f"{needle!r} never {count} times: {bytes(client.received)!r}")
        return bytes(client.received)


def test_every_runs_commands_and_each_job_on_its_own(harness, make_peer):
    client = connect(harness, make_peer())
    harness.session.submit("/every 15 /x 01")
    harness.session.submit("/every 15 /x 02")
    wait_count(client, b"\x02", 2)
    harness.session.submit("/stop 2")
    harness.session.submit("/x ff")
    harness.session.submit("/every 15 /x 03")
    received = wait_count(client, b"\x03", 3)
    harness.session.submit("/stop all")
    before, after = received.split(b"\xff")
    assert set(before) == {1, 2}
    # Job 1 went on beside job 3; job 2 sent nothing after it was stopped.
    assert set(after) == {1, 3}


def test_stop_of_an_unknown_job(harness):
    with pytest.raises(UsageError, match=re.escape("/stop: no job 3 (/every lists them)")):
        harness.session.submit("/stop 3")


def test_every_keeps_trying_through_a_reconnect_and_says_so_once(harness, make_peer):
    peer = make_peer()
    client = connect(harness, peer)
    harness.session.submit("/every 10 tick")
    client.wait_for(b"tick\n")
    harness.session.close()
    harness.output.wait_stderr("netrepl: /every 1: not connected")
    assert harness.output.wait_stderr("(still trying; /stop 1)")
    harness.session.reconnect()
    again = peer.wait_for_client(2)
    again.wait_for(b"tick\ntick\n")
    harness.session.submit("/stop all")
    # Said once for the whole time it failed, not at every tick.
    assert sum("still trying" in text for text in errors(harness)) == 1


# ---- /repeat ------------------------------------------------------------------------------------


def test_repeat_sends_exactly_count_times(harness, make_peer):
    client = connect(harness, make_peer())
    started = time.monotonic()
    harness.session.submit("/repeat 3 10 R")
    assert time.monotonic() - started >= 2 * 0.010
    harness.session.submit("MARK")
    assert client.wait_for(b"MARK\n") == b"R\nR\nR\nMARK\n"


@pytest.mark.parametrize(
    ("line", "sent"),
    [
        ("/repeat 2 X", b"X\nX\n"),
        ("/repeat 3 10 #{counter}", b"#1\n#2\n#3\n"),
        ("/repeat 2 /x 01 02", b"\x01\x02\x01\x02"),
        ("/repeat 2 10 20 words", b"20 words\n20 words\n"),
        ("/repeat 1 5", b"5\n"),
    ],
)
def test_repeat_forms(harness, make_peer, line, sent):
    client = connect(harness, make_peer())
    harness.session.submit(line)
    harness.session.submit("MARK")
    assert client.wait_for(b"MARK\n") == sent + b"MARK\n"


def test_repeat_is_stopped_by_cancel(harness, make_peer):
    client = connect(harness, make_peer())

    def interrupt() -> None:
        client.wait_for(b"R\nR\n")
        harness.session.cancel.set()

    interrupter = threading.Thread(target=interrupt, daemon=True)
    interrupter.start()
    with pytest.raises(NetreplError, match=r"^/repeat interrupted after (\d+) of 1000$") as info:
        harness.session.submit("/repeat 1000 10 R")
    interrupter.join(WAIT)
    harness.session.cancel.clear()
    count = int(re.search(r"after (\d+)", str(info.value)).group(1))
    assert 2 <= count < 1000
    harness.session.submit("MARK")
    assert client.wait_for(b"MARK\n") == b"R\n" * count + b"MARK\n"
