"""The interactive front end: prompt_toolkit wired to a Session and the Display.

Thin on purpose: it reads lines (with history, completion from the command registry, a
toolbar, pasted lines split as if typed), echoes them through the display, and hands them to
`Session.submit` one at a time. It never touches a socket, and it writes to the terminal only
the display's frames (each in one write, with the prompt drawn again) and the prompt itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import TextIO

import prompt_toolkit.application.application
from prompt_toolkit import PromptSession
from prompt_toolkit.application import Application
from prompt_toolkit.auto_suggest import AutoSuggestFromHistory
from prompt_toolkit.buffer import Buffer
from prompt_toolkit.completion import CompleteEvent, Completer, Completion
from prompt_toolkit.document import Document
from prompt_toolkit.enums import EditingMode
from prompt_toolkit.filters import buffer_has_focus
from prompt_toolkit.formatted_text import ANSI, StyleAndTextTuples, to_formatted_text
from prompt_toolkit.history import FileHistory, History, InMemoryHistory
from prompt_toolkit.key_binding import KeyBindings, KeyPressEvent
from prompt_toolkit.key_binding.bindings.basic import load_basic_bindings
from prompt_toolkit.key_binding.bindings.cpr import load_cpr_bindings
from prompt_toolkit.key_binding.bindings.emacs import (
    load_emacs_bindings,
    load_emacs_search_bindings,
    load_emacs_shift_selection_bindings,
)
from prompt_toolkit.key_binding.bindings.mouse import load_mouse_bindings
from prompt_toolkit.key_binding.key_bindings import (
    ConditionalKeyBindings,
    KeyBindingsBase,
    merge_key_bindings,
)
from prompt_toolkit.keys import Keys
from prompt_toolkit.output import Output
from prompt_toolkit.patch_stdout import StdoutProxy
from prompt_toolkit.renderer import CPR_Support

from netrepl.commands import REGISTRY
from netrepl.display import AnsiFormatter, Display, TerminalSink, screen_rows, text_width
from netrepl.errors import ExitStatus, NetreplError
from netrepl.events import Event, Noticed, PauseChanged, Progress, Submitted
from netrepl.options import Startup
from netrepl.records import record
from netrepl.render import Renderer
from netrepl.session import Session, Settings
from netrepl.transport import Endpoint
from netrepl.transport.target import describe_target

# A line that runs longer than this is shown in the toolbar, with how to stop it.
SLOW_LINE_SECONDS = 0.4
# Lines above the prompt are written at most this often; prompt_toolkit's default (0.2 s)
# would make a steady trickle of lines look laggy.
WRITE_INTERVAL = 0.03
# A line entered while another runs waits its turn; once it has waited this long it is shown
# as queued (a line behind a quick one runs at once and is echoed only then).
QUEUED_AFTER_SECONDS = 0.15
# The completion menu shows at most this many rows, and the prompt reserves rows for it only
# while it is open.
MENU_ROWS = 8
# Synchronized output (DEC mode 2026): a terminal that knows it shows the frame only once it
# is whole; one that does not ignores it.
SYNC_BEGIN, SYNC_END = "\x1b[?2026h", "\x1b[?2026l"


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


class Activity:
    """What the toolbar tells beyond the settings: a running send's progress and whether the
    display is paused, noted from the session's events on their way to the display."""

    def __init__(self, post: Callable[[Event], None]) -> None:
        self._post = post
        self.progress: Progress | None = None
        self.paused = False

    def post(self, event: Event) -> None:
        if isinstance(event, Progress):
            self.progress = None if event.finished else event
        elif isinstance(event, PauseChanged):
            self.paused = event.paused
        self._post(event)


@record(unsafe_hash=True)
class Field:
    """One field of the toolbar; when the width is short, the highest `drop` goes first."""

    text: str
    drop: int


def shorten(text: str, width: int) -> str:
    """`text` cut at a space to fit `width` cells, with an ellipsis (a word is cut only when
    the first one alone is too wide)."""
    if text_width(text) <= width:
        return text
    cut = text[: max(width - 1, 0)]
    while cut and text_width(cut) > width - 1:
        cut = cut[:-1]
    space = cut.rfind(" ")
    return (cut[:space] if space > 0 else cut).rstrip() + "…"


def fit_toolbar(groups: list[list[Field]], width: int) -> str:
    """` a  b  │  c  d ` in `width` cells: the fields that do not fit are left out whole,
    least important first, never cut mid-word (the last one left is shortened at a space)."""
    kept = [list(group) for group in groups]

    def line() -> str:
        shown = ["  ".join(f.text for f in group) for group in kept if group]
        return " " + "  │  ".join(shown) + " "

    while text_width(text := line()) > width:
        fields = [f for group in kept for f in group]
        if len(fields) <= 1:
            if not fields:
                return ""
            only = fields[0]
            return " " + shorten(only.text, width - 2) + " "
        worst = max(fields, key=lambda f: f.drop)
        for group in kept:
            if worst in group:
                group.remove(worst)
                break
    return text


def toolbar_text(
    session: Session,
    runner: LineRunner | None = None,
    activity: Activity | None = None,
    width: int = 1000,
) -> str:
    """The bottom toolbar, fitted to `width`: where and how connected, what runs (a send's
    progress), paused, the view and input settings, the byte counts."""
    settings = session.settings
    view = settings.view
    shown = view.encoding if view.mode == "text" else f"{view.mode} ({view.encoding})"
    transport = session.transport
    received = transport.received if transport else 0
    sent = transport.sent if transport else 0
    where = [Field(session.address_label, 6), Field(session.state, 2)]
    progress = activity.progress if activity is not None else None
    busy = runner.slow_line() if runner is not None else None
    if progress is not None:
        if progress.total is None:  # a device or a pipe: how much so far
            where.append(Field(f"{progress.label} {progress.done:,} B", 0))
        else:
            percent = 100 * progress.done // progress.total if progress.total else 100
            where.append(Field(f"{progress.label} {percent}%", 0))
    elif busy is not None:
        where.append(Field(f"busy: {shorten(busy, 40)}", 0))
    if progress is not None or busy is not None:
        where.append(Field("(Ctrl-C stops it)", 5))
    waiting = runner.waiting if runner is not None else 0
    if waiting:
        where.append(Field(f"+{waiting} queued", 1))
    settings_fields = [
        Field(f"view {shown}", 4),
        Field(f"input {settings.input_mode}", 8),
        Field(f"eol {settings.eol}", 9),
    ]
    if activity is not None and activity.paused:
        settings_fields.insert(1, Field("paused (/resume)", 0))
    counts = [Field(f"rx {received:,} B", 3), Field(f"tx {sent:,} B", 7)]
    return fit_toolbar([where, settings_fields, counts], width)


@record
class _Entered:
    """A line entered at the prompt, on its way through the line runner."""

    line: str
    echo: bool
    echoed: bool = False
    """Its echo is on the screen: at once when nothing ran, else when it starts."""
    started: bool = False


class LineRunner:
    """Runs entered lines one at a time on a thread of its own, in the order entered.

    The prompt stays alive meanwhile: typing goes on while a slow connect, a script, or a
    send to a peer that is not reading runs, and Ctrl-C can stop it (`interrupt`). A line
    entered while another runs waits its turn; if it waits long it is shown as queued, and
    it is echoed again when it runs, so the scrollback shows when it really went. Ctrl-C
    stops the running line and drops the queued ones (as a shell drops type-ahead), saying
    which.
    """

    def __init__(
        self,
        session: Session,
        post: Callable[[Event], None],
        on_quit: Callable[[], None],
        prompt: Callable[[], str] = lambda: "> ",
    ) -> None:
        self._session = session
        self._post = post
        self._on_quit = on_quit
        self._prompt = prompt
        self._pending: deque[_Entered] = deque()
        self._changed = threading.Condition()
        self._stopped = False
        self._told_queue = False  # the queue was explained since the running line started
        self.busy: str | None = None
        """The line running now, if any."""
        self._busy_since = 0.0
        self._thread = threading.Thread(target=self._run, name="netrepl-lines", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def submit(self, line: str, *, echo: bool = True) -> None:
        """Run `line` after those before it; echo it (now, or when it starts)."""
        with self._changed:
            entered = _Entered(line, echo)
            if echo and self.busy is None and not self._pending:
                # Echoed while holding the lock: the runner cannot post its output first.
                self._post(Submitted(self._prompt(), line))
                entered.echoed = True
            self._pending.append(entered)
            self._changed.notify_all()
        if echo and not entered.echoed:
            timer = threading.Timer(QUEUED_AFTER_SECONDS, self._show_queued, (entered,))
            timer.daemon = True
            timer.start()

    @property
    def waiting(self) -> int:
        """Lines entered and not started yet."""
        return len(self._pending)

    def _show_queued(self, entered: _Entered) -> None:
        with self._changed:
            if entered.started or entered not in self._pending:
                return
            self._post(Submitted(f"(queued) {self._prompt()}", entered.line))
            if not self._told_queue and self.busy is not None:
                self._told_queue = True
                text = (
                    f"queued behind {shorten(self.busy, 60)}: lines typed now run when it"
                    " ends; Ctrl-C stops it and drops them"
                )
                self._post(Noticed(text, "status"))

    def slow_line(self) -> str | None:
        """The running line once it has taken long enough to be worth telling (a connect,
        a wait): most lines finish before the toolbar could show them, and would flicker."""
        busy = self.busy
        if busy is None or time.monotonic() - self._busy_since < SLOW_LINE_SECONDS:
            return None
        return busy

    def interrupt(self) -> bool:
        """Ctrl-C on an empty line: stop the running line and drop the queued ones, with a
        line saying so; False when nothing runs or waits."""
        with self._changed:
            dropped = [entered.line for entered in self._pending]
            self._pending.clear()
            running = self.busy is not None
            if running:
                self._session.cancel.set()
        if not running and not dropped:
            return False
        parts = ["interrupting…"] if running else []
        if dropped:
            lines = "line" if len(dropped) == 1 else "lines"
            shown = ", ".join(shorten(line, 30) for line in dropped[:5])
            more = f" and {len(dropped) - 5} more" if len(dropped) > 5 else ""
            parts.append(f"dropped {len(dropped)} queued {lines}, not run: {shown}{more}")
        self._post(Noticed(" ".join(parts), "status"))
        return True

    def stop(self, timeout: float = 5.0) -> None:
        with self._changed:
            self._stopped = True
            self._pending.clear()
            self._changed.notify_all()
        self._session.cancel.set()
        self._thread.join(timeout)

    def _next(self) -> _Entered | None:
        with self._changed:
            self._changed.wait_for(lambda: self._pending or self._stopped)
            if self._stopped:
                return None
            entered = self._pending.popleft()
            entered.started = True
            if self._session.quit_requested:
                return entered  # not run: lines typed after /quit
            self._busy_since = time.monotonic()
            self.busy = entered.line
            self._session.cancel.clear()
            if entered.echo and not entered.echoed:
                self._post(Submitted(self._prompt(), entered.line))
            return entered

    def _run(self) -> None:
        while (entered := self._next()) is not None:
            if self.busy is None:
                continue
            try:
                self._session.submit_typed(entered.line)
            except NetreplError as error:
                self._post(Noticed(str(error), "error"))
            except Exception as error:  # a bug must not kill the session: show it, go on
                self._post(Noticed(f"internal error: {error!r}", "error"))
            finally:
                with self._changed:
                    self.busy = None
                    self._told_queue = False
                self._session.cancel.clear()
            if self._session.quit_requested:
                self._on_quit()


def entered_lines(text: str) -> list[str]:
    """The lines of an entered or pasted text, each handled as if typed on its own."""
    return text.replace("\r\n", "\n").replace("\r", "\n").split("\n")


class AboveThePrompt:
    """Where the display's frames go: written above the running prompt, on the prompt's own
    thread, and `write` returns once the frame is out.

    Not prompt_toolkit's StdoutProxy, for two measured reasons: its queue grows without
    bound on a slow terminal (a flood then kept drawing for 40 s after it ended), and its
    run_in_terminal switches the tty to cooked mode for every write, so keys typed during a
    flood were echoed by the tty and Backspaces lost. Waiting here slows the display thread
    to the terminal's pace, and its own skipping then drops what cannot be shown.

    Between the frames and the prompt it keeps `kept()` (the answers the sink pins while
    data scrolls): written below each frame's text and erased with the prompt before the
    next, so it never reaches the scrollback twice. It is not part of prompt_toolkit's
    layout: in a flood, a layout rows taller made every redraw (each key) cost 20-50 ms.
    """

    def __init__(self, fallback: TextIO) -> None:
        self.app: Application[str] | None = None
        self.reflow: Reflow | None = None
        self.kept: Callable[[], str] = lambda: ""
        self._kept_shown = ""
        self._fallback = fallback
        self._frames: asyncio.Lock | None = None

    def size(self) -> tuple[int, int]:
        """The terminal's (columns, rows)."""
        app = self.app
        if app is not None:
            size = app.output.get_size()
            return size.columns, size.rows
        size = shutil.get_terminal_size()
        return size.columns, size.lines

    def write(self, text: str) -> None:
        self._on_prompt(lambda app: self._frame(app, text), text)

    def clear(self) -> None:
        """Clear the screen; the prompt is drawn again at its top (/clear, as Ctrl-L)."""
        self._on_prompt(self._clear, "")

    def flush(self) -> None:
        pass  # every write is complete when it returns

    async def keep_fresh(self, app: Application[str]) -> None:
        """On the prompt's loop, while it runs: what is kept above the prompt expires."""
        while app.is_running:
            await asyncio.sleep(0.25)
            if self.kept() != self._kept_shown:
                await self._frame(app, "")

    def drop_kept(self) -> None:
        """Once the prompt is gone (it erased itself): erase what was kept above it."""
        rows = screen_rows(self._kept_shown, self.size()[0])
        self._kept_shown = ""
        if rows:
            self._fallback.write(f"\x1b[{rows}A\x1b[J")
            self._fallback.flush()

    def _on_prompt(self, step: Callable[[Application[str]], object], fallback: str) -> None:
        """Run `step` on the prompt's event loop and wait for it; without a prompt, write
        `fallback` directly."""
        app = self.app
        loop = app.loop if app is not None else None
        if app is None or loop is None or not app.is_running:
            self._write_fallback(fallback)
            return
        written = threading.Event()

        async def frame() -> None:
            try:
                if app.is_running:
                    await step(app)  # type: ignore[misc]
                else:
                    self._write_fallback(fallback)
            finally:
                written.set()

        asyncio.run_coroutine_threadsafe(frame(), loop)
        # In slices: if the prompt ends meanwhile, the frame never runs, and we go on.
        while not written.wait(0.1) and app.is_running:
            pass

    def _write_fallback(self, text: str) -> None:
        if text:
            self._fallback.write(text)
            self._fallback.flush()

    async def _frame(self, app: Application[str], text: str) -> None:
        """On the prompt's event loop: erase the prompt (and what is kept above it), write,
        draw it again below, as one write. What prompt_toolkit's in_terminal does, but
        without leaving raw mode and without showing the screen between the steps. Frames
        (the display's, and expiries) take turns."""
        if self._frames is None:
            self._frames = asyncio.Lock()
        async with self._frames:
            renderer = app.renderer
            output = app.output
            if output.responds_to_cpr:
                # The layout waits on the terminal's answer about the cursor; erasing before
                # it came would erase from a row the renderer no longer knows.
                await renderer.wait_for_cpr_responses()
            size = output.get_size()
            kept = self.kept()
            # Counted at today's width: a terminal that reflowed them on narrowing holds
            # them on that many rows now.
            kept_rows = screen_rows(self._kept_shown, size.columns)
            # prompt_toolkit draws the toolbar only once it knows the rows below the cursor,
            # which the terminal tells only after the frame: the row the prompt starts on is
            # worked out here from the row it starts on now, and the answer (still asked
            # for) corrects it if the terminal wrapped the text differently.
            row: int | None = None
            narrower = self.reflow is not None and self.reflow.narrower()
            if (
                renderer.cpr_support == CPR_Support.SUPPORTED
                and renderer.height_is_known
                and not narrower
            ):
                top = max(renderer.rows_above_layout - kept_rows, 0)
                row = min(top + screen_rows(text + kept, size.columns), size.rows - 1) + 1
            with one_write(output):
                if self.reflow is not None:
                    self.reflow.erase()
                else:
                    renderer.erase()
                if kept_rows:
                    output.cursor_up(kept_rows)
                    output.erase_down()
                output.write_raw(text + kept)
                self._kept_shown = kept
                if row is not None:
                    renderer.report_absolute_cursor_row(row)
                renderer.request_absolute_cursor_position()
                redraw_now(app)

    async def _clear(self, app: Application[str]) -> None:
        """prompt_toolkit's clear (Ctrl-L), drawn again in the same write, toolbar
        included; what was kept above the prompt goes too."""
        renderer = app.renderer
        with one_write(app.output):
            renderer.clear()
            self._kept_shown = ""
            if renderer.cpr_support == CPR_Support.SUPPORTED:
                renderer.report_absolute_cursor_row(1)
            redraw_now(app)


def redraw_now(app: Application[str]) -> None:
    """Draw the prompt now, inside the write being put together. prompt_toolkit has no
    public way: `invalidate()` only schedules a redraw for later (a separate write, so a
    terminal would show the screen without a prompt in between), and calling its renderer
    directly would skip the application's own bookkeeping around a redraw (the
    invalidation flag, the before- and after-render events that Reflow relies on). So the
    private `_redraw`, in this one place."""
    app._redraw()


@contextlib.contextmanager
def one_write(output: Output) -> Iterator[None]:
    """Everything written to `output` inside goes out in one write at the end, wrapped in
    synchronized output: the renderer flushes after erasing, after resetting and after
    drawing, and a terminal reading between those flushes would show no prompt."""
    output.flush()
    flush = output.flush
    output.flush = lambda: None  # type: ignore[method-assign]
    try:
        output.write_raw(SYNC_BEGIN)
        yield
        output.write_raw(SYNC_END)
    finally:
        del output.flush  # the class's own again
        flush()


class Reflow:
    """Erasing the prompt after the window got narrower. prompt_toolkit erases its rows by
    moving up as many rows as it drew above the cursor. Most terminals (VTE, kitty, iTerm2,
    Windows Terminal, tmux) reflow their rows to a narrower width, so a long typed line then
    covers more rows than that, and the rows above where the erase began stay on the screen:
    a copy of the line in the scrollback. Here the move is by the rows the drawn rows take
    once reflowed, whenever the prompt is erased (a frame written above it, a redraw at the
    new size, the resize itself). A terminal that cuts rows instead (xterm) then loses as
    many rows above the prompt from the screen, only when a drawn row was wider than the new
    width (a long typed line); the log and the scrollback keep what they held.
    """

    def __init__(self, app: Application[str]) -> None:
        self._app = app
        # prompt_toolkit handles SIGWINCH in its private `_on_resize`, with no public hook to
        # put a handler before it: it is replaced here, and called for a wider window.
        self._standard_resize = app._on_resize
        app._on_resize = self.on_resize  # type: ignore[method-assign]
        self._columns = self._drawing = app.output.get_size().columns
        """The width the prompt was last drawn at."""
        app.before_render += self._before_render
        app.after_render += self._after_render

    def narrower(self) -> bool:
        return self._app.output.get_size().columns < self._columns

    def erase(self) -> None:
        """Erase the prompt (as `Renderer.erase`) from where its first row is now."""
        app = self._app
        screen = app.renderer.last_rendered_screen
        if not self.narrower() or screen is None:
            app.renderer.erase()
            return
        columns = app.output.get_size().columns
        cursor = screen.get_cursor_position(app.layout.current_window)
        rows = cursor.x // columns
        for y in range(cursor.y):
            drawn = [x + ch.width for x, ch in screen.data_buffer[y].items() if ch.char.strip()]
            rows += max(1, -(-max(drawn, default=0) // columns))
        output = app.output
        output.write_raw("\r")
        output.cursor_up(rows)
        output.erase_down()
        output.reset_attributes()
        output.enable_autowrap()
        app.renderer.reset(leave_alternate_screen=False)

    def on_resize(self) -> None:
        """SIGWINCH: prompt_toolkit's handler, unless narrower (the redraw erases)."""
        if self.narrower():
            redraw_now(self._app)
        else:
            self._standard_resize()

    def _before_render(self, app: Application[str]) -> None:
        # Any redraw may be the first at the new width: a refresh or a key can come before
        # the resize signal is handled.
        if self.narrower() and app.renderer.last_rendered_screen is not None:
            self.erase()
            app.renderer.request_absolute_cursor_position()
        # The width this render draws at (asked again after it, a resize during the render
        # would be taken for the width it drew at).
        self._drawing = app.output.get_size().columns

    def _after_render(self, app: Application[str]) -> None:
        self._columns = self._drawing


def emacs_key_bindings() -> KeyBindingsBase:
    """prompt_toolkit's default key bindings (`load_key_bindings`) without its vi mode:
    basic editing, emacs editing, search (Ctrl-R) and shift selection, mouse, and the
    terminal's cursor position answers. netrepl edits in emacs mode only; the 331 vi
    bindings, inactive there, took ~5 ms to build and more again in the caches the first
    key fills, since every key is matched against every binding."""
    editing = merge_key_bindings(
        [
            load_basic_bindings(),
            load_emacs_bindings(),
            load_emacs_search_bindings(),
            load_emacs_shift_selection_bindings(),
        ]
    )
    return merge_key_bindings(
        [
            ConditionalKeyBindings(editing, buffer_has_focus),
            load_mouse_bindings(),
            load_cpr_bindings(),
        ]
    )


class NetreplPrompt(PromptSession[str]):
    """A PromptSession in emacs mode without prompt_toolkit's vi bindings (see
    `emacs_key_bindings`), that reserves rows below the input for the completion menu only
    while the menu is open, and only as many as it shows (prompt_toolkit reserves eight
    always when completing while typing: seven empty rows above the toolbar)."""

    def _create_application(
        self, editing_mode: EditingMode, erase_when_done: bool
    ) -> Application[str]:
        # `Application.__init__` loads the default bindings itself, with no parameter to
        # leave vi out: its module's `load_key_bindings` is the emacs-only set while this
        # one application is built (on the main thread, before any other exists).
        module = prompt_toolkit.application.application
        standard = module.load_key_bindings
        module.load_key_bindings = emacs_key_bindings
        try:
            return super()._create_application(EditingMode.EMACS, erase_when_done)
        finally:
            module.load_key_bindings = standard

    @property  # type: ignore[override]
    def reserve_space_for_menu(self) -> int:
        buffer = getattr(self, "default_buffer", None)
        state = buffer.complete_state if buffer is not None else None
        if state is None or not state.completions:
            return 0
        return min(self._menu_rows, len(state.completions) + 1)

    @reserve_space_for_menu.setter
    def reserve_space_for_menu(self, rows: int) -> None:
        self._menu_rows = rows


def key_bindings(runner: LineRunner) -> KeyBindings:
    bindings = KeyBindings()

    @bindings.add("c-c")
    @bindings.add("<sigint>")
    def _interrupt(event: KeyPressEvent) -> None:
        # Clear the line; or stop what runs and drop what waits; never leave (Ctrl-D and
        # /quit do).
        buffer = event.app.current_buffer
        if buffer.text:
            buffer.reset()
        else:
            runner.interrupt()

    @bindings.add(Keys.BracketedPaste)
    def _paste(event: KeyPressEvent) -> None:
        # Each pasted line as if typed and entered; a last line without its end stays in
        # the buffer, to be edited.
        buffer = event.current_buffer
        *complete, rest = entered_lines(event.data)
        for line in complete:
            buffer.insert_text(line)
            buffer.validate_and_handle()
        buffer.insert_text(rest)

    return bindings


class Interactive:
    """The interactive front end, wired: the display that writes above the prompt, the
    session, the line runner, and prompt_toolkit's prompt, which holds the main thread until
    /quit or Ctrl-D. Its methods are what prompt_toolkit calls back on that thread (the
    prompt's message, the toolbar, an entered line) and what other threads call to end or
    redraw the prompt (`leave`, `repaint`)."""

    def __init__(self, settings: Settings) -> None:
        self.prompt: NetreplPrompt | None = None
        self.above = AboveThePrompt(sys.__stdout__)
        self.sink = TerminalSink(
            self.above, AnsiFormatter(), self.repaint, clear=self.above.clear, size=self.above.size
        )
        self.above.kept = lambda: self.sink.pinned_ansi
        self.display = Display(
            Renderer(settings.view),
            self.sink,
            keep_up=True,
            frame_bytes=self.sink.frame_bytes,
            # Nothing received could be shown any more: end the session rather than run blind.
            on_failure=lambda _: self.leave(),
        )
        self.activity = Activity(self.display.post)
        self.session = Session(settings, self.activity.post)
        self.runner = LineRunner(
            self.session, self.display.post, self.leave, lambda: prompt_text(self.session)
        )
        self._parsed: dict[tuple[str, str, str], StyleAndTextTuples] = {}

    # ---- called from any thread

    def repaint(self) -> None:
        if self.prompt is not None:
            self.prompt.app.invalidate()

    def leave(self) -> None:
        app = self.prompt.app if self.prompt is not None else None
        if app is not None and app.is_running and app.loop is not None:
            app.loop.call_soon_threadsafe(app.exit)

    # ---- prompt_toolkit's callbacks, on the main thread

    def message(self) -> StyleAndTextTuples:
        """A running send's bar and an unfinished received line above the input, then the
        prompt. prompt_toolkit asks several times per redraw, and its ANSI parser is slow on
        a long open line: parsed once per change."""
        key = (self.sink.progress_ansi, self.sink.open_line_ansi, prompt_text(self.session))
        fragments = self._parsed.get(key)
        if fragments is None:
            fragments = []
            for above_input in key[:2]:
                if above_input:
                    end = "" if above_input.endswith("\n") else "\n"
                    fragments.extend(to_formatted_text(ANSI(above_input + end)))
            fragments.append(("bold", key[2]))
            self._parsed.clear()
            self._parsed[key] = fragments
        return fragments

    def toolbar(self) -> str:
        return toolbar_text(self.session, self.runner, self.activity, self.above.size()[0])

    def accept(self, buffer: Buffer) -> bool:
        """The prompt keeps running while the line is handled, so everything the display
        writes goes above it and never races a redraw. A buffer holding newlines (a recalled
        paste) is several lines, each entered as if typed."""
        for line in entered_lines(buffer.text):
            self.runner.submit(line)
        return False  # clear the line, keep the prompt

    # ---- the run

    def run(self, endpoint: Endpoint, startup: Startup, banner: str | None) -> int:
        display, session = self.display, self.session
        proxy = StdoutProxy(raw=True, sleep_between_writes=WRITE_INTERVAL)
        display.start()
        with proxy, contextlib.redirect_stdout(proxy), contextlib.redirect_stderr(proxy):  # type: ignore[type-var]
            if banner:
                display.post(Noticed(banner, "info"))
            try:
                session.begin(startup)
                session.open(endpoint)
            except NetreplError:
                session.files.close()
                display.stop()
                raise
            self.prompt = prompt = NetreplPrompt(
                message=self.message,
                bottom_toolbar=self.toolbar,
                completer=CommandCompleter(session),
                history=open_history(),
                auto_suggest=AutoSuggestFromHistory(),
                key_bindings=key_bindings(self.runner),
                erase_when_done=True,
                refresh_interval=0.5,
                reserve_space_for_menu=MENU_ROWS,
            )
            prompt.default_buffer.accept_handler = self.accept
            app = prompt.app
            self.above.app, self.above.reflow = app, Reflow(app)
            self.runner.start()
            if startup.script is not None:
                self.runner.submit(f"/run {startup.script}", echo=False)
            try:
                if display.failure is None:
                    prompt.prompt(
                        pre_run=lambda: app.create_background_task(self.above.keep_fresh(app))
                    )
            except EOFError:
                pass  # Ctrl-D on an empty line
            finally:
                self.above.drop_kept()
                self.runner.stop()
                session.close_all()
                display.stop()
        if display.failure is not None:
            print(f"netrepl: {display.failure}", file=sys.__stderr__, flush=True)
            return ExitStatus.INTERNAL
        return ExitStatus.OK


def run_interactive(
    endpoint: Endpoint,
    settings: Settings,
    startup: Startup,
    banner: str | None = None,
) -> int:
    """Connect (or listen) and run the prompt until /quit or Ctrl-D. Raises ConnectError if
    the first connection fails (the caller turns it into exit status 1)."""
    return Interactive(settings).run(endpoint, startup, banner)
