"""netrepl under a flood, as a person and as a script see it: functional checks, not timings.

Interactive (a pty): the screen skips what it cannot show and says so, while the counters, the
toolbar and the --log keep every byte; typing, /stats, /pause, /resume and /quit still work;
one endless line does not grow memory. Batch (pipes): stdout is complete and in order however
fast the peer sends, and a slow reader of stdout slows the socket instead of growing memory.
Flooders are threads of the test process on loopback sockets; every wait has a timeout.

Two terminals: `Terminal` (pyte) shows the screen but takes only ~0.5 MB/s, less than netrepl
writes while it keeps up with a flood, so it stands for a slow terminal; `FastTerminal` reads
the pty as fast as netrepl writes and answers cursor-position queries, with checks on the raw
bytes, for what a sustained flood does with an ordinary terminal.
"""

from __future__ import annotations

import hashlib
import os
import random
import re
import select
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator

import pexpect
import pytest

from tests.e2e.test_interactive import enter, keys, ready, rows, start, toolbar
from tests.net.conftest import WAIT, hexdump_line, netrepl_env
from tests.net.test_batch import parse_hexdump
from tests.net.test_logs import data_of, records
from tests.terminal import COLUMNS, ROWS, Terminal, strip_escapes, terminal_env

MB = 1_000_000
FLOOD_SECONDS = 30.0
"""A sustained flood stops by itself after this, whatever the test does."""
CHUNK = 256 * 1024
SKIPPED = r"(?m)^skipped ([\d,]+) bytes? in ([\d,]+) reads? to keep up"
SKIPPED_RAW = rb"skipped [\d,]+ bytes? in [\d,]+ reads? to keep up"
# A line of text for floods that must be recognisable on screen (64 bytes with its newline).
FLOOD_LINE = b"flood-line 0123456789 the quick brown fox jumps over the lazy do\n"
TOOLBAR_RAW = rb"  rx [\d,]+ B  tx [\d,]+ B"


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def memory(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM (peak RSS) of a live process, in bytes."""
    with open(f"/proc/{pid}/status", encoding="ascii") as status:
        fields = dict(line.split(":", 1) for line in status if line.startswith("Vm"))
    return {name: int(fields[name].split()[0]) * 1024 for name in ("VmRSS", "VmHWM")}


def mib(size: int) -> str:
    return f"{size / (1 << 20):.1f} MiB"


# ---- a flooder -------------------------------------------------------------------------------


class Flooder:
    """Sends on `sock` from a thread of its own: `data` once (then shuts down its sending side
    when `close` is set), or `pattern` over and over until `stop()`, the peer goes away, or
    FLOOD_SECONDS pass. It counts what the socket took, and every time the socket takes
    nothing for `stall` seconds (the receiver stopped reading) it counts a stall."""

    def __init__(
        self,
        sock: socket.socket,
        *,
        data: bytes | None = None,
        pattern: bytes | None = None,
        close: bool = False,
        stall: float = 0.5,
    ) -> None:
        assert (data is None) != (pattern is None)
        self._sock = sock
        self._data, self._pattern, self._close, self._stall = data, pattern, close, stall
        self.sent = 0
        self.stalls = 0
        self.sent_at_first_stall: int | None = None
        self.error: OSError | None = None
        self.done = threading.Event()
        self._stop = threading.Event()
        self._changed = threading.Condition()
        self._thread = threading.Thread(target=self._run, name="test-flooder", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        deadline = time.monotonic() + FLOOD_SECONDS
        try:
            if self._data is not None:
                self._send(memoryview(self._data), deadline)
                if self._close:
                    self._sock.shutdown(socket.SHUT_WR)
            else:
                assert self._pattern is not None
                chunk = memoryview(self._pattern * max(1, CHUNK // len(self._pattern)))
                while not self._stop.is_set() and time.monotonic() < deadline:
                    self._send(chunk, deadline)
        except OSError as error:
            self.error = error  # the client went away
        finally:
            with self._changed:
                self.done.set()
                self._changed.notify_all()

    def _send(self, view: memoryview, deadline: float) -> None:
        while view and not self._stop.is_set() and time.monotonic() < deadline:
            _, writable, _ = select.select([], [self._sock], [], self._stall)
            if not writable:
                with self._changed:
                    self.stalls += 1
                    if self.sent_at_first_stall is None:
                        self.sent_at_first_stall = self.sent
                    self._changed.notify_all()
                continue
            sent = self._sock.send(view[:CHUNK])
            view = view[sent:]
            with self._changed:
                self.sent += sent

    def wait_stall_or_done(self, stalls: int, timeout: float = WAIT) -> None:
        """Wait until at least `stalls` stalls were counted, or the flooder ended."""
        with self._changed:
            if not self._changed.wait_for(
                lambda: self.stalls >= stalls or self.done.is_set(), timeout
            ):
                raise AssertionError(f"no stall and no end of the flood after {timeout} s")

    def wait_done(self, timeout: float = WAIT) -> None:
        if not self.done.wait(timeout):
            raise AssertionError(f"the flooder still sending after {timeout} s ({self.sent:,})")

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(WAIT)


# ---- a terminal as fast as netrepl ---------------------------------------------------------------


class FastTerminal:
    """netrepl in a pty read as fast as it writes, without a screen: a terminal whose cursor
    is on its last row, answering prompt_toolkit's cursor-position queries at once (as any
    terminal does; without the answer the toolbar is never drawn). Checks are on raw bytes."""

    QUERY = b"\x1b[6n"

    def __init__(self, args: list[str], env: dict[str, str], timeout: float = 10.0) -> None:
        self.timeout = timeout
        self.raw = bytearray()
        self._searched = 0
        self.child = pexpect.spawn(
            sys.executable,
            ["-m", "netrepl", *args],
            env=env,
            dimensions=(ROWS, COLUMNS),
            timeout=timeout,
        )

    def _pump(self, wait: float) -> bool:
        try:
            data = self.child.read_nonblocking(1 << 20, timeout=wait)
        except (pexpect.TIMEOUT, pexpect.EOF):
            return False
        queries = (bytes(self.raw[-3:]) + data).count(self.QUERY)  # one may span two reads
        self.raw += data
        if queries:
            self.child.send(f"\x1b[{ROWS};1R".encode() * queries)
        return True

    def tail(self) -> str:
        return strip_escapes(bytes(self.raw[-2000:]))

    def wait(self, found: Callable[[], bool], what: str, timeout: float | None = None) -> None:
        """Wait for `found()`, reading the pty meanwhile, so netrepl never blocks on it."""
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        while not found():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"timed out waiting for {what}\n{self.tail()}")
            if not self._pump(min(remaining, 0.1)) and not self.child.isalive():
                self._pump(0)
                if not found():
                    raise AssertionError(f"netrepl exited while waiting for {what}\n{self.tail()}")

    def expect(self, pattern: bytes, timeout: float | None = None) -> re.Match[bytes]:
        """Wait until `pattern` appears in the raw output after the previous match."""
        regex = re.compile(pattern)
        match: re.Match[bytes] | None = None

        def found() -> bool:
            nonlocal match
            match = regex.search(self.raw, self._searched)
            return match is not None

        self.wait(found, repr(pattern), timeout)
        assert match is not None
        self._searched = match.end()
        return match

    def send(self, keys: bytes) -> None:
        self.child.send(keys)

    def wait_exit(self, timeout: float | None = None) -> int:
        self.wait(lambda: not self.child.isalive(), "netrepl to exit", timeout)
        self._pump(0)
        self.child.close()
        return self.child.exitstatus if self.child.exitstatus is not None else -1

    def close(self) -> None:
        if self.child.isalive():
            self.child.terminate(force=True)
        self.child.close(force=True)


@pytest.fixture
def fast_spawn(private_state) -> Iterator[Callable[..., FastTerminal]]:
    """fast_spawn(*args) -> a running `python -m netrepl ARGS` in a pty read at full speed,
    with its prompt and toolbar drawn."""
    terminals: list[FastTerminal] = []

    def start(*args: str) -> FastTerminal:
        terminal = FastTerminal(list(args), terminal_env(str(private_state)))
        terminals.append(terminal)
        terminal.expect(TOOLBAR_RAW)
        return terminal

    yield start
    for terminal in terminals:
        terminal.close()


def echoed(line: str) -> bytes:
    """The display's echo of an entered line in raw output: `> LINE` ending in CR LF. The
    prompt's own row ends in CR CR LF (prompt_toolkit writes CR LF, the tty adds a CR)."""
    return rb"> (?:\x1b\[[\d;]*m)*" + re.escape(line.encode()) + rb"(?:\x1b\[[\d;]*m)*\r\n"


def printed_lines(raw: bytes) -> list[str]:
    """The lines the display printed above the prompt, without the prompt's own rows (which
    end in CR CR LF: prompt_toolkit writes CR LF, the tty adds a CR) and so without the
    unfinished received line that the prompt shows, which is redrawn as it changes."""
    return [
        # What the display wrote follows prompt_toolkit's erasing of its own rows.
        strip_escapes(piece.rsplit(b"\x1b[J", 1)[-1])
        for piece in raw.split(b"\r\n")
        if not piece.endswith(b"\r")
    ]


def wait_pumping(terminal: Terminal, found: Callable[[], bool], what: str) -> None:
    """Wait for `found()` while the terminal reads the pty (a full pty would block netrepl's
    output and with it the prompt, which writes through the same thread)."""
    terminal._wait(found, what, WAIT)


def no_traceback(output: str) -> None:
    assert "Traceback" not in output, output[-3000:]


# ---- 1. a 20 MB flood in the hex view, with --log --------------------------------------------


def test_20mb_hex_flood_is_skipped_on_screen_but_counted_and_logged_whole(
    spawn, make_peer, flood, tmp_path
):
    greeting = b"flood ahead\n"
    peer = make_peer(greeting=greeting)
    log = tmp_path / "flood.jsonl"
    terminal, client = start(spawn, peer, "--view", "hex", "--log", str(log))
    terminal.expect_screen(rows(hexdump_line(0, greeting).rstrip("\n")))

    data = random.Random(6).randbytes(20 * MB)
    flooder = flood(client.sock, data=data)
    total = len(greeting) + len(data)
    # The toolbar counts every byte, exactly, however much the screen skipped.
    terminal.expect_screen(toolbar(peer) + rf".*│  rx {total:,} B  tx 0 B$", timeout=30)
    flooder.wait_done()
    assert flooder.sent == len(data) and flooder.error is None
    # The screen said it skipped to keep up (every 2 s of the flood, and once when it eased).
    terminal.expect(SKIPPED, timeout=15)
    skipped = [int(m[0].replace(",", "")) for m in re.findall(SKIPPED, terminal.plain)]
    assert 0 < sum(skipped) <= len(data), skipped

    enter(terminal, "/stats")
    terminal.expect_screen(
        rf"(?m)^received {total:,} bytes in [\d,]+ reads[,;].*\nsent     0 bytes in 0 sends"
    )
    enter(terminal, "/quit")
    assert terminal.wait_exit() == 0
    no_traceback(terminal.plain)

    recs = records(log)
    logged = b"".join(data_of(recs, "received"))
    assert len(logged) == total
    assert sha(logged) == sha(greeting + data)
    assert recs[-1]["type"] == "closed" and recs[-1]["received"] == total, recs[-1]


# ---- 2. /quit during a flood ---------------------------------------------------------------------


def test_quit_during_a_sustained_flood_exits_0_promptly(fast_spawn, make_peer, flood):
    peer = make_peer()
    terminal = fast_spawn(*peer.args, "--view", "hex")
    client = peer.wait_for_client()
    flooder = flood(client.sock, pattern=bytes(range(256)))
    # The display says it skips (after 2 s of flood): it is far behind the socket.
    terminal.expect(SKIPPED_RAW, timeout=15)
    assert not flooder.done.is_set(), "the flood ended before /quit was typed"

    started = time.monotonic()
    terminal.send(b"/quit\r")
    status = terminal.wait_exit(timeout=20)  # generous: the bound is asserted below
    took = time.monotonic() - started
    assert status == 0, terminal.tail()
    assert took < 5.0, f"/quit took {took:.1f} s to exit during a flood"
    # The flooder was still sending when netrepl left: it stopped because the client went away.
    client.wait_closed()
    flooder.wait_done()
    assert flooder.error is not None, f"the flood ended by itself after {flooder.sent:,} bytes"
    no_traceback(strip_escapes(bytes(terminal.raw)))


def test_quit_during_a_sustained_flood_exits_promptly_on_a_slow_terminal(spawn, make_peer, flood):
    peer = make_peer()
    terminal, client = start(spawn, peer, "--view", "hex")
    flooder = flood(client.sock, pattern=bytes(range(256)))
    terminal.expect_screen(r"(?m)^[0-9a-f]{8}  00 01 02 03 04 05 06 07  08 09 0a 0b")
    wait_pumping(terminal, lambda: flooder.sent >= 200 * MB, "200 MB sent")

    started = time.monotonic()
    terminal.enter("/quit")
    status = terminal.wait_exit(timeout=5)
    assert status == 0 and time.monotonic() - started < 5.0


# ---- 3. a 50 MB line without a newline -----------------------------------------------------------


def test_50mb_line_without_newline_keeps_memory_bounded_and_the_prompt_answering(
    spawn, make_peer, flood
):
    bound = 200 * (1 << 20)
    peer = make_peer()
    terminal, client = start(spawn, peer)
    ready(terminal)
    idle = memory(terminal.child.pid)

    size = 50 * MB
    text = b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ-_"
    flooder = flood(client.sock, data=(text * (size // len(text) + 1))[:size])
    terminal.expect_screen(re.escape(text.decode()))
    # Keys echo at the prompt and a line is sent while (or just after) the line arrives.
    keys(terminal, "still answering")
    terminal.expect_screen(r"(?m)^> still answering$")
    terminal.enter()
    wait_pumping(terminal, lambda: b"still answering\n" in client.received, "the typed line")

    terminal.expect_screen(toolbar(peer) + rf".*│  rx {size:,} B  tx 16 B$", timeout=30)
    flooder.wait_done()
    peak = memory(terminal.child.pid)["VmHWM"]
    assert peak < bound, (
        f"peak RSS {mib(peak)} over a {size:,}-byte line (idle: RSS {mib(idle['VmRSS'])},"
        f" peak {mib(idle['VmHWM'])}; bound {mib(bound)})"
    )
    # And after it: a typed line is sent and echoed on a still screen.
    enter(terminal, "after the line")
    wait_pumping(terminal, lambda: b"after the line\n" in client.received, "the second line")
    assert bytes(client.received) == b"still answering\nafter the line\n"
    terminal.expect_screen(rows("> after the line"))
    no_traceback(terminal.plain)


# ---- 4. typing, /pause and /resume during a flood ------------------------------------------------


def test_typing_pause_and_resume_during_a_flood(fast_spawn, make_peer, flood):
    peer = make_peer()
    terminal = fast_spawn(*peer.args)
    client = peer.wait_for_client()
    flooder = flood(client.sock, pattern=FLOOD_LINE)
    terminal.expect(re.escape(FLOOD_LINE.rstrip()))

    terminal.send(b"typed during the flood\r")
    terminal.wait(lambda: b"typed during the flood\n" in client.received, "the line at the peer")
    assert bytes(client.received) == b"typed during the flood\n"
    terminal.expect(echoed("typed during the flood"))  # shown above the prompt

    terminal.send(b"/pause\r")
    paused = terminal.expect(rb"paused: received data is counted, not shown \(/resume\)")
    assert not flooder.done.is_set(), "the flood ended before /pause"
    terminal.send(b"/resume\r")
    resumed = terminal.expect(
        rb"resumed after [\d.]+ s; not shown meanwhile: ([\d,]+) bytes? received in [\d,]+"
        rb" reads?, 0 bytes sent"
    )
    assert int(resumed[1].replace(b",", b"")) > 0, resumed[0]
    between = printed_lines(bytes(terminal.raw[paused.end() : resumed.start()]))
    shown = [line for line in between if "flood-line" in line]
    assert not shown, f"data printed while paused: {shown[:5]}"
    terminal.expect(rb"flood-line")  # shown again
    assert not flooder.done.is_set(), "the flood ended before /resume"
    no_traceback(strip_escapes(bytes(terminal.raw)))


def test_keys_typed_during_a_flood_reach_the_prompt_unchanged(fast_spawn, make_peer, flood):
    peer = make_peer()
    terminal = fast_spawn(*peer.args)
    client = peer.wait_for_client()
    flood(client.sock, pattern=FLOOD_LINE)
    terminal.expect(re.escape(FLOOD_LINE.rstrip()))

    # A key and a Backspace, one after the other as typed, many times: nothing is left.
    for _ in range(40):
        before = len(terminal.raw)
        terminal.send(b"%")
        terminal.wait(lambda b=before: b"%" in terminal.raw[b:], "the % echoed")
        before = len(terminal.raw)
        terminal.send(b"\x7f")
        terminal.wait(lambda b=before: len(terminal.raw) > b, "output after the Backspace")
    terminal.send(b"end\r")
    terminal.wait(lambda: b"\n" in client.received, "the line at the peer")
    assert bytes(client.received) == b"end\n"


def test_text_view_never_joins_the_two_sides_of_a_skip_into_one_line(fast_spawn, make_peer, flood):
    peer = make_peer()
    terminal = fast_spawn(*peer.args)
    client = peer.wait_for_client()
    flooder = flood(client.sock, pattern=FLOOD_LINE)
    terminal.expect(SKIPPED_RAW, timeout=15)
    flooder.stop()

    whole = FLOOD_LINE.decode().rstrip("\n")
    shown = printed_lines(bytes(terminal.raw))
    flood_lines = [line for line in shown if re.search("flood-line|quick|brown|jumps", line)]
    assert len(flood_lines) > 100
    # A whole line, or a piece cut at a skip (its start, or its end), never two pieces joined.
    joined = [
        line
        for line in flood_lines
        if line != whole and not whole.startswith(line) and not whole.endswith(line)
    ]
    assert not joined, f"{len(joined)} of {len(flood_lines)} lines joined: {joined[:5]}"


# ---- 5. batch: a hexdump of a flood is complete --------------------------------------------------


def test_batch_hex_of_a_5mb_flood_has_every_line(make_peer):
    size = 5 * MB
    data = random.Random(5).randbytes(size)
    peer = make_peer(greeting=data, close_after_greeting=True)
    process = subprocess.run(
        [sys.executable, "-m", "netrepl", *peer.args, "--view", "hex", "--linger", "30"],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        env=netrepl_env(),
        timeout=60,
    )
    assert process.returncode == 0, process.stderr[-2000:]
    out = process.stdout.decode("ascii")
    lines = out.splitlines()
    rows = -(-size // 16)
    # Bytes after a 30 ms silence start a block of their own (a device's reply after a pause):
    # on a loaded machine netrepl's own reads can pause that long mid-flood, leaving a short
    # row before the next block. Nothing else may add a line.
    assert rows <= len(lines) <= rows + 10, len(lines)
    assert sha(parse_hexdump(out)) == sha(data)  # every byte, offsets in step
    assert "skipped" not in out and b"skipped" not in process.stderr, process.stderr
    assert process.stderr.decode().splitlines()[-1] == (
        f"netrepl: connection closed by peer ({size:,} bytes received, 0 sent)"
    )


# ---- 6. batch: a slow reader of stdout -----------------------------------------------------------


class _Drain:
    """Reads a pipe on a thread into memory (stderr: so a full pipe never blocks netrepl)."""

    def __init__(self, pipe) -> None:
        self.data = bytearray()
        self._changed = threading.Condition()
        self._pipe = pipe
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while chunk := self._pipe.read1(65536):
            with self._changed:
                self.data += chunk
                self._changed.notify_all()

    def wait_for(self, expected: bytes, timeout: float = WAIT) -> None:
        with self._changed:
            if not self._changed.wait_for(lambda: expected in self.data, timeout):
                raise AssertionError(f"never saw {expected!r}: {bytes(self.data)!r}")


def kernel_buffers() -> int:
    """The most the two sockets of a loopback connection can hold between them: the peer's
    largest send buffer and netrepl's largest (autotuned) receive buffer."""
    try:
        with (
            open("/proc/sys/net/ipv4/tcp_rmem") as rmem,
            open("/proc/sys/net/ipv4/tcp_wmem") as wmem,
        ):
            return int(rmem.read().split()[2]) + int(wmem.read().split()[2])
    except (OSError, ValueError, IndexError):
        return 16 * MB


def test_batch_raw_with_a_slow_reader_keeps_memory_bounded_and_output_whole(flood):
    # More than the kernel alone could take in while netrepl holds back (machines that
    # autotune a receive buffer up to 32 MiB would otherwise swallow a 20 MB flood whole).
    size = max(20 * MB, kernel_buffers() + 16 * MB)
    data = random.Random(20).randbytes(size)
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(WAIT)
    port = listener.getsockname()[1]
    args = ["127.0.0.1", str(port), "--view", "raw", "--linger", "30"]
    process = subprocess.Popen(
        [sys.executable, "-m", "netrepl", *args],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=netrepl_env(),
    )
    assert process.stdout is not None
    conn: socket.socket | None = None
    out = bytearray()
    try:
        conn, _ = listener.accept()
        stderr = _Drain(process.stderr)
        stderr.wait_for(b"netrepl: connected to")
        idle = memory(process.pid)
        flooder = flood(conn, data=data, close=True)

        # Nobody reads stdout: netrepl must stop reading the socket rather than hold it all.
        flooder.wait_stall_or_done(1, timeout=30)
        assert not flooder.done.is_set(), (
            f"netrepl took all {size:,} bytes while nobody read its stdout"
        )
        held = memory(process.pid)
        assert flooder.sent_at_first_stall is not None and flooder.sent_at_first_stall < size

        # Then read slowly: 4 MB, wait until the sender stalls again, and so on.
        peaks = [held["VmHWM"]]
        for _ in range(size // (4 * MB) + 20):
            goal = len(out) + 4 * MB
            chunk = b"-"
            while len(out) < goal and (chunk := os.read(process.stdout.fileno(), 1 << 20)):
                out += chunk
            if not chunk or flooder.done.is_set():
                break
            flooder.wait_stall_or_done(flooder.stalls + 1, timeout=30)
            peaks.append(memory(process.pid)["VmHWM"])
        flooder.wait_done(30)
        peaks.append(memory(process.pid)["VmHWM"])  # all of it is in; netrepl is still alive
        while chunk := os.read(process.stdout.fileno(), 1 << 20):
            out += chunk
        assert process.wait(30) == 0, bytes(stderr.data)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(WAIT)
        if conn is not None:
            conn.close()
        listener.close()

    report = (
        f"idle RSS {mib(idle['VmRSS'])} (peak {mib(idle['VmHWM'])}); at the first stall, after"
        f" {flooder.sent_at_first_stall:,} bytes sent, RSS {mib(held['VmRSS'])};"
        f" peak {mib(max(peaks))}; {flooder.stalls} stalls"
    )
    # What netrepl may hold: its display queue (8 MiB in batch) and read buffers, not 20 MB.
    assert max(peaks) - idle["VmRSS"] < 40 * (1 << 20), report
    assert len(out) == size, report
    assert sha(bytes(out)) == sha(data), report
