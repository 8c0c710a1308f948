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
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from netrepl.commands import REGISTRY
from netrepl.errors import SendError, UsageError
from netrepl.events import Event, Noticed, PauseChanged, ViewChanged
from netrepl.framing import Framing
from netrepl.log import CaptureFile, SessionMemory, TranscriptLog
from netrepl.payload import InputMode, SendContext, build_payload
from netrepl.render import certificate_lines
from netrepl.transcript import WIRE_EVENTS
from netrepl.transport import Endpoint, PeerInfo, Target, open_transport, parse_port
from netrepl.transport.base import Transport
from netrepl.view import TimeMode, View, apply_encoding, apply_view_name

if TYPE_CHECKING:
    from netrepl.cli import Startup

# A {file:PATH} placeholder reads the whole file into one payload; /sendfile streams bigger.
PAYLOAD_FILE_LIMIT = 16 * 1024 * 1024


def read_payload_file(path: str) -> bytes:
    """The bytes of `path` for `{file:PATH}`, or a UsageError saying why not."""
    try:
        with open(os.path.expanduser(path), "rb") as file:
            data = file.read(PAYLOAD_FILE_LIMIT + 1)
    except OSError as error:
        raise UsageError(f"cannot read {path}: {error.strerror or error}") from None
    if len(data) > PAYLOAD_FILE_LIMIT:
        raise UsageError(f"{path} is over 16 MiB: send it with /sendfile")
    return data


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
        self.observers: list[Callable[[Event], None]] = []
        """Called with every wire event before the display gets it (expect, auto-replies)."""
        self._reported: set[str] = set()
        self.endpoint = endpoint
        """What /reconnect opens again: the last endpoint opened (or given)."""
        self.transport: Transport | None = None
        self.target: Target | None = None
        """Where typed data goes (/to); None: the transport's default."""
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
            log, capture = self.log, self.capture
            if log is not None:
                log.write(event, at)
                self._report_failure(log.failed)
            if capture is not None:
                capture.write(event)
                self._report_failure(capture.failed)
            for observer in self.observers:
                observer(event)
        self._show(event)

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
            address = getattr(transport, "address", None)
            label = address if isinstance(address, str) else transport.endpoint.label
            return f"{transport.endpoint.kind} {label}"
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
        self.send(self.payload(line), as_hex=self.settings.input_mode == "hex")

    def payload(self, line: str) -> bytes:
        """The bytes a data line stands for now, in the current input mode. Raises UsageError."""
        payload = build_payload(
            line,
            input_mode=self.settings.input_mode,
            encoding=self.settings.view.encoding,
            escapes=self.settings.escapes,
            eol=self.settings.eol,
            context=self.send_context(),
        )
        if not payload:
            raise UsageError("nothing to send: empty line and /eol none")
        return payload

    def send_context(self) -> SendContext:
        """What placeholders see: this send's number (from 1), and files read from disk."""
        return SendContext(counter=self.sends + 1, read_file=read_payload_file)

    def send(self, data: bytes, *, as_hex: bool) -> None:
        if self.transport is None:
            raise SendError("not connected (/reconnect or /connect HOST PORT)")
        self.transport.send(data, self.current_target, as_hex=as_hex)
        self.sends += 1

    def open(self, endpoint: Endpoint) -> None:
        """Close what is open and open `endpoint`. Raises ConnectError or UsageError."""
        self.close()
        self.endpoint = endpoint
        self.target = None
        self.transport = open_transport(endpoint, self.post, self._ids, self.cancel)

    def connect(self, host: str, port: int | str) -> None:
        """Connect to HOST PORT with the current transport options (as a client)."""
        base = self.endpoint or Endpoint()
        protocol = "tcp" if base.protocol == "unix" else base.protocol
        number = parse_port(port, protocol) if isinstance(port, str) else port
        self.open(
            dataclasses.replace(
                base, protocol=protocol, host=host, port=number, path=None, listen=False
            )
        )

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
        self.target = target

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
        except UsageError:
            self.close_files()
            raise

    # ---- keeping everything

    def start_log(self, path: str) -> None:
        log = TranscriptLog(path)
        self.stop_log()
        self.log = log

    def stop_log(self) -> str | None:
        log, self.log = self.log, None
        if log is None:
            return None
        log.close()
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
        return capture.path

    def close_files(self) -> None:
        self.stop_log()
        self.stop_capture()

    def note(self, text: str) -> None:
        """Command output for the user (help, current settings)."""
        self.post(Noticed(text, "info"))
