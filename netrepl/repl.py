"""The interactive front end: prompt_toolkit wired to a Session and the Display.

Thin on purpose: it reads lines (with history, completion from the command registry, and a
toolbar), echoes them through the display, and hands them to `Session.submit`. It never
touches a socket and never writes to the terminal except through the display's sink.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import queue
import sys
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TextIO

from prompt_toolkit import PromptSession
from prompt_toolkit.application import Application
from prompt_toolkit.auto_suggest import AutoSuggestFromHistory
from prompt_toolkit.buffer import Buffer
from prompt_toolkit.completion import CompleteEvent, Completer, Completion
from prompt_toolkit.document import Document
from prompt_toolkit.formatted_text import ANSI, StyleAndTextTuples, to_formatted_text
from prompt_toolkit.history import FileHistory, History, InMemoryHistory
from prompt_toolkit.key_binding import KeyBindings, KeyPressEvent
from prompt_toolkit.patch_stdout import StdoutProxy

from netrepl.commands import REGISTRY, describe_target
from netrepl.display import AnsiFormatter, Display, TerminalSink
from netrepl.errors import NetreplError
from netrepl.events import Event, Noticed, Submitted
from netrepl.options import Startup
from netrepl.render import Renderer
from netrepl.session import Session, Settings
from netrepl.transport import Endpoint

EXIT_INTERNAL = 4
"""netrepl itself failed (a bug): the line on stderr says where."""
# A line that runs longer than this is shown in the toolbar, with how to stop it.
SLOW_LINE_SECONDS = 0.4
# Lines above the prompt are written at most this often; prompt_toolkit's default (0.2 s)
# would make a steady trickle of lines look laggy.
WRITE_INTERVAL = 0.03


def state_dir() -> Path:
    """Where netrepl keeps history: $XDG_STATE_HOME/netrepl (~/.local/state/netrepl)."""
    if sys.platform == "win32":
        base = Path(os.environ.get("LOCALAPPDATA", Path.home() / "AppData" / "Local"))
    else:
        base = Path(os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state")
    return base / "netrepl"


def open_history() -> History:
    """History persisted in the state directory, private to the user (it may hold secrets)."""
    try:
        directory = state_dir()
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / "history"
        path.touch(mode=0o600, exist_ok=True)
        return FileHistory(str(path))
    except OSError:
        return InMemoryHistory()  # a read-only home must not stop the tool from working


class CommandCompleter(Completer):
    """Completes slash commands and their arguments, straight from the registry."""

    def __init__(self, session: Session) -> None:
        self._session = session

    def get_completions(
        self, document: Document, complete_event: CompleteEvent
    ) -> Iterable[Completion]:
        text = document.text_before_cursor
        if not text.startswith("/") or text.startswith("//"):
            return
        name, space, rest = text[1:].partition(" ")
        if not space:
            for candidate in sorted(REGISTRY.names()):
                if candidate.startswith(name):
                    command = REGISTRY.find(candidate)
                    yield Completion(
                        "/" + candidate, start_position=-len(text), display_meta=command.summary
                    )
            return
        command = REGISTRY.get(name)
        if command is None:
            return
        words = rest.split()
        current = "" if not words or rest.endswith(" ") else words[-1]
        index = len(words) if not current else len(words) - 1
        if index >= len(command.params):
            return
        for value in command.params[index].completions(self._session):
            if value.startswith(current):
                yield Completion(value, start_position=-len(current))


def prompt_text(session: Session) -> str:
    """`> `, or with a chosen target and the input mode: `#2> `, `hex> `, `#2 hex> `;
    `#2 (left)> ` once that client has gone."""
    parts = []
    target = session.target
    if target is not None and session.listening:
        parts.append(
            f"#{target}" if isinstance(target, int) else describe_target(target, short=True)
        )
        if session.target_left:
            parts.append("(left)")
    if session.settings.input_mode == "hex":
        parts.append("hex")
    return " ".join(parts) + "> "


def toolbar_text(session: Session, runner: LineRunner | None = None) -> str:
    settings = session.settings
    view = settings.view
    shown = view.encoding if view.mode == "text" else f"{view.mode} ({view.encoding})"
    transport = session.transport
    received = transport.received if transport else 0
    sent = transport.sent if transport else 0
    busy = runner.slow_line() if runner is not None else None
    state = f"busy: {busy[:30]} (Ctrl-C stops it)" if busy is not None else session.state
    return (
        f" {session.address_label}  {state}  │  view {shown}  input {settings.input_mode}"
        f"  eol {settings.eol}  │  rx {received:,} B  tx {sent:,} B "
    )


class LineRunner:
    """Runs entered lines one at a time on a thread of its own, in the order entered.

    The prompt stays alive meanwhile: typing goes on while a slow connect or a send to a
    peer that is not reading waits, and Ctrl-C can stop it (`interrupt`).
    """

    def __init__(
        self, session: Session, post: Callable[[Event], None], on_quit: Callable[[], None]
    ) -> None:
        self._session = session
        self._post = post
        self._on_quit = on_quit
        self._lines: queue.SimpleQueue[str | None] = queue.SimpleQueue()
        self.busy: str | None = None
        """The line running now, if any."""
        self._busy_since = 0.0
        self._thread = threading.Thread(target=self._run, name="netrepl-lines", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def submit(self, line: str) -> None:
        self._lines.put(line)

    def slow_line(self) -> str | None:
        """The running line once it has taken long enough to be worth telling (a connect,
        a wait): most lines finish before the toolbar could show them, and would flicker."""
        busy = self.busy
        if busy is None or time.monotonic() - self._busy_since < SLOW_LINE_SECONDS:
            return None
        return busy

    def interrupt(self) -> bool:
        """Stop the running line (Ctrl-C); False when nothing runs."""
        if self.busy is None:
            return False
        self._session.cancel.set()
        return True

    def stop(self, timeout: float = 5.0) -> None:
        self._session.cancel.set()
        self._lines.put(None)
        self._thread.join(timeout)

    def _run(self) -> None:
        while (line := self._lines.get()) is not None:
            if self._session.quit_requested:
                continue  # lines typed after /quit are not run
            self._busy_since = time.monotonic()
            self.busy = line
            self._session.cancel.clear()
            try:
                self._session.submit_typed(line)
            except NetreplError as error:
                self._post(Noticed(str(error), "error"))
            except Exception as error:  # a bug must not kill the session: show it, go on
                self._post(Noticed(f"internal error: {error!r}", "error"))
            finally:
                self.busy = None
                self._session.cancel.clear()
            if self._session.quit_requested:
                self._on_quit()


class AboveThePrompt:
    """Where the display's frames go: written above the running prompt, on the prompt's own
    thread, and `write` returns once the frame is out.

    Not prompt_toolkit's StdoutProxy, for two measured reasons: its queue grows without
    bound on a slow terminal (a flood then kept drawing for 40 s after it ended), and its
    run_in_terminal switches the tty to cooked mode for every write, so keys typed during a
    flood were echoed by the tty and Backspaces lost. Waiting here slows the display thread
    to the terminal's pace, and its own skipping then drops what cannot be shown.
    """

    def __init__(self, fallback: TextIO) -> None:
        self.app: Application[str] | None = None
        self._fallback = fallback

    def write(self, text: str) -> None:
        app = self.app
        loop = app.loop if app is not None else None
        if app is None or loop is None or not app.is_running:
            self._fallback.write(text)
            self._fallback.flush()
            return
        written = threading.Event()

        async def frame() -> None:
            try:
                if app.is_running:
                    await _write_above(app, text)
                else:
                    self._fallback.write(text)
                    self._fallback.flush()
            finally:
                written.set()

        asyncio.run_coroutine_threadsafe(frame(), loop)
        # In slices: if the prompt ends meanwhile, the frame never runs, and we go on.
        while not written.wait(0.1) and app.is_running:
            pass

    def flush(self) -> None:
        pass  # every write is complete when it returns


async def _write_above(app: Application[str], text: str) -> None:
    """On the prompt's event loop: erase the prompt, write, draw it again below. What
    prompt_toolkit's in_terminal does, but without leaving raw mode (see AboveThePrompt)."""
    renderer = app.renderer
    if app.output.responds_to_cpr:
        # The layout waits on the terminal's answer about the cursor; erasing before it came
        # would erase from a row the renderer no longer knows.
        await renderer.wait_for_cpr_responses()
    renderer.erase()
    app.output.write_raw(text)
    app.output.flush()
    renderer.reset()
    renderer.request_absolute_cursor_position()
    app._redraw()


def key_bindings(runner: LineRunner, post: Callable[[Event], None]) -> KeyBindings:
    bindings = KeyBindings()

    @bindings.add("c-c")
    @bindings.add("<sigint>")
    def _interrupt(event: KeyPressEvent) -> None:
        # Clear the line; or stop what runs; never leave (Ctrl-D and /quit do).
        buffer = event.app.current_buffer
        if buffer.text:
            buffer.reset()
        elif runner.interrupt():
            post(Noticed("interrupting…", "status"))

    return bindings


def run_interactive(
    endpoint: Endpoint,
    settings: Settings,
    startup: Startup,
    banner: str | None = None,
) -> int:
    """Connect (or listen) and run the prompt until /quit or Ctrl-D. Raises ConnectError if
    the first connection fails (the caller turns it into exit status 1)."""
    proxy = StdoutProxy(raw=True, sleep_between_writes=WRITE_INTERVAL)
    prompt_session: PromptSession[str] | None = None

    def repaint() -> None:
        if prompt_session is not None:
            prompt_session.app.invalidate()

    above = AboveThePrompt(sys.__stdout__)
    sink = TerminalSink(above, AnsiFormatter(), repaint)

    def leave() -> None:
        app = prompt_session.app if prompt_session is not None else None
        if app is not None and app.is_running and app.loop is not None:
            app.loop.call_soon_threadsafe(app.exit)

    # Nothing received could be shown any more: end the session rather than run blind.
    display = Display(Renderer(settings.view), sink, keep_up=True, on_failure=lambda _: leave())
    session = Session(settings, display.post)

    runner = LineRunner(session, display.post, leave)

    def message() -> StyleAndTextTuples:
        fragments: StyleAndTextTuples = []
        if sink.progress_ansi:
            fragments.extend(to_formatted_text(ANSI(sink.progress_ansi + "\n")))
        if sink.open_line_ansi:
            fragments.extend(to_formatted_text(ANSI(sink.open_line_ansi + "\n")))
        fragments.append(("bold", prompt_text(session)))
        return fragments

    def accept(buffer: Buffer) -> bool:
        # The prompt keeps running while the line is handled, so everything the display
        # writes goes above it through run_in_terminal and never races a redraw.
        display.post(Submitted(prompt_text(session), buffer.text))
        runner.submit(buffer.text)
        return False  # clear the line, keep the prompt

    display.start()
    with proxy, contextlib.redirect_stdout(proxy), contextlib.redirect_stderr(proxy):  # type: ignore[type-var]
        if banner:
            display.post(Noticed(banner, "info"))
        try:
            session.begin(startup)
            session.open(endpoint)
        except NetreplError:
            session.close_files()
            display.stop()
            raise
        prompt_session = PromptSession(
            message=message,
            bottom_toolbar=lambda: toolbar_text(session, runner),
            completer=CommandCompleter(session),
            history=open_history(),
            auto_suggest=AutoSuggestFromHistory(),
            key_bindings=key_bindings(runner, display.post),
            erase_when_done=True,
            refresh_interval=0.5,
        )
        prompt_session.default_buffer.accept_handler = accept
        above.app = prompt_session.app
        runner.start()
        if startup.script is not None:
            runner.submit(f"/run {startup.script}")
        try:
            if display.failure is None:
                prompt_session.prompt()
        except EOFError:
            pass  # Ctrl-D on an empty line
        finally:
            runner.stop()
            session.close_all()
            display.stop()
    if display.failure is not None:
        print(f"netrepl: {display.failure}", file=sys.__stderr__, flush=True)
        return EXIT_INTERNAL
    return 0
