"""transport/loop.py: one I/O thread with a selector. Calls from other threads run on it in
the order queued; timers run in time order; a handler that raises is reported and the loop
goes on; a real socket (a socketpair) is read on the loop thread; `stop` runs what was queued
first and releases the selector."""

from __future__ import annotations

import socket
import threading

import pytest

from netrepl.transport.loop import READ, IOLoop
from tests.net.conftest import WAIT


@pytest.fixture
def loop():
    errors: list[BaseException] = []
    io_loop = IOLoop("netrepl-io-test", on_error=errors.append).start()
    io_loop.errors = errors  # type: ignore[attr-defined]
    yield io_loop
    io_loop.stop()


def run_on(loop: IOLoop, call) -> object:
    """The result of `call()` run on the loop thread."""
    done, result = threading.Event(), []
    loop.call_soon(lambda: (result.append(call()), done.set()))
    assert done.wait(WAIT), "the loop never ran the call"
    return result[0]


def test_calls_from_several_threads_run_on_the_loop_in_the_order_each_queued(loop):
    seen: list[tuple[int, int]] = []
    threads_seen: set[str] = set()

    def queue(worker: int) -> None:
        for index in range(200):

            def call(worker: int = worker, index: int = index) -> None:
                seen.append((worker, index))
                threads_seen.add(threading.current_thread().name)

            loop.call_soon(call)

    workers = [threading.Thread(target=queue, args=(n,)) for n in range(4)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(WAIT)
    run_on(loop, lambda: None)  # after every call queued before it
    assert len(seen) == 800
    for worker in range(4):
        assert [i for w, i in seen if w == worker] == list(range(200))
    assert threads_seen == {"netrepl-io-test"}


def test_timers_run_in_time_order_not_in_the_order_set(loop):
    order: list[str] = []
    finished = threading.Event()
    loop.call_later(0.06, lambda: (order.append("late"), finished.set()))
    loop.call_later(0.02, lambda: order.append("early"))
    loop.call_soon(lambda: order.append("now"))
    assert finished.wait(WAIT)
    assert order == ["now", "early", "late"]


def test_a_handler_that_raises_is_reported_and_the_loop_goes_on(loop):
    def broken() -> None:
        raise RuntimeError("a bug in one handler")

    loop.call_soon(broken)
    assert run_on(loop, lambda: "still running") == "still running"
    assert [repr(error) for error in loop.errors] == ["RuntimeError('a bug in one handler')"]


def test_a_registered_socket_is_read_on_the_loop_thread(loop):
    ours, theirs = socket.socketpair()
    ours.setblocking(False)
    got = bytearray()
    arrived = threading.Event()

    def on_ready(mask: int) -> None:
        assert mask & READ and loop.in_loop()
        got.extend(ours.recv(100))
        if got == b"ping":
            arrived.set()

    with ours, theirs:
        run_on(loop, lambda: loop.register(ours, READ, on_ready))
        theirs.sendall(b"ping")
        assert arrived.wait(WAIT)
        run_on(loop, lambda: loop.unregister(ours))


def test_stop_runs_what_was_queued_before_it_and_ends_the_thread():
    io_loop = IOLoop("netrepl-io-stop", on_error=lambda error: None).start()
    ran: list[int] = []
    for index in range(50):
        io_loop.call_soon(lambda index=index: ran.append(index))
    io_loop.stop()
    assert ran == list(range(50))
    assert not io_loop.thread.is_alive()
    io_loop.call_soon(lambda: ran.append(99))  # after the stop: quietly never runs
    assert ran == list(range(50))


def test_a_loop_never_started_can_be_stopped():
    IOLoop("netrepl-io-unused", on_error=lambda error: None).stop()
