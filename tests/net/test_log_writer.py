"""The log's writer thread: what the threads that post events queue, it writes in the order
they were posted, with bounded memory when the file is slow, and all of it by the exit.

Events from several threads (a relay's two legs, the session's own thread) go through one
`SessionFiles`; the writer must keep their order. A FIFO nobody reads stands for a disk that
stops keeping up: the poster must wait, not queue without bound.
"""

from __future__ import annotations

import base64
import json
import os
import queue
import signal
import threading
import time

from netrepl import log as log_module
from netrepl.events import Closed, Connected, Received, Sent
from netrepl.log import ITEM_COST, QUEUE_LIMIT, SessionFiles, TranscriptLog
from tests.net.conftest import WAIT
from tests.net.relay_peers import Background, digest_of_stream, wait_exit
from tests.net.test_relay import start_relay, upstream  # noqa: F401 (fixtures)
from tests.net.transport_helpers import payload
from tests.transcripts import records


def wait_until(condition, timeout: float = WAIT, what: str = "") -> None:
    """Poll `condition` (a state another thread reaches) until true, at most `timeout` s."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.005)


def test_events_posted_by_several_threads_are_written_in_the_order_posted(tmp_path, monkeypatch):
    # A small queue, so the posters often wait for the writer while the other one posts.
    monkeypatch.setattr(log_module, "QUEUE_LIMIT", 256 * 1024)
    path = tmp_path / "order.jsonl"
    reports: list[str] = []
    files = SessionFiles(reports.append)
    files.start_log(str(path))
    count = 300
    handed: queue.Queue[int] = queue.Queue()

    def sender() -> None:
        # The session's thread: each Sent is posted before the reply it provokes.
        for number in range(count):
            files.write(Sent(1, number.to_bytes(4, "big") * 8192, False), time.time())
            handed.put(number)

    def reader() -> None:
        # The I/O thread: posts the reply only once its Sent was posted.
        for _ in range(count):
            number = handed.get(timeout=WAIT)
            files.write(Received(1, b"R" + number.to_bytes(4, "big") * 100), time.time())

    files.write(Connected(1, "127.0.0.1:1", "127.0.0.1:2", "tcp", False), time.time())
    threads = [threading.Thread(target=sender), threading.Thread(target=reader)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(WAIT)
        assert not thread.is_alive()
    files.write(Closed(1, "closed", 0, 0, False), time.time())
    files.close()

    recs = records(path)
    assert recs[0]["type"] == "connected" and recs[-1]["type"] == "closed"
    sent_at: dict[int, int] = {}
    received: list[int] = []
    for index, record in enumerate(recs[1:-1]):
        data = base64.b64decode(record["data"])
        if record["type"] == "sent":
            number = int.from_bytes(data[:4], "big")
            assert data == number.to_bytes(4, "big") * 8192
            sent_at[number] = index
        else:
            number = int.from_bytes(data[1:5], "big")
            assert number in sent_at, f"the reply {number} is ahead of its Sent"
            received.append(number)
    assert list(sent_at) == list(range(count))
    assert received == list(range(count))
    assert reports == []


def test_a_slow_file_makes_the_poster_wait_instead_of_growing_memory(tmp_path):
    fifo = tmp_path / "slow.fifo"
    os.mkfifo(fifo)
    # Opened for reading first (without blocking), so the log can open it; read later.
    reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
    try:
        log = TranscriptLog(str(fifo))
        size = 1024 * 1024
        count = 3 * QUEUE_LIMIT // size  # three times what the queue may hold
        posted = 0
        done = threading.Event()

        def post() -> None:
            nonlocal posted
            for number in range(count):
                log.write(Received(1, number.to_bytes(4, "big") * (size // 4)), 1.0)
                posted += 1
            done.set()

        poster = threading.Thread(target=post, daemon=True)
        poster.start()
        # Nobody reads: the pipe fills, the writer blocks, the queue fills to its limit.
        wait_until(lambda: log.queued() >= QUEUE_LIMIT, what="the queue to fill")
        assert not done.is_set()
        assert log.queued() <= QUEUE_LIMIT + size + ITEM_COST
        assert posted * size <= QUEUE_LIMIT + size + 2 * 1024 * 1024  # the rest is in the pipe

        # Now read it all: the poster goes on, and every record arrives whole, in order.
        os.set_blocking(reader, True)
        chunks: list[bytes] = []
        closing = Background(lambda: (done.wait(WAIT), log.close()))
        while chunk := os.read(reader, 1 << 20):
            chunks.append(chunk)
        closing.result(WAIT)
        assert log.failed is None
        lines = b"".join(chunks).decode().splitlines()
        datas = [base64.b64decode(json.loads(line)["data"]) for line in lines[1:]]
        assert [int.from_bytes(data[:4], "big") for data in datas] == list(range(count))
        assert all(len(data) == size for data in datas)
    finally:
        os.close(reader)


def test_a_record_reaches_the_file_while_the_session_runs(tmp_path):
    path = tmp_path / "live.jsonl"
    log = TranscriptLog(str(path))
    try:
        log.write(Received(1, b"tail -f sees this"), 1.0)
        wait_until(lambda: b'"received"' in path.read_bytes(), what="the record on disk")
    finally:
        log.close()
    assert base64.b64decode(records(path)[0]["data"]) == b"tail -f sees this"


def test_a_full_disk_is_said_once_and_nothing_raises(tmp_path):
    reports: list[str] = []
    files = SessionFiles(reports.append)
    files.start_log("/dev/full")
    for number in range(50):
        files.write(Received(1, bytes(100_000)), float(number))
    files.close()
    assert reports == ["the log /dev/full stopped: No space left on device"]


def test_a_relay_stopped_by_a_signal_writes_everything_queued_before_it_exits(
    start_relay,  # noqa: F811
    tmp_path,
):
    # The log is a FIFO read only after the signal: at the signal, the whole log still waits
    # in the writer's queue (less than QUEUE_LIMIT of it), and the exit must write it all.
    fifo = tmp_path / "relay.fifo"
    os.mkfifo(fifo)
    reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
    try:
        relay = start_relay("--view", "raw", "--log", str(fifo))
        flow = relay.connect()
        size = 2 * 1024 * 1024
        up, down = payload(size, seed=3), payload(size, seed=4)
        sending = [
            Background(lambda: flow.client.sendall(up)),
            Background(lambda: flow.upstream.sendall(down)),
        ]
        at_upstream = Background(lambda: digest_of_stream(flow.upstream, size, timeout=60))
        at_client = Background(lambda: digest_of_stream(flow.client, size, timeout=60))
        at_upstream.result(70)
        at_client.result(70)
        for sender in sending:
            sender.result(70)
        relay.netrepl.process.send_signal(signal.SIGTERM)
        os.set_blocking(reader, True)
        chunks: list[bytes] = []
        while chunk := os.read(reader, 1 << 20):
            chunks.append(chunk)
        result = wait_exit(relay.netrepl)
    finally:
        os.close(reader)
    assert result.returncode == 0, result.stderr
    lines = b"".join(chunks).decode().splitlines()
    recs = [json.loads(line) for line in lines[1:]]
    received: dict[int, list[bytes]] = {}
    for record in recs:
        if record["type"] == "received":
            received.setdefault(record["conn"], []).append(base64.b64decode(record["data"]))
    assert sorted(b"".join(parts) for parts in received.values()) == sorted([up, down])
    assert recs[-1]["type"] == "closed", recs[-1]
