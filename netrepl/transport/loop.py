"""One I/O thread per transport: a selector over its sockets, plus thread-safe calls and timers.

Every read, write, accept and TLS operation of a transport happens on this thread, so an
SSL object is never touched by two threads and a client that stops reading never blocks the
prompt. Other threads only hand it work with `call_soon`; it never renders or prints.
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import selectors
import socket
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any, TypeVar

_T = TypeVar("_T")

READ = selectors.EVENT_READ
WRITE = selectors.EVENT_WRITE

SocketHandler = Callable[[int], None]
"""Called on the loop thread with the ready mask (READ, WRITE or both)."""


class IOLoop:
    """A thread with a selector: it runs the handlers of the sockets registered with it,
    the calls queued with `call_soon` and the timers set with `call_later`, one at a time.

    `register`, `modify` and `unregister` are for the loop thread (a transport's handlers);
    `call_soon`, `call_later` and `stop` are safe from any thread. A handler that raises is
    reported to `on_error` and the loop goes on: every other socket still needs it.
    """

    def __init__(self, name: str, on_error: Callable[[BaseException], None]) -> None:
        self._on_error = on_error
        self._selector = selectors.DefaultSelector()
        self._wake_reader, self._wake_writer = socket.socketpair()
        self._wake_reader.setblocking(False)
        self._wake_writer.setblocking(False)
        self._selector.register(self._wake_reader, READ, None)
        self._calls: deque[Callable[[], None]] = deque()
        self._timers: list[tuple[float, int, Callable[[], None]]] = []
        self._timer_order = itertools.count()
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    @property
    def thread(self) -> threading.Thread:
        return self._thread

    def start(self) -> IOLoop:
        self._thread.start()
        return self

    def in_loop(self) -> bool:
        return threading.current_thread() is self._thread

    # ---- thread-safe entry points

    def call_soon(self, call: Callable[[], None]) -> None:
        """Run `call` on the loop thread, after what is already queued (any thread)."""
        self._calls.append(call)
        # A full wake-up pipe already guarantees a wake-up; a closed one means we stopped.
        with contextlib.suppress(BlockingIOError, OSError):
            self._wake_writer.send(b"\0")

    def call(self, call: Callable[[], _T], timeout: float = 5.0) -> _T:
        """Run `call` on the loop thread and return what it returns, or raise what it
        raises (any thread; at once on the loop thread). TimeoutError if the loop is gone."""
        if self.in_loop():
            return call()
        done = threading.Event()
        outcome: list[Any] = []

        def run() -> None:
            try:
                outcome.append((True, call()))
            except BaseException as error:
                outcome.append((False, error))
            finally:
                done.set()

        self.call_soon(run)
        if not done.wait(timeout) or not outcome:
            raise TimeoutError("the I/O thread did not answer")
        succeeded, value = outcome[0]
        if not succeeded:
            raise value
        return value  # type: ignore[no-any-return]

    def call_later(self, delay: float, call: Callable[[], None]) -> None:
        """Run `call` on the loop thread after `delay` seconds (any thread)."""
        when = time.monotonic() + delay
        self.call_soon(lambda: heapq.heappush(self._timers, (when, next(self._timer_order), call)))

    def stop(self, timeout: float = 5.0) -> None:
        """Stop after the calls queued so far have run; then close the selector."""

        def finish() -> None:
            self._stopping = True

        if self._thread.ident is None:  # never started: nothing runs, just let go
            self._close_resources()
            return
        if not self._thread.is_alive():
            return
        self.call_soon(finish)
        if not self.in_loop():
            self._thread.join(timeout)

    # ---- loop thread only

    def register(self, sock: socket.socket, events: int, handler: SocketHandler) -> None:
        self._selector.register(sock, events, handler)

    def modify(self, sock: socket.socket, events: int, handler: SocketHandler) -> None:
        """Watch `sock` for `events` from now on, registered or not (a relay leg that
        stopped reading and writing was unregistered)."""
        try:
            self._selector.modify(sock, events, handler)
        except KeyError:
            self._selector.register(sock, events, handler)

    def unregister(self, sock: socket.socket) -> None:
        with contextlib.suppress(KeyError, ValueError):  # already gone, or closed
            self._selector.unregister(sock)

    def _run(self) -> None:
        try:
            while not self._stopping:
                for key, mask in self._selector.select(self._next_timeout()):
                    if key.data is None:
                        self._drain_wakeups()
                    else:
                        self._guarded(key.data, mask)
                self._run_calls()
                self._run_timers()
        finally:
            self._close_resources()

    def _close_resources(self) -> None:
        self._selector.close()
        self._wake_reader.close()
        self._wake_writer.close()

    def _next_timeout(self) -> float | None:
        if self._calls:
            return 0
        if self._timers:
            return max(0.0, self._timers[0][0] - time.monotonic())
        return None

    def _drain_wakeups(self) -> None:
        with contextlib.suppress(BlockingIOError):
            while self._wake_reader.recv(4096):
                pass

    def _run_calls(self) -> None:
        # Only what was queued before this pass: a call that queues another cannot starve I/O.
        for _ in range(len(self._calls)):
            self._guarded(self._calls.popleft())

    def _run_timers(self) -> None:
        now = time.monotonic()
        while self._timers and self._timers[0][0] <= now:
            _, _, call = heapq.heappop(self._timers)
            self._guarded(call)

    def _guarded(self, call: Callable[..., None], *args: int) -> None:
        # A bug in one handler must not stop the loop: every other socket still needs it.
        try:
            call(*args)
        except Exception as error:
            self._on_error(error)
