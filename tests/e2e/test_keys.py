"""The prompt's key bindings: emacs editing as prompt_toolkit gives it, typed in a real pty
against a loopback peer, and no vi bindings loaded (they cost start-up time and netrepl never
uses vi mode)."""

from __future__ import annotations

from prompt_toolkit.input import create_pipe_input
from prompt_toolkit.key_binding.key_bindings import KeyBindingsBase
from prompt_toolkit.output import DummyOutput

from netrepl.repl import NetreplPrompt
from tests.e2e.test_interactive import enter, keys, rows, start

VI_MODULE = "prompt_toolkit.key_binding.bindings.vi"


def handler_modules(bindings: KeyBindingsBase) -> set[str]:
    return {binding.handler.__module__ for binding in bindings.bindings}


def test_the_prompt_loads_emacs_bindings_and_no_vi_bindings():
    with create_pipe_input() as pipe:
        prompt = NetreplPrompt(input=pipe, output=DummyOutput())
        app = prompt.app
        # prompt_toolkit keeps the defaults it loads apart from the bindings it is given.
        loaded = handler_modules(app._default_bindings) | handler_modules(app.key_bindings)
    assert VI_MODULE not in loaded
    assert "prompt_toolkit.key_binding.bindings.emacs" in loaded
    assert "prompt_toolkit.key_binding.bindings.search" in loaded  # Ctrl-R
    # Only while the prompt was built: prompt_toolkit's own default is whole again.
    from prompt_toolkit.key_binding.defaults import load_key_bindings

    assert VI_MODULE in handler_modules(load_key_bindings())


def test_emacs_editing_keys_move_kill_and_search_history(spawn, make_peer):
    peer = make_peer()
    terminal, client = start(spawn, peer)

    keys(terminal, "world")
    keys(terminal, "\x01hello ")  # Ctrl-A: to the start of the line
    keys(terminal, "\x05!")  # Ctrl-E: to its end
    terminal.expect_screen(rows("> hello world!"))
    enter(terminal)
    assert client.wait_for(b"hello world!\n") == b"hello world!\n"
    terminal.expect_screen(rows("> hello world!", ">"))

    keys(terminal, "junk\x15")  # Ctrl-U: kill back to the start
    terminal.expect_screen(rows("> hello world!", ">"))
    keys(terminal, "\x12hello")  # Ctrl-R: search the history backwards
    terminal.expect_screen(r"(?m)^\(reverse-i-search\)`hello': hello world!$")
    keys(terminal, "\r")  # ends the search with the line found, to be edited
    terminal.expect_screen(rows("> hello world!", "> hello world!"))
    keys(terminal, "\x05\x08?")  # the cursor was left where the match starts
    enter(terminal)
    assert client.wait_for(b"hello world?\n") == b"hello world!\nhello world?\n"
