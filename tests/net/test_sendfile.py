"""/sendfile to one or several peers over loopback: whole copies, or contiguous prefixes that
are said; Ctrl-C stopping it within 200 ms; counts that are the bytes handed to the sockets.

Each peer here is a raw socket the test reads (or does not read) itself, so "a client that
reads late" and "a client that never reads" are exact. Waits are on bytes and events.
"""

from __future__ import annotations

import hashlib
import os
import re
import socket
import threading
import time

import pytest

from netrepl.errors import UsageError
from netrepl.events import Connected, Progress, Sent
from netrepl.transport import Endpoint
from tests.net.conftest import WAIT, Harness, run_netrepl
from tests.net.session_helpers import connect, stderr_of
from tests.net.transport_helpers import port_of

MB = 1_000_000


@pytest.fixture
def harness(make_session) -> Harness:
    return make_session()


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class Reader:
    """A raw client that reads on a thread once told to, and records what it got."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=WAIT)
        self.data = bytearray()
        self.go = threading.Event()
        self._changed = threading.Condition()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        self.go.wait()
        while True:
            try:
                chunk = self.sock.recv(1 << 20)
            except OSError:
                chunk = b""
            with self._changed:
                if not chunk:
                    self._changed.notify_all()
                    return
                self.data += chunk
                self._changed.notify_all()

    def wait_size(self, size: int, timeout: float = 30) -> bytes:
        with self._changed:
            if not self._changed.wait_for(lambda: len(self.data) >= size, timeout):
                raise AssertionError(f"got {len(self.data):,} of {size:,} bytes")
            return bytes(self.data)

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def readers():
    made: list[Reader] = []

    def make(port: int) -> Reader:
        reader = Reader(port)
        made.append(reader)
        return reader

    yield make
    for reader in made:
        reader.close()


def listen(harness: Harness, readers, count: int) -> list[Reader]:
    harness.session.open(Endpoint(listen=True, host="127.0.0.1", port=0))
    port = port_of(harness.session.transport.address)  # type: ignore[union-attr]
    clients = []
    for index in range(count):
        clients.append(readers(port))
        harness.tap.wait_until(
            lambda n=index + 1: len(harness.tap.of_type(Connected)) >= n, "an accepted client"
        )
    return clients


def final(harness: Harness) -> Progress:
    harness.tap.wait_until(
        lambda: any(isinstance(e, Progress) and e.finished for e in harness.tap.events),
        "the end of the send",
        timeout=60,
    )
    return next(e for e in harness.tap.of_type(Progress) if e.finished)


def sendfile_in_thread(harness: Harness, line: str) -> threading.Thread:
    thread = threading.Thread(target=harness.session.submit, args=(line,), daemon=True)
    thread.start()
    return thread


def test_listen_sendfile_reaches_a_late_reader_and_a_prompt_one_whole(
    make_session, readers, tmp_path
):
    harness = make_session()
    data = os.urandom(20 * MB)
    path = tmp_path / "big.bin"
    path.write_bytes(data)
    prompt, late = listen(harness, readers, 2)
    prompt.go.set()

    sender = sendfile_in_thread(harness, f"/sendfile {path}")
    # The prompt reader gets well into the file while the late one reads nothing; the send
    # then waits for the late one, and never skips a piece of either copy.
    prompt.wait_size(6 * MB)
    late.go.set()
    assert sha(prompt.wait_size(len(data))) == sha(data)
    assert sha(late.wait_size(len(data))) == sha(data)
    sender.join(WAIT)

    end = final(harness)
    assert (end.outcome, end.done, end.total, end.detail) == ("sent", len(data), len(data), "")
    harness.output.wait_stderr(f"sendfile big.bin: sent, {len(data):,} bytes of {len(data):,} in")


def test_listen_sendfile_to_one_fast_reader_does_not_fail(make_session, readers, tmp_path):
    harness = make_session()
    data = os.urandom(20 * MB)
    path = tmp_path / "big.bin"
    path.write_bytes(data)
    (client,) = listen(harness, readers, 1)
    client.go.set()
    harness.session.submit(f"/sendfile {path}")
    assert sha(client.wait_size(len(data))) == sha(data)
    end = final(harness)
    assert (end.outcome, end.done) == ("sent", len(data))


def test_a_client_that_never_reads_gets_a_contiguous_prefix_and_is_named(
    make_session, readers, tmp_path, monkeypatch
):
    monkeypatch.setattr("netrepl.transport.delivery.SEND_WAIT_SECONDS", 0.5)
    harness = make_session()
    data = os.urandom(30 * MB)
    path = tmp_path / "big.bin"
    path.write_bytes(data)
    stalled, reading = listen(harness, readers, 2)
    reading.go.set()
    harness.session.submit(f"/sendfile {path}")

    assert sha(reading.wait_size(len(data))) == sha(data)
    end = final(harness)
    assert end.outcome == "sent" and end.done == len(data)
    match = re.fullmatch(r"#1 got ([\d,]+) \(not reading for 0\.5 s\); #2 got ([\d,]+)", end.detail)
    assert match, end.detail
    got = int(match.group(1).replace(",", ""))
    assert 0 < got < len(data) and int(match.group(2).replace(",", "")) == len(data)
    harness.output.wait_stderr(f"; #1 got {got:,} (not reading for 0.5 s); #2 got")
    # What the stalled client can still read is exactly that prefix: no piece is missing,
    # and nothing was written past what the line says.
    harness.session.close()
    stalled.go.set()
    stalled._thread.join(WAIT)
    assert len(stalled.data) == got and sha(bytes(stalled.data)) == sha(data[:got])
    assert sum(len(e.data) for e in harness.tap.of_type(Sent) if e.conn == 1) == got


def test_ctrl_c_stops_a_sendfile_stuck_on_a_peer_that_stopped_reading(
    make_session, readers, tmp_path
):
    harness = make_session()
    data = os.urandom(40 * MB)
    path = tmp_path / "big.bin"
    path.write_bytes(data)
    (client,) = listen(harness, readers, 1)
    sender = sendfile_in_thread(harness, f"/sendfile {path}")

    # Stuck: the peer reads nothing. The bar keeps being drawn with the same count.
    def stuck() -> bool:
        bars = [e for e in harness.tap.of_type(Progress) if not e.finished]
        return len(bars) >= 3 and bars[-1].done == bars[-3].done > 0

    harness.tap.wait_until(stuck, "progress drawn while the send is stuck", timeout=WAIT)
    pressed = time.monotonic()
    harness.session.cancel.set()
    sender.join(WAIT)
    stopped_after = time.monotonic() - pressed
    harness.session.cancel.clear()
    assert stopped_after < 0.2, f"Ctrl-C took {stopped_after:.3f} s"

    end = final(harness)
    assert end.outcome == "interrupted" and 0 < end.done < len(data)
    transport = harness.session.transport
    assert transport is not None
    # The count said is what reached the socket: the toolbar's figure, and what the peer gets.
    assert end.done == transport.sent
    harness.output.wait_stderr(
        f"sendfile big.bin: interrupted, {end.done:,} bytes of {len(data):,} in"
    )
    harness.session.submit("MARK")
    client.go.set()
    expected = data[: end.done] + b"MARK\n"
    assert sha(client.wait_size(len(expected))) == sha(expected)


def test_sendfile_of_an_endless_device_streams_until_ctrl_c(make_session, readers):
    harness = make_session()
    (client,) = listen(harness, readers, 1)
    client.go.set()
    sender = sendfile_in_thread(harness, "/sendfile /dev/zero")
    client.wait_size(3 * MB)
    harness.tap.wait_until(
        lambda: any(not e.finished and e.done for e in harness.tap.of_type(Progress)),
        "a progress bar",
    )
    bar = next(e for e in harness.tap.of_type(Progress) if not e.finished and e.done)
    assert bar.total is None
    harness.session.cancel.set()
    sender.join(WAIT)
    harness.session.cancel.clear()
    end = final(harness)
    assert end.outcome == "interrupted" and end.total is None and end.done >= 3 * MB
    harness.output.wait_stderr(f"sendfile zero: interrupted, {end.done:,} bytes in")


# ---- /sendfile to one peer (in-process session, and batch) ---------------------------------


def finished(harness: Harness) -> Progress:
    harness.tap.wait_until(
        lambda: any(isinstance(e, Progress) and e.finished for e in harness.tap.events),
        "the end of the send",
    )
    (done,) = [e for e in harness.tap.of_type(Progress) if e.finished]
    return done


def test_sendfile_of_5_mb_arrives_whole(harness, make_peer, tmp_path):
    data = os.urandom(5 * 1024 * 1024)
    path = tmp_path / "firmware.bin"
    path.write_bytes(data)
    client = connect(harness, make_peer())
    harness.session.submit(f"/sendfile {path}")

    received = client.wait_for_size(len(data), timeout=30)
    assert len(received) == len(data)
    assert hashlib.sha256(received).hexdigest() == hashlib.sha256(data).hexdigest()
    end = finished(harness)
    assert (end.outcome, end.done, end.total) == ("sent", len(data), len(data))
    harness.output.wait_stderr(
        f"netrepl: sendfile firmware.bin: sent, {len(data):,} bytes of {len(data):,} in "
    )
    pieces = [e.data for e in harness.tap.of_type(Sent)]
    assert b"".join(pieces) == data and max(map(len, pieces)) == 64 * 1024
    # Sending a file is not a line: {counter} still numbers the next line 1.
    harness.session.submit("n={counter}")
    assert client.wait_for(b"n=1\n")[len(data) :] == b"n=1\n"


def test_sendfile_in_batch_reports_the_total(make_peer, tmp_path):
    data = os.urandom(5 * 1024 * 1024 + 7)
    path = tmp_path / "big.bin"
    path.write_bytes(data)
    peer = make_peer()
    result = run_netrepl(*peer.args, "--linger", "0.2", stdin=f"/sendfile {path}\n".encode())
    assert result.returncode == 0, result.stderr
    received = peer.wait_for_client().wait_closed()
    assert hashlib.sha256(received).digest() == hashlib.sha256(data).digest()
    assert re.search(
        rf"^netrepl: sendfile big\.bin: sent, {len(data):,} bytes of {len(data):,} in "
        r"\d+\.\d s \(.+/s\)$",
        stderr_of(result),
        re.MULTILINE,
    ), stderr_of(result)


def test_sendfile_chunk_and_delay(harness, make_peer, tmp_path):
    data = os.urandom(20_000)
    path = tmp_path / "with space.bin"
    path.write_bytes(data)
    client = connect(harness, make_peer())
    started = time.monotonic()
    harness.session.submit(f'/sendfile "{path}" --chunk 1000 --delay 5')
    elapsed = time.monotonic() - started
    assert client.wait_for_size(len(data)) == data
    pieces = [e.data for e in harness.tap.of_type(Sent)]
    assert [len(p) for p in pieces] == [1000] * 20
    assert elapsed >= 19 * 0.005
    end = finished(harness)
    assert (end.outcome, end.done) == ("sent", 20_000)
    harness.output.wait_stderr("sendfile with space.bin: sent, 20,000 bytes of 20,000 in")


def test_sendfile_last_piece_is_the_rest(harness, make_peer, tmp_path):
    path = tmp_path / "odd.bin"
    path.write_bytes(b"0123456789")
    client = connect(harness, make_peer())
    harness.session.submit(f"/sendfile {path} --chunk 4")
    assert client.wait_for_size(10) == b"0123456789"
    assert [e.data for e in harness.tap.of_type(Sent)] == [b"0123", b"4567", b"89"]


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ("{path} --chunk 0", "/sendfile --chunk: '0' is not a whole number of bytes from 1 to"),
        ("{path} --chunk", "/sendfile: --chunk takes a whole number"),
        ("{path} --delay 1.5", "/sendfile --delay: '1.5' is not a whole number of milliseconds"),
        ("{path} extra", "/sendfile: unexpected 'extra'"),
        ('"{path}', "/sendfile: No closing quotation"),
        ("--chunk 10", "/sendfile: give the PATH of the file"),
        ("{path}.missing", "cannot read {path}.missing: No such file"),
    ],
)
def test_sendfile_mistakes_send_nothing(harness, make_peer, tmp_path, arguments, message):
    path = tmp_path / "f.bin"
    path.write_bytes(b"data")
    client = connect(harness, make_peer())
    with pytest.raises(UsageError, match=re.escape(message.format(path=path))):
        harness.session.submit("/sendfile " + arguments.format(path=path))
    harness.session.submit("MARK")
    assert client.wait_for(b"MARK\n") == b"MARK\n"


def test_sendfile_interrupted_sends_a_prefix_and_says_so(harness, make_peer, tmp_path):
    data = os.urandom(2_000_000)
    path = tmp_path / "slow.bin"
    path.write_bytes(data)
    client = connect(harness, make_peer())

    def interrupt() -> None:
        client.wait_for_size(50_000)
        harness.session.cancel.set()

    interrupter = threading.Thread(target=interrupt, daemon=True)
    interrupter.start()
    harness.session.submit(f"/sendfile {path} --chunk 4096 --delay 2")
    interrupter.join(WAIT)
    harness.session.cancel.clear()

    end = finished(harness)
    assert end.outcome == "interrupted"
    assert 50_000 <= end.done < len(data) and end.done % 4096 == 0
    harness.output.wait_stderr(
        f"netrepl: sendfile slow.bin: interrupted, {end.done:,} bytes of {len(data):,} in "
    )
    harness.session.submit("MARK")
    assert client.wait_for(b"MARK\n") == data[: end.done] + b"MARK\n"
