"""The state of one netrepl session and the operations every front end calls.

The interactive REPL and batch mode both hand each line to `Session.submit`, so a command
behaves the same typed or piped. The session owns the settings and the current transport; it
reports through `post` (to the display) and raises NetreplError subclasses for the caller to
show, never printing anything itself.
"""

from __future__ import annotations

import dataclasses
import itertools
import os
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, BinaryIO

from netrepl.codec import decode_complete, quote
from netrepl.commands import REGISTRY
from netrepl.errors import NetreplError, SendError, UsageError
from netrepl.events import (
    Closed,
    Connected,
    Event,
    Listening,
    Noticed,
    PauseChanged,
    Progress,
    ViewChanged,
)
from netrepl.files import check_readable, is_stream, open_for_reading, read_at_most
from netrepl.framing import Framing
from netrepl.log import CaptureFile, Recording, SessionMemory, TranscriptLog
from netrepl.payload import InputMode, SendContext, build_payload
from netrepl.render import certificate_lines
from netrepl.script import PeriodicJobs
from netrepl.transcript import WIRE_EVENTS
from netrepl.transport import (
    CANCEL_POLL_SECONDS,
    Endpoint,
    PeerInfo,
    Target,
    open_transport,
)
from netrepl.transport.base import Transport
from netrepl.transport.registry import readdress
from netrepl.transport.stream import SendInterrupted
from netrepl.view import TimeMode, View, apply_encoding, apply_view_name
from netrepl.watch import AutoReplies, ExpectBuffer, compile_hex_pattern, compile_text_pattern

if TYPE_CHECKING:
    from netrepl.options import Startup

# A long send says how far it is this often.
PROGRESS_SECONDS = 0.1
# A {file:PATH} placeholder reads the whole file into one payload; /sendfile streams bigger.
PAYLOAD_FILE_LIMIT = 16 * 1024 * 1024


def open_to_send(path: str) -> tuple[BinaryIO, int | None]:
    """`path` opened for /sendfile, and its size; None for a stream (a device, a pipe), which
    is sent as it comes, until it ends or the user stops it."""
    file = open_for_reading(path)
    return file, None if is_stream(file) else os.fstat(file.fileno()).st_size


def read_payload_file(path: str) -> bytes:
    """The bytes of `path` for `{file:PATH}`, or a UsageError saying why not."""
    return read_at_most(path, PAYLOAD_FILE_LIMIT, "send it with /sendfile")


@dataclass
class Settings:
    view: View
    eol: str = "lf"
    escapes: bool = True
    input_mode: InputMode = "text"
    batch: bool = False
    """Batch mode (stdin not a terminal): allows the raw view."""


class Session:
    def __init__(
        self, settings: Settings, post: Callable[[Event], None], endpoint: Endpoint | None = None
    ) -> None:
        self.settings = settings
        self._show = post
        self.log: TranscriptLog | None = None
        self.capture: CaptureFile | None = None
        self.memory = SessionMemory()
        self.expect_buffer = ExpectBuffer()
        self.replies = AutoReplies(self._answer, self.error)
        self.jobs = PeriodicJobs(self.submit, self.error)
        self.observers: list[Callable[[Event], None]] = [
            self.expect_buffer.observe,
            self.replies.observe,
            self._after_connect,
        ]
        """Called with every wire event before the display gets it."""
        self.presets: dict[str, str] = {}
        """Named lines from the config file, sent with /p NAME."""
        self.on_connect: str | None = None
        """A script to run after every connect and reconnect (--on-connect)."""
        self.script_depth = 0
        self.recording: Recording | None = None
        self._send_lock = threading.RLock()
        # Starting a log and logging an event exclude each other: nothing is lost or doubled.
        self._logging = threading.Lock()
        self._open_records: dict[int | None, tuple[Event, float]] = {}
        # Watchers see events in order; while a script sets up its rules they wait.
        self._watching = threading.RLock()
        self._holds = 0
        self._held: list[Event] = []
        self._replaying = False
        self.startup_hold: Callable[[], None] | None = None
        """Releases the watchers held for --script, once that script reaches a line that
        sends or waits (see `hold_watchers`)."""
        self._opened = threading.Condition()
        self._on_connect_running = 0
        self.on_connect_failure: NetreplError | None = None
        """The last --on-connect script that failed (batch mode exits with its status)."""
        self._reported: set[str] = set()
        self.endpoint = endpoint
        """What /reconnect opens again: the last endpoint opened (or given)."""
        self.transport: Transport | None = None
        self.target: Target | None = None
        """Where typed data goes (/to); None: the transport's default."""
        self.target_left = False
        """The client chosen with /to N has left: sends fail (never go to all) until /to."""
        self.quit_requested = False
        self.sends = 0
        """Data sends so far; `{counter}` is the number of the next one."""
        self.cancel = threading.Event()
        """Set by Ctrl-C while a line runs: a blocking connect or send gives up."""
        self._ids = itertools.count(1)

    # ---- every event passes here: logs and watchers first, then the display

    def post(self, event: Event) -> None:
        """Thread-safe; called by transports (on their I/O thread) and by commands."""
        if isinstance(event, WIRE_EVENTS):
            at = getattr(event, "at", 0.0) or time.time()
            self.memory.add(event, at)
            with self._logging:
                self._note_open(event, at)
                log, capture = self.log, self.capture
                if log is not None:
                    log.write(event, at)
                    self._report_failure(log.failed)
                if capture is not None:
                    capture.write(event)
                    self._report_failure(capture.failed)
            with self._watching:
                held = self._holds or self._replaying
                if held:
                    self._held.append(event)
            if not held:
                for observer in self.observers:
                    observer(event)
        self._show(event)
        if isinstance(event, Closed) and event.conn == self.target and self.listening:
            self.target_left = True
            self._show(
                Noticed(
                    f"#{event.conn} has left: typed lines go nowhere until you choose"
                    " (/to all, or /to N; /clients lists them)",
                    "status",
                )
            )

    def take_startup_hold(self) -> Callable[[], None] | None:
        """The release of the watchers held for --script, for the run of that script."""
        release, self.startup_hold = self.startup_hold, None
        return release

    def hold_watchers(self) -> Callable[[], None]:
        """Keep every wire event from /expect, /when and --on-connect until the returned
        function is called (once is enough): a script's rules are then in place before the
        first byte of any connection is examined, whenever that byte arrived."""
        released = threading.Event()
        with self._watching:
            self._holds += 1

        def release() -> None:
            with self._watching:
                if released.is_set():
                    return
                released.set()
                self._holds -= 1
                if self._holds or self._replaying:
                    return
                self._replaying = True
            # Outside the lock: an observer may send (a /when reply), which waits on the I/O
            # thread, which may be posting. What is posted meanwhile queues behind.
            while True:
                with self._watching:
                    # Empty, or a held Connected started an --on-connect script: stop here.
                    if not self._held or self._holds:
                        self._replaying = False
                        return
                    event = self._held.pop(0)
                for observer in self.observers:
                    observer(event)

        return release

    def _note_open(self, event: Event, at: float) -> None:
        """What a log started now must begin with: the listener and the open connections
        (so `netrepl export` knows their addresses)."""
        if isinstance(event, Listening):
            self._open_records.clear()
            self._open_records[None] = (event, at)
        elif isinstance(event, Connected):
            self._open_records[event.conn] = (event, at)
        elif isinstance(event, Closed):
            self._open_records.pop(event.conn, None)

    def _report_failure(self, failure: str | None) -> None:
        if failure is not None and failure not in self._reported:
            self._reported.add(failure)
            self._show(Noticed(failure, "error"))

    # ---- state, for the toolbar and the batch driver

    @property
    def connected(self) -> bool:
        """There is someone to send to right now."""
        return self.transport is not None and self.transport.can_send

    @property
    def state(self) -> str:
        return self.transport.state if self.transport is not None else "not connected"

    @property
    def address_label(self) -> str:
        transport = self.transport
        if transport is not None:
            return f"{transport.endpoint.kind} {transport.address}"
        return self.endpoint.label if self.endpoint else "-"

    @property
    def current_target(self) -> Target:
        if self.target is not None:
            return self.target
        return self.transport.default_target() if self.transport is not None else "all"

    # ---- operations

    def submit(self, line: str) -> None:
        """Handle one line as typed: a command, or data to send. Raises NetreplError."""
        if line.startswith("/") and not line.startswith("//"):
            command, args = REGISTRY.parse(line)
            command.run(self, args)
            return
        if line.startswith("//"):
            line = line[1:]
        self.send_built(
            lambda context: self.payload(line, context),
            as_hex=self.settings.input_mode == "hex",
        )

    def payload(self, line: str, context: SendContext) -> bytes:
        """The bytes a data line stands for, in the current input mode. Raises UsageError."""
        payload = build_payload(
            line,
            input_mode=self.settings.input_mode,
            encoding=self.settings.view.encoding,
            escapes=self.settings.escapes,
            eol=self.settings.eol,
            context=context,
        )
        if not payload:
            raise UsageError("nothing to send: empty line and /eol none")
        return payload

    def send_built(
        self,
        build: Callable[[SendContext], bytes],
        *,
        as_hex: bool,
        target: Target | None = None,
    ) -> None:
        """Build a payload (its placeholders see this send's number) and send it, as one step:
        two lines sent at once (/every beside typing, a /when reply) never share a number."""
        with self._send_lock:
            self.send(build(self.send_context()), as_hex=as_hex, target=target)

    def send_context(self) -> SendContext:
        """What placeholders see: this send's number (from 1), and files read from disk."""
        return SendContext(counter=self.sends + 1, read_file=read_payload_file)

    def send(self, data: bytes, *, as_hex: bool, target: Target | None = None) -> None:
        if target is None and self.target_left:
            raise SendError(
                f"#{self.target} has left: nothing sent (/to all, or /to N; /clients lists them)"
            )
        self._wait_for_recipient()
        if self.transport is None:
            raise SendError("not connected (/reconnect or /connect HOST PORT)")
        with self._send_lock:
            self.transport.send(data, target or self.current_target, as_hex=as_hex)
            self.sends += 1

    def _wait_for_recipient(self) -> None:
        """Batch mode: a send waits for someone to go to (a listener's first client, a
        reconnecting client) rather than fail, as a person at the prompt would wait. Not on
        an I/O loop's thread (an automatic reply), which must never wait."""
        transport = self.transport
        if not self.settings.batch or transport is None or transport.loop.in_loop():
            return
        if isinstance(self.current_target, tuple):
            return  # an address (UDP /to HOST:PORT) needs nobody to have come first
        while transport.awaiting_peer and not self.cancel.is_set():
            transport.wait_for(lambda: not transport.awaiting_peer, CANCEL_POLL_SECONDS)

    def open(self, endpoint: Endpoint) -> None:
        """Close what is open and open `endpoint`. Raises ConnectError or UsageError."""
        self.close()
        self.endpoint = endpoint
        self.target = None
        self.target_left = False
        with self._logging:
            self._open_records.clear()
        transport = open_transport(endpoint, self.post, self._ids, self.cancel)
        with self._opened:
            self.transport = transport
            self._opened.notify_all()

    def connect(self, host: str, port: int | str) -> None:
        """Connect to HOST PORT with the current transport options (as a client); its kind
        decides what that means (registry.readdress)."""
        self.open(readdress(self.endpoint or Endpoint(), host, port))

    def reconnect(self) -> None:
        if self.endpoint is None:
            raise UsageError("nothing to reconnect to: use /connect HOST PORT")
        self.open(self.endpoint)

    def close(self) -> None:
        """Close the transport; it stays, closed, for the toolbar's totals and /reconnect."""
        if self.transport is not None:
            self.transport.close()

    @property
    def listening(self) -> bool:
        return self.endpoint is not None and self.endpoint.listen

    def set_target(self, target: Target) -> None:
        if not self.listening:
            raise UsageError("/to: only a listening netrepl (-l) has several peers to choose from")
        if isinstance(target, tuple) and self.endpoint and self.endpoint.protocol != "udp":
            raise UsageError("/to HOST:PORT is for UDP; for a TCP client use /to N (/clients)")
        if isinstance(target, int) and target not in {peer.conn for peer in self.peers()}:
            raise UsageError(f"/to: no client #{target} (/clients lists them)")
        self.target = target
        self.target_left = False

    def peers(self) -> list[PeerInfo]:
        return self.transport.peers() if self.transport is not None else []

    def send_eof(self) -> None:
        if self.transport is None:
            raise SendError("not connected: nothing to half-close")
        self.transport.send_eof(self.current_target)

    def kick(self, conn: int) -> None:
        if self.transport is None:
            raise UsageError("/kick: not listening")
        self.transport.kick(conn)

    def show_certificates(self, conn: int | None) -> None:
        if self.transport is None:
            raise UsageError("/cert: not connected")
        chain = self.transport.chain(conn)
        self.note("\n".join(certificate_lines(chain)))

    def set_view_name(self, name: str) -> None:
        if name == "raw" and not self.settings.batch:
            raise UsageError("the raw view writes bytes to stdout unchanged: batch mode only")
        self._set_view(apply_view_name(self.settings.view, name))

    def set_encoding(self, name: str) -> None:
        try:
            view = apply_encoding(self.settings.view, name)
        except ValueError as error:
            raise UsageError(f"/encoding: {error}") from None
        self._set_view(view)

    def _set_view(self, view: View) -> None:
        self.settings.view = view
        self.post(ViewChanged(view))

    # ---- display settings that travel with the data (ViewChanged, PauseChanged)

    def set_timestamps(self, mode: TimeMode) -> None:
        self._set_view(dataclasses.replace(self.settings.view, timestamps=mode))

    def set_framing(self, framing: Framing) -> None:
        self._set_view(dataclasses.replace(self.settings.view, framing=framing))

    def pause(self, paused: bool) -> None:
        kept_in = self.log.path if self.log is not None else None
        self.post(PauseChanged(paused, time.time(), kept_in))

    def begin(self, startup: Startup) -> None:
        """Open the files the command line names. Raises UsageError (nothing half-open)."""
        try:
            if startup.log is not None:
                self.start_log(startup.log)
            if startup.capture is not None:
                self.start_capture(startup.capture)
            for script in (startup.script, startup.on_connect):
                if script is not None:
                    check_readable(script)  # a missing script is a usage error before connecting
        except UsageError:
            self.close_files()
            raise
        self.on_connect = startup.on_connect
        self.presets = dict(startup.presets)
        if startup.script is not None:
            self.startup_hold = self.hold_watchers()

    # ---- keeping everything

    def start_log(self, path: str) -> None:
        log = TranscriptLog(path)
        with self._logging:
            # A log started mid-connection says first who is connected, and since when.
            for event, at in self._open_records.values():
                log.write(event, at)
            self.stop_log()
            self.log = log

    def stop_log(self) -> str | None:
        log, self.log = self.log, None
        if log is None:
            return None
        log.close()
        self._report_failure(log.failed)
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
        self._report_failure(capture.failed)
        return capture.path

    def close_files(self) -> None:
        self.stop_log()
        self.stop_capture()

    # ---- scripts, waiting, answering

    def submit_typed(self, line: str) -> None:
        """A line the user typed (or piped): recorded by /record, then handled."""
        recording = self.recording
        if recording is not None and not line.startswith("/record"):
            recording.write(line)
            self._report_failure(recording.failed)
        self.submit(line)

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

    def expect(self, pattern: str, timeout: float, *, hex: bool = False, column: int = 1) -> None:
        """Wait until what arrived since the last send matches. Raises ExpectTimeout.
        `column`: where a hex pattern starts in the typed line, for its errors."""
        encoding = self.settings.view.encoding
        compiled = (
            compile_hex_pattern(pattern, column) if hex else compile_text_pattern(pattern, encoding)
        )
        match = self.expect_buffer.wait(compiled, timeout, self.cancel, pattern)
        shown = quote(decode_complete(match.group(), encoding))
        self.post(Noticed(f"expect matched: {shown}", "status"))

    def sleep(self, seconds: float) -> None:
        if self.cancel.wait(seconds):
            raise NetreplError(f"sleep {seconds:g}: interrupted")

    def send_file(self, path: str, chunk: int, delay: float) -> None:
        """/sendfile: a file in pieces of `chunk` bytes, `delay` seconds apart."""
        file, total = open_to_send(path)
        with file:
            pieces = iter(lambda: file.read(chunk), b"")
            self.send_stream(pieces, f"sendfile {os.path.basename(path)}", total, delay=delay)

    def send_stream(
        self, pieces: Iterable[bytes], label: str, total: int | None, *, delay: float = 0.0
    ) -> None:
        """Send `pieces` as one payload to the current target, with progress, and say how it
        ended in one line. Each recipient gets all of it or a contiguous prefix (a client that
        stops reading is left out of the rest); Ctrl-C stops it at once; the counts are what
        reached each socket. An error reading the pieces (OSError) ends it as failed."""
        self._wait_for_recipient()
        if self.transport is None:
            raise SendError("not connected (/reconnect or /connect HOST PORT)")
        delivery = self.transport.deliver(self.current_target)
        started = time.monotonic()
        last_shown = 0.0

        def show_progress() -> None:
            # Also while waiting for a peer to read: the bar says it is stuck, not dead.
            nonlocal last_shown
            now = time.monotonic()
            if now - last_shown >= PROGRESS_SECONDS:
                last_shown = now
                self.post(Progress(label, delivery.handed, total, now - started))

        outcome = "sent"
        try:
            for piece in pieces:
                if self.cancel.is_set():
                    raise SendInterrupted("interrupted")
                # Not counted by {counter}: that numbers lines, not the pieces of a payload.
                delivery.write(piece, as_hex=False, waiting=show_progress)
                show_progress()
                if delay and self.cancel.wait(delay):
                    raise SendInterrupted("interrupted")
            delivery.finish(self.cancel, show_progress)
        except SendInterrupted:
            outcome = "interrupted"
            delivery.withdraw()
        except NetreplError as error:
            outcome = f"failed: {error}"
        except OSError as error:  # the source itself (a device that fails, a vanished mount)
            outcome = f"failed: cannot read: {error.strerror or error}"
            delivery.withdraw()
        finally:
            elapsed = time.monotonic() - started
            self.post(
                Progress(
                    label,
                    delivery.handed,
                    total,
                    elapsed,
                    finished=True,
                    outcome=outcome,
                    detail=delivery.outcome(),
                )
            )

    def repeat(self, count: int, interval: float, line: str) -> None:
        """Handle `line` `count` times, `interval` seconds apart (Ctrl-C stops it)."""
        for index in range(count):
            if (index and interval and self.cancel.wait(interval)) or self.cancel.is_set():
                raise NetreplError(f"/repeat interrupted after {index} of {count}")
            self.submit(line)

    def send_preset(self, name: str) -> None:
        line = self.presets.get(name)
        if line is None:
            known = ", ".join(sorted(self.presets)) or "none: define them in the config file"
            raise UsageError(f"/p: no preset {name!r} (known: {known})")
        self.submit(line)

    def reply_payload(self, line: str, hex: bool, context: SendContext) -> bytes:
        """The bytes of a /when reply: text with escapes and the end of line, or hex."""
        return build_payload(
            line,
            input_mode="hex" if hex else "text",
            encoding=self.settings.view.encoding,
            escapes=True,
            eol=self.settings.eol,
            context=context,
        )

    def _answer(self, conn: int, line: str, hex: bool) -> None:
        """An automatic reply (/when) to connection `conn`."""
        self.send_built(
            lambda context: self.reply_payload(line, hex, context), as_hex=hex, target=conn
        )

    def _after_connect(self, event: Event) -> None:
        script = self.on_connect
        if script is None or not isinstance(event, Connected) or event.accepted:
            return
        with self._opened:
            self._on_connect_running += 1
        # Called inside `post`: what this connection sends next waits for the script's rules.
        release = self.hold_watchers()
        # Its own thread: the script may wait (/expect) while data keeps arriving here.
        threading.Thread(
            target=self._run_on_connect,
            args=(script, release),
            name="netrepl-on-connect",
            daemon=True,
        ).start()

    def _run_on_connect(self, script: str, release: Callable[[], None]) -> None:
        from netrepl.script import run_script

        try:
            # Connected is announced from inside open(), before the session holds the
            # transport: the script's first line must not find it missing.
            with self._opened:
                self._opened.wait_for(
                    lambda: self.transport is not None and self.transport.can_send, 10.0
                )
            run_script(self, script, release)
        except NetreplError as error:
            self.on_connect_failure = error
            self.error(f"--on-connect {error}")
        finally:
            release()
            with self._opened:
                self._on_connect_running -= 1
                self._opened.notify_all()

    def wait_on_connect(self) -> None:
        """Batch mode: let a running --on-connect script finish before the next line."""
        with self._opened:
            self._opened.wait_for(lambda: self._on_connect_running == 0)

    def error(self, text: str) -> None:
        self.post(Noticed(text, "error"))

    def close_all(self) -> None:
        """At exit: stop periodic sends, close the connection and every file."""
        self.jobs.close()
        self.close()
        self.close_files()
        self.stop_recording()

    def note(self, text: str) -> None:
        """Command output for the user (help, current settings)."""
        self.post(Noticed(text, "info"))
