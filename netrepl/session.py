"""The state of one netrepl session and the operations every front end calls.

The interactive REPL and batch mode both hand each line to `Session.submit`, so a command
behaves the same typed or piped. The session owns the settings and the current transport; it
reports through `post` (to the display) and raises NetreplError subclasses for the caller to
show, never printing anything itself.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from netrepl.codec import decode_complete, quote
from netrepl.errors import NetreplError, SendError, UsageError
from netrepl.events import (
    Closed,
    Event,
    Noticed,
    PauseChanged,
    ViewChanged,
)
from netrepl.files import check_readable, read_at_most
from netrepl.framing import Framing
from netrepl.log import SessionFiles, SessionMemory
from netrepl.payload import EOLS, InputMode, SendContext, build_payload
from netrepl.records import record, replace
from netrepl.render import certificate_lines
from netrepl.script import ConnectScript, PeriodicJobs
from netrepl.transcript import WIRE_EVENTS
from netrepl.transport import (
    CANCEL_POLL_SECONDS,
    Endpoint,
    FlowInfo,
    PeerInfo,
    Target,
    open_transport,
)
from netrepl.transport.base import Transport
from netrepl.transport.registry import readdress, readdress_url
from netrepl.transport.target import describe_target
from netrepl.view import TimeMode, View, apply_encoding, apply_view_name
from netrepl.watch import (
    AutoReplies,
    ExpectBuffer,
    Watchers,
    compile_hex_pattern,
    compile_text_pattern,
)

if TYPE_CHECKING:
    from netrepl.interception import RelayControls  # a relay's alone: not at every start
    from netrepl.options import Startup

# A {file:PATH} placeholder reads the whole file into one payload; /sendfile streams bigger.
PAYLOAD_FILE_LIMIT = 16 * 1024 * 1024


def read_payload_file(path: str) -> bytes:
    """The bytes of `path` for `{file:PATH}`, or a UsageError saying why not."""
    return read_at_most(path, PAYLOAD_FILE_LIMIT, "send it with /sendfile")


@record
class Settings:
    """The session's settings that commands change: view, end of line, input mode."""

    view: View
    eol: str = "lf"
    escapes: bool = True
    input_mode: InputMode = "text"
    batch: bool = False
    """Batch mode (stdin not a terminal): allows the raw view."""


class Session:
    """One netrepl session: the settings, the current transport, and the operations that
    every front end (the REPL, batch mode, scripts) calls the same way.

    Arguments: `settings`, changed only through the session's methods; `display`, where
    every event ends up (the display's queue), called on whichever thread posts;
    `endpoint`, what `/reconnect` opens when nothing was opened yet.

    Who calls what: a front end's line thread calls `submit` (and the commands it runs call
    the other methods), one line at a time; transports call `post` from their I/O threads;
    `cancel` is set by Ctrl-C from the REPL's thread. `post` is thread-safe; it hands every
    wire event first to the files (`files`), then to the watchers (`watchers`), then to the
    display. The session never prints: it posts, or raises NetreplError for its caller.
    """

    def __init__(
        self,
        settings: Settings,
        display: Callable[[Event], None],
        endpoint: Endpoint | None = None,
    ) -> None:
        self.settings = settings
        self._display = display
        self.files = SessionFiles(lambda failure: self._display(Noticed(failure, "error")))
        self.memory = SessionMemory()
        self.expect_buffer = ExpectBuffer()
        self.replies = AutoReplies(self._answer, self.error)
        self.jobs = PeriodicJobs(self.submit, self.error)
        self.on_connect = ConnectScript(self)
        """--on-connect: a script run after every connect and reconnect."""
        self.watchers = Watchers(
            [self.expect_buffer.observe, self.replies.observe, self.on_connect.observe]
        )
        """Called with every wire event before the display gets it."""
        self.presets: dict[str, str] = {}
        """Named lines from the config file, sent with /p NAME."""
        self.script_depth = 0
        self._send_lock = threading.RLock()
        self.startup_hold: Callable[[], None] | None = None
        """Releases the watchers held for --script, once that script reaches a line that
        sends or waits (see `Watchers.hold`)."""
        self._opened = threading.Condition()
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
            self.files.write(event, at)
            self.watchers.observe(event)
        self._display(event)
        if isinstance(event, Closed) and self._target_has_left(event.conn):
            self.target_left = True
            self._display(
                Noticed(
                    f"{describe_target(self.target)} has left: typed lines go nowhere until"
                    " you choose (/to all, or /to N; /clients lists them)",
                    "status",
                )
            )

    def _target_has_left(self, conn: int) -> bool:
        target, transport = self.target, self.transport
        if target is None or transport is None or not self.listening:
            return False
        return transport.has_left(target, conn)

    def take_startup_hold(self) -> Callable[[], None] | None:
        """The release of the watchers held for --script, for the run of that script."""
        release, self.startup_hold = self.startup_hold, None
        return release

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
            upstream = transport.endpoint.upstream
            relaying = f" → {upstream.label}" if upstream is not None else ""
            return f"{transport.endpoint.kind} {transport.address}{relaying}"
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
            # The command groups load with the first command: a pipe of data lines (a
            # one-shot `printf 'PING\r\n' | netrepl`) never pays for them (issue 14).
            from netrepl.commands import REGISTRY

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

    def control_payload(self, text: str) -> bytes:
        """The bytes of a control frame's data (/ping DATA): text with escapes, no end of
        line, whatever the input mode."""
        return build_payload(
            text, input_mode="text", encoding=self.settings.view.encoding, escapes=True, eol="none"
        )

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
        self.wait_for_recipient()
        if self.transport is None:
            raise SendError("not connected (/reconnect or /connect HOST PORT)")
        with self._send_lock:
            self.transport.send(data, target or self.current_target, as_hex=as_hex)
            self.sends += 1

    def wait_for_recipient(self) -> None:
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
        self.files.forget_connections()
        # A relay's first client waits for the --script's /hold and /rewrite too.
        flows_wait = self.startup_hold is not None
        transport = open_transport(
            endpoint, self.post, self._ids, self.cancel, flows_wait=flows_wait
        )
        transport.set_framing(self.settings.view.framing)
        if self.startup_hold is not None:
            release_watchers, start_flows = self.startup_hold, transport.flow_starter()

            def release() -> None:
                release_watchers()
                start_flows()

            self.startup_hold = release
        with self._opened:
            self.transport = transport
            self._opened.notify_all()

    def connect(self, host: str, port: int | str) -> None:
        """Connect to HOST PORT with the current transport options (as a client); its kind
        decides what that means (registry.readdress)."""
        self.open(readdress(self.endpoint or Endpoint(), host, port))

    def connect_address(self, address: str) -> None:
        """Connect to an address written in a kind's own form (`ws://HOST/PATH`) with the
        current options."""
        self.open(readdress_url(self.endpoint or Endpoint(), address))

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
        if self.transport is not None:
            self.transport.check_target(target)
        if isinstance(target, int) and target not in {peer.conn for peer in self.peers()}:
            raise UsageError(f"/to: no client #{target} (/clients lists them)")
        self.target = target
        self.target_left = False

    def peers(self) -> list[PeerInfo]:
        return self.transport.peers() if self.transport is not None else []

    def relay(self) -> RelayControls:
        """A relay's holds and rewrites; UsageError for any other transport."""
        if self.transport is None:
            raise UsageError("not relaying (-l PORT --relay HOST:PORT)")
        return self.transport.relay_controls()

    def flows(self) -> list[FlowInfo]:
        """A relay's flows; UsageError for any other transport."""
        if self.transport is None:
            raise UsageError("/flows: not relaying (-l PORT --relay HOST:PORT)")
        return self.transport.flow_list()

    def send_eof(self) -> None:
        if self.transport is None:
            raise SendError("not connected: nothing to half-close")
        self.transport.send_eof(self.current_target)

    def ping(self, payload: bytes) -> None:
        """A WebSocket ping to the current target; UsageError for other transports."""
        if self.transport is None or not self.transport.is_open:
            raise SendError("not connected: no one to ping")
        self.transport.ping(self.current_target, payload)

    def close_with(self, code: int, reason: str) -> None:
        """Close with a WebSocket close frame's code and reason."""
        if self.transport is None or not self.transport.is_open:
            raise UsageError("not connected: nothing to close")
        self.transport.close_with(code, reason)

    def kick(self, conn: int) -> None:
        if self.transport is None:
            raise UsageError("/kick: not listening")
        self.transport.kick(conn)

    def show_certificates(self, conn: int | None) -> None:
        if self.transport is None:
            raise UsageError("/cert: not connected")
        chain = self.transport.chain(conn)
        self.note("\n".join(certificate_lines(chain)))

    # ---- settings of what typed lines send (they apply to the next line)

    def set_input_mode(self, mode: str) -> None:
        if mode not in ("text", "hex"):
            raise UsageError(f"/input: {mode!r} is not one of text, hex")
        self.settings.input_mode = mode  # type: ignore[assignment]

    def set_eol(self, eol: str) -> None:
        if eol not in EOLS:
            raise UsageError(f"/eol: {eol!r} is not one of {', '.join(EOLS)}")
        self.settings.eol = eol

    def set_escapes(self, on: bool) -> None:
        self.settings.escapes = on

    def request_quit(self) -> None:
        """/quit: the front end leaves after the line that asked (a script stops there)."""
        self.quit_requested = True

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
        self._set_view(replace(self.settings.view, timestamps=mode))

    def set_framing(self, framing: Framing) -> None:
        self._set_view(replace(self.settings.view, framing=framing))
        if self.transport is not None:
            self.transport.set_framing(framing)

    def pause(self, paused: bool) -> None:
        log = self.files.log
        kept_in = log.path if log is not None else None
        self.post(PauseChanged(paused, time.time(), kept_in))

    def begin(self, startup: Startup) -> None:
        """Open the files the command line names. Raises UsageError (nothing half-open)."""
        try:
            if startup.log is not None:
                self.files.start_log(startup.log)
            if startup.capture is not None:
                self.files.start_capture(startup.capture)
            for script in (startup.script, startup.on_connect):
                if script is not None:
                    check_readable(script)  # a missing script is a usage error before connecting
        except UsageError:
            self.files.close()
            raise
        self.on_connect.path = startup.on_connect
        self.presets = dict(startup.presets)
        if startup.script is not None:
            self.startup_hold = self.watchers.hold()

    # ---- scripts, waiting, answering

    def submit_typed(self, line: str) -> None:
        """A line the user typed (or piped): recorded by /record, then handled."""
        self.files.record(line)
        self.submit(line)

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
        transport = self.transport
        target = transport.reply_target(conn) if transport is not None else conn
        self.send_built(
            lambda context: self.reply_payload(line, hex, context), as_hex=hex, target=target
        )

    def wait_until_open(self, timeout: float) -> bool:
        """Wait until a transport is in place and can send (Connected is announced from
        inside `open`, before the session holds the transport)."""
        with self._opened:
            return self._opened.wait_for(
                lambda: self.transport is not None and self.transport.can_send, timeout
            )

    def error(self, text: str) -> None:
        self.post(Noticed(text, "error"))

    def close_all(self) -> None:
        """At exit: stop periodic sends, close the connection and every file."""
        self.jobs.close()
        self.close()
        self.files.close()

    def note(self, text: str) -> None:
        """Command output for the user (help, current settings)."""
        self.post(Noticed(text, "info"))
