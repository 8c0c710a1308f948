"""The interactive front end: prompt_toolkit wired to a Session and the Display.

Thin on purpose: it reads lines (with history, completion from the command registry, and a
toolbar), echoes them through the display, and hands them to `Session.submit`. It never
touches a socket and never writes to the terminal except through the display's sink.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterable
from pathlib import Path

from prompt_toolkit import PromptSession
from prompt_toolkit.auto_suggest import AutoSuggestFromHistory
from prompt_toolkit.completion import CompleteEvent, Completer, Completion
from prompt_toolkit.document import Document
from prompt_toolkit.formatted_text import ANSI, StyleAndTextTuples, to_formatted_text
from prompt_toolkit.history import FileHistory, History, InMemoryHistory
from prompt_toolkit.patch_stdout import StdoutProxy

from netrepl.commands import REGISTRY
from netrepl.display import AnsiFormatter, Display, TerminalSink
from netrepl.errors import NetreplError
from netrepl.events import Noticed, Submitted
from netrepl.render import Renderer
from netrepl.session import Session, Settings

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
        for value in command.params[index].completions:
            if value.startswith(current):
                yield Completion(value, start_position=-len(current))


def prompt_text(session: Session) -> str:
    return "hex> " if session.settings.input_mode == "hex" else "> "


def toolbar_text(session: Session) -> str:
    settings = session.settings
    view = settings.view
    shown = view.encoding if view.mode == "text" else f"{view.mode} ({view.encoding})"
    connection = session.connection
    received = connection.received if connection else 0
    sent = connection.sent if connection else 0
    return (
        f" {session.address_label}  {session.state}  │  view {shown}  input {settings.input_mode}"
        f"  eol {settings.eol}  │  rx {received:,} B  tx {sent:,} B "
    )


def run_interactive(host: str, port: int, settings: Settings, banner: str | None = None) -> int:
    """Connect and run the prompt until /quit or Ctrl-D. Raises ConnectError if the first
    connection fails (the caller turns it into exit status 1)."""
    proxy = StdoutProxy(raw=True, sleep_between_writes=WRITE_INTERVAL)
    prompt_session: PromptSession[str] | None = None

    def repaint() -> None:
        if prompt_session is not None:
            prompt_session.app.invalidate()

    sink = TerminalSink(proxy, AnsiFormatter(), repaint)
    display = Display(Renderer(settings.view), sink)
    session = Session(settings, display.post)

    def message() -> StyleAndTextTuples:
        fragments: StyleAndTextTuples = []
        if sink.open_line_ansi:
            fragments.extend(to_formatted_text(ANSI(sink.open_line_ansi + "\n")))
        fragments.append(("bold", prompt_text(session)))
        return fragments

    display.start()
    with proxy, contextlib.redirect_stdout(proxy), contextlib.redirect_stderr(proxy):  # type: ignore[type-var]
        if banner:
            display.post(Noticed(banner, "info"))
        try:
            session.connect(host, port)
        except NetreplError:
            display.stop()
            raise
        prompt_session = PromptSession(
            message=message,
            bottom_toolbar=lambda: toolbar_text(session),
            completer=CommandCompleter(),
            history=open_history(),
            auto_suggest=AutoSuggestFromHistory(),
            erase_when_done=True,  # the display echoes the line, in order with received data
            refresh_interval=0.5,
        )
        while not session.quit_requested:
            try:
                line = prompt_session.prompt()
            except KeyboardInterrupt:
                continue  # Ctrl-C clears the line
            except EOFError:
                break  # Ctrl-D on an empty line
            display.post(Submitted(prompt_text(session), line))
            try:
                session.submit(line)
            except NetreplError as error:
                display.post(Noticed(str(error), "error"))
            except KeyboardInterrupt:
                display.post(Noticed("interrupted", "error"))
        session.close()
        display.stop()
    return 0
