"""Files that keep every byte: the JSON Lines transcript (--log) and the raw capture (--capture).

Each event is queued on the thread that posts it (the I/O thread for received data), in the
order events happen, before the display sees them, and written by the file's own writer
thread: the display may skip under a flood, a log never does. Nothing here renders, and
nothing here raises once a file is open; the format itself lives in `transcript.py`.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from typing import BinaryIO, TextIO

from netrepl.errors import UsageError
from netrepl.events import Closed, Connected, Event, Listening, Received, Sent
from netrepl.files import describe_path_error, is_stream, open_for_writing, shown_path
from netrepl.transcript import DATA_SUFFIX, Logged, header, to_data_line, to_line, to_pieces

# /save without --log keeps this much received and sent data in memory, the newest: small,
# because a flood must not grow memory (--log keeps everything, on disk). Events are kept
# whole, so in a flood of 1 MiB reads 4 MiB held ~8 MiB more at the peak (benchmarks/).
MEMORY_LIMIT = 1024 * 1024
# Data handed to a file's writer thread and not yet written: past this, the thread that posts
# waits, so a slow disk (or a FIFO nobody reads) slows the socket instead of growing memory.
# Eight 1 MiB reads: enough for the reads and the writes to overlap.
QUEUE_LIMIT = 8 * 1024 * 1024
# The writer hands the kernel about this much per system call: a UDP burst's small records
# go out together, a flood's 1 MiB reads one (or two) at a time.
WRITE_CHUNK = 1024 * 1024
# Linux's IOV_MAX is 1024; a write of more buffers than this is split.
MAX_BUFFERS = 512
# What a queued item counts beyond its data: a burst of small events (datagrams, connections)
# is bounded too.
ITEM_COST = 256


class _File:
    """A binary file written from any thread by a writer thread of its own.

    `_post` queues what to write, in the order it is called, and returns at once while less
    than QUEUE_LIMIT bytes wait; the writer thread turns each item into bytes and writes them
    with `writev`, so the posting thread's `recv` and the writer's `write` run side by side
    (both outside the GIL). Nothing is buffered in the process beyond the queue: what the
    writer has written is in the kernel, for `tail -f`, within moments, without a flusher.
    Nothing here raises once the file is open: the first failure (a full disk) stops the file,
    drops what waits, and is kept in `failed` for the session to say once."""

    what = "file"

    def __init__(self, path: str) -> None:
        self.path = path
        self._file: BinaryIO = open_for_writing(  # type: ignore[assignment]
            path, binary=True, buffering=0
        )
        self._fd = self._file.fileno()
        self._side_fd = -1
        """A second file some items append data to (the log's data file), or -1."""
        # Items waiting for the writer: pieces to write in order (a lazy iterable, so the
        # writer does the encoding), data for the second file, and how many bytes of data
        # they stand for.
        self._queue: deque[tuple[Iterable[bytes], bytes | None, int]] = deque()
        self._queued = 0
        """Bytes of data posted and not yet written: what QUEUE_LIMIT bounds."""
        self._changed = threading.Condition()
        self._closing = False
        self.failed: str | None = None
        self._writer = threading.Thread(target=self._write_loop, name="netrepl-log-writer")
        # A daemon: an exit that skips close() must not hang on a writer stuck on a FIFO.
        self._writer.daemon = True
        self._writer.start()

    def _fail(self, error: Exception) -> None:
        if self.failed is None:
            reason = error.strerror if isinstance(error, OSError) and error.strerror else error
            self.failed = f"the {self.what} {shown_path(self.path)} stopped: {reason}"

    def _post(self, pieces: Iterable[bytes], size: int, side: bytes | None = None) -> None:
        """Queue `pieces` (written in order, after everything posted before) and `side` (for
        the second file, written before them); wait while the queue is full. `size` is what
        they count against QUEUE_LIMIT."""
        with self._changed:
            if self.failed is not None or self._closing:
                return
            size += ITEM_COST
            self._queue.append((pieces, side, size))
            self._queued += size
            self._changed.notify_all()
            # Wait after queueing, not before: an item larger than the limit still goes.
            while self._queued > QUEUE_LIMIT and self.failed is None and not self._closing:
                self._changed.wait()

    def queued(self) -> int:
        """Bytes posted and not yet written."""
        with self._changed:
            return self._queued

    def _write_loop(self) -> None:
        while True:
            with self._changed:
                while not self._queue and not self._closing:
                    self._changed.wait()
                if not self._queue:
                    return  # closing, and everything is written
                items = list(self._queue)
                self._queue.clear()
            try:
                self._write_items(items)
            except (OSError, ValueError) as error:  # disk full, say
                with self._changed:
                    self._fail(error)
                    self._queue.clear()
                    self._queued = 0
                    self._changed.notify_all()
                return

    def _write_items(self, items: list[tuple[Iterable[bytes], bytes | None, int]]) -> None:
        buffers: list[bytes] = []
        sides: list[bytes] = []
        length = 0
        done = 0
        for pieces, side, size in items:
            if side is not None:
                sides.append(side)
                length += len(side)
            for piece in pieces:
                buffers.append(piece)
                length += len(piece)
            done += size
            if length >= WRITE_CHUNK:
                self._write_both(sides, buffers)
                self._written(done)
                buffers, sides, length, done = [], [], 0, 0
        if buffers or sides or done:
            self._write_both(sides, buffers)
            self._written(done)

    def _write_both(self, sides: list[bytes], buffers: list[bytes]) -> None:
        # The data first: a record in the file points only at data already written, so a
        # failure between the two (a full disk) leaves no record without its bytes.
        if sides:
            self._write_buffers(self._side_fd, sides)
        self._write_buffers(self._fd, buffers)

    def _written(self, size: int) -> None:
        with self._changed:
            self._queued -= size
            self._changed.notify_all()

    def _write_buffers(self, fd: int, buffers: list[bytes]) -> None:
        """Write all of `buffers` to `fd`, in order, however many calls it takes."""
        views = [memoryview(buffer) for buffer in buffers if buffer]
        while views:
            batch = views[:MAX_BUFFERS]
            written = os.writev(fd, batch)
            # A whole batch is the rule for a file; a signal can cut a write to a pipe short.
            for view in batch:
                if written < len(view):
                    views[0] = view[written:]
                    break
                written -= len(view)
                views.pop(0)

    def close(self) -> None:
        """Write what is queued, stop the writer and close. Never raises: a failure lands in
        `failed`."""
        with self._changed:
            self._closing = True
            self._changed.notify_all()
        self._writer.join()
        for file in self._files():
            try:
                file.close()
            except (OSError, ValueError) as error:
                self._fail(error)

    def _files(self) -> list[BinaryIO]:
        return [self._file]


class TranscriptLog(_File):
    """--log FILE: one JSON line per wire event, from the moment it is opened.

    To a regular file, the transcript's version 2 (`transcript.py`): the bytes received and
    sent go raw to FILE.data, next to it, and each record says where; to a FIFO or a device,
    where a second file makes no sense, version 1, the bytes in base64 in the line."""

    what = "log"

    def __init__(self, path: str) -> None:
        super().__init__(path)
        self._data: BinaryIO | None = None
        self._data_end = 0
        """Bytes appended to the data file, once the queue is written: the next offset."""
        self._order = threading.Lock()
        """Taking an offset and queueing its record are one step: records stay in order."""
        data_file: str | None = None
        if not is_stream(self._file):
            try:
                self._data = open_for_writing(  # type: ignore[assignment]
                    path + DATA_SUFFIX, binary=True, buffering=0
                )
            except UsageError:
                self.close()
                raise
            self._side_fd = self._data.fileno()  # type: ignore[union-attr]
            data_file = os.path.basename(os.path.expanduser(path)) + DATA_SUFFIX
        line = (header(time.time(), data_file) + "\n").encode()
        self._post([line], len(line))

    @property
    def data_path(self) -> str | None:
        """The data file beside the log (version 2), or None (version 1: all in the log)."""
        return None if self._data is None else self.path + DATA_SUFFIX

    def _files(self) -> list[BinaryIO]:
        return [self._file] if self._data is None else [self._file, self._data]

    def write(self, event: Event, at: float) -> None:
        if not isinstance(event, Received | Sent):
            # Encoded by the writer thread: to_pieces reads only the event, never changed.
            self._post(to_pieces(event, at), 0)
        elif self._data is None:
            self._post(to_pieces(event, at), len(event.data))
        else:
            data = event.data
            with self._order:
                offset = self._data_end
                self._data_end += len(data)
                self._post(_data_line(event, at, offset), len(data), data)


def _data_line(event: Received | Sent, at: float, offset: int) -> Iterator[bytes]:
    # A generator, so that the writer thread, not the poster, builds the line.
    yield to_data_line(event, at, offset)


class CaptureFile(_File):
    """--capture FILE: the received bytes only, of every connection, as they came."""

    what = "capture"

    def write(self, event: Event) -> None:
        if isinstance(event, Received):
            self._post([event.data], len(event.data))


class Recording:
    """/record FILE: the lines typed from now on, a script for /run. Each line is written as
    it was typed, undecodable input bytes included (stdin is read with surrogateescape), and
    flushed at once. Once open, nothing here raises: a failure (a full disk) stops the
    recording, is kept in `failed` for the session to say once, and never fails the line."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.failed: str | None = None
        self._file: TextIO = open_for_writing(path)  # type: ignore[assignment]
        try:
            self._write(f"# recorded by netrepl, to replay with /run {path}")
        except (OSError, ValueError) as error:
            self.close()
            reason = describe_path_error(error)
            raise UsageError(f"cannot write {shown_path(path)}: {reason}") from None

    def _write(self, line: str) -> None:
        self._file.write(line + "\n")
        self._file.flush()

    def write(self, line: str) -> None:
        if self.failed is not None:
            return
        try:
            self._write(line)
        except (OSError, ValueError) as error:
            reason = describe_path_error(error)
            self.failed = f"the recording {shown_path(self.path)} stopped: {reason}"

    def close(self) -> None:
        """Never raises: whatever did not reach the disk is already in `failed`."""
        with contextlib.suppress(OSError, ValueError):
            self._file.close()


class SessionFiles:
    """The files a session keeps what happens in: the transcript log (--log, /log), the raw
    capture (--capture, /capture) and the recording of typed lines (/record).

    Each can be started and stopped at any time, from any thread. `write` takes every wire
    event on the thread that posts it, in order; a log started mid-connection begins with
    the listener and the open connections, so `netrepl export` knows their addresses. A file
    that fails (a full disk) is said once through `report` and never raises.
    """

    def __init__(self, report: Callable[[str], None]) -> None:
        self.log: TranscriptLog | None = None
        self.capture: CaptureFile | None = None
        self.recording: Recording | None = None
        self._report = report
        self._reported: set[str] = set()
        # Starting a log and logging an event exclude each other: nothing lost or doubled.
        self._lock = threading.Lock()
        self._open: dict[int | str, tuple[Event, float]] = {}
        """What a log started now must begin with: listeners by address, connections by id
        (a relay has a listener and a client of its own)."""

    def write(self, event: Event, at: float) -> None:
        with self._lock:
            self._note_open(event, at)
            log, capture = self.log, self.capture
            if log is not None:
                log.write(event, at)
                self._said(log.failed)
            if capture is not None:
                capture.write(event)
                self._said(capture.failed)

    def forget_connections(self) -> None:
        """A new transport: the connections of the old one are no longer open."""
        with self._lock:
            self._open.clear()

    def _note_open(self, event: Event, at: float) -> None:
        if isinstance(event, Listening):
            self._open[event.address] = (event, at)
        elif isinstance(event, Connected):
            self._open[event.conn] = (event, at)
        elif isinstance(event, Closed):
            self._open.pop(event.conn, None)

    def _said(self, failure: str | None) -> None:
        if failure is not None and failure not in self._reported:
            self._reported.add(failure)
            self._report(failure)

    def start_log(self, path: str) -> str | None:
        """Log to `path` from now on; the data file beside it, if there is one."""
        log = TranscriptLog(path)
        with self._lock:
            for event, at in self._open.values():
                log.write(event, at)
            self.stop_log()
            self.log = log
        return log.data_path

    def stop_log(self) -> str | None:
        """Stop the log; the path it was written to, if there was one."""
        log, self.log = self.log, None
        if log is None:
            return None
        log.close()
        self._said(log.failed)
        return log.path

    def start_capture(self, path: str) -> None:
        capture = CaptureFile(path)
        self.stop_capture()
        self.capture = capture

    def stop_capture(self) -> str | None:
        capture, self.capture = self.capture, None
        if capture is None:
            return None
        capture.close()
        self._said(capture.failed)
        return capture.path

    def start_recording(self, path: str) -> None:
        recording = Recording(path)
        self.stop_recording()
        self.recording = recording

    def stop_recording(self) -> str | None:
        recording, self.recording = self.recording, None
        if recording is None:
            return None
        recording.close()
        return recording.path

    def record(self, line: str) -> None:
        """A typed (or piped) line, for /record; /record itself is not recorded."""
        recording = self.recording
        if recording is not None and not line.startswith("/record"):
            recording.write(line)
            self._said(recording.failed)

    def close(self) -> None:
        self.stop_log()
        self.stop_capture()
        self.stop_recording()


class SessionMemory:
    """What /save writes when there is no --log: the wire events so far, the newest
    MEMORY_LIMIT bytes of data (older events are dropped whole, and counted)."""

    def __init__(self, limit: int = MEMORY_LIMIT) -> None:
        # (time, event, data size) rather than an Entry each: a relay adds one per read, on
        # its I/O thread, and a frozen dataclass cost a third of that.
        self._entries: deque[tuple[float, Logged, int]] = deque()
        self._size = 0
        self._limit = limit
        self._lock = threading.Lock()
        self.dropped = 0
        """Data bytes no longer in memory."""

    def add(self, event: Logged, at: float) -> None:
        size = len(event.data) if isinstance(event, Received | Sent) else 0
        with self._lock:
            self._entries.append((at, event, size))
            self._size += size
            while self._size > self._limit and self._entries:
                old_size = self._entries.popleft()[2]
                self._size -= old_size
                self.dropped += old_size

    def save(self, path: str) -> int:
        """Write the transcript to `path`; return the number of events written."""
        with self._lock:
            entries = list(self._entries)
        try:
            with open_for_writing(path) as file:
                file.write(header(time.time()) + "\n")  # type: ignore[arg-type]
                for at, event, _ in entries:
                    line = to_line(event, at)
                    if line is not None:
                        file.write(line + "\n")  # type: ignore[arg-type]
        except OSError as error:
            reason = describe_path_error(error)
            raise UsageError(f"cannot write {shown_path(path)}: {reason}") from None
        return len(entries)
