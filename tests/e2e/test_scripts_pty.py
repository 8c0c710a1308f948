"""Long-running lines in the real REPL, in a pty: /sendfile's progress bar and Ctrl-C, a
--script run at start, and Ctrl-C stopping a wait. Typed as a person types; every wait is on
the emulated screen (or the peer's bytes) with a timeout."""

from __future__ import annotations

import os
import re

from tests.e2e.test_interactive import enter, rows, start
from tests.terminal import Terminal


def busy(terminal: Terminal, line: str) -> None:
    """Wait until the toolbar says `line` is running (and how to stop it)."""
    terminal.expect_screen(
        rf"(?m)^ TCP \S+  connected  busy: {re.escape(line)}  \(Ctrl-C stops it\)  │"
    )


def test_sendfile_shows_progress_and_ctrl_c_stops_it(spawn, make_peer, tmp_path):
    data = os.urandom(1_000_000)
    path = tmp_path / "firmware.bin"
    path.write_bytes(data)
    peer = make_peer()
    terminal, client = start(spawn, peer)

    line = f"/sendfile {path} --chunk 1024 --delay 10"
    enter(terminal, line)
    # The bar sits above the prompt and moves while the file goes out.
    bar = (
        r"(?m)^sendfile firmware\.bin ━{30} +(\d+)%  ([\d,]+) bytes? of 1,000,000  "
        r"\S+ \S+  \(Ctrl-C stops it\)\n>$"
    )
    terminal.expect_screen(bar)
    # The toolbar says what runs, how far it is, and how to stop it.
    terminal.expect_screen(
        r"(?m)^ TCP \S+  connected  sendfile firmware\.bin \d+%  \(Ctrl-C stops it\)  │"
    )
    client.wait_for_size(20_000)
    terminal.type("\x03")

    status = r"sendfile firmware\.bin: interrupted, ([\d,]+) bytes of 1,000,000 in \d+\.\d s"
    terminal.expect_screen(rf"(?m)^{status} \(.+/s\)$")
    match = re.search(status, terminal.screen_text())
    assert match is not None
    done = int(match.group(1).replace(",", ""))
    assert 20_000 <= done < len(data) and done % 1024 == 0
    # The bar is gone, the prompt stays and works.
    terminal.expect_screen(r"(?m)^ TCP \S+  connected  │")
    assert "(Ctrl-C stops it)" not in terminal.screen_text()
    enter(terminal, "after")
    received = client.wait_for(b"after\n")
    assert received == data[:done] + b"after\n"
    assert terminal.child.isalive()


def test_sendfile_that_finishes_says_sent(spawn, make_peer, tmp_path):
    data = os.urandom(300_000)
    path = tmp_path / "small.bin"
    path.write_bytes(data)
    peer = make_peer()
    terminal, client = start(spawn, peer)
    enter(terminal, f"/sendfile {path} --chunk 10000 --delay 5")
    terminal.expect_screen(
        r"(?m)^sendfile small\.bin: sent, 300,000 bytes of 300,000 in \d+\.\d s \(.+/s\)$"
    )
    assert client.wait_for_size(len(data)) == data
    terminal.expect_screen(r"(?m)^ TCP \S+  connected  │.*tx 300,000 B$")


def test_script_runs_at_start_then_the_prompt_is_usable(spawn, echo_peer, tmp_path):
    script = tmp_path / "hello.nrs"
    script.write_text(
        "# sent as soon as connected\nhello from script\n/expect from script 5\n",
        encoding="utf-8",
    )
    terminal, client = start(spawn, echo_peer, "--script", str(script))
    assert client.wait_for(b"hello from script\n") == b"hello from script\n"
    terminal.expect_screen(r"(?m)^expect matched: ")
    enter(terminal, "typed")
    assert client.wait_for(b"typed\n") == b"hello from script\ntyped\n"
    terminal.expect_screen(rows("> typed", "typed", ">"))


def test_a_failing_script_at_start_leaves_the_prompt(spawn, make_peer, tmp_path):
    script = tmp_path / "fails.nrs"
    script.write_text("first\n/expect never 0.3\nnot sent\n", encoding="utf-8")
    peer = make_peer()
    terminal, client = start(spawn, peer, "--script", str(script))
    terminal.expect_screen(
        rf"(?m)^{re.escape(str(script))}:2: expect timed out after 0\.3 s: never$"
    )
    enter(terminal, "still here")
    assert client.wait_for(b"still here\n") == b"first\nstill here\n"
    assert terminal.child.isalive()


def test_ctrl_c_interrupts_a_long_expect(spawn, make_peer):
    peer = make_peer()
    terminal, client = start(spawn, peer)
    enter(terminal, "/expect never 30")
    busy(terminal, "/expect never 30")
    terminal.type("\x03")
    terminal.expect_screen(rows("interrupting…", "expect never: interrupted", ">"), timeout=5)
    terminal.expect_screen(r"(?m)^ TCP \S+  connected  │")
    enter(terminal, "ok")
    assert client.wait_for(b"ok\n") == b"ok\n"


def test_ctrl_c_interrupts_a_repeat(spawn, make_peer):
    peer = make_peer()
    terminal, client = start(spawn, peer)
    enter(terminal, "/repeat 1000 20 R")
    client.wait_for(b"R\nR\nR\n")
    busy(terminal, "/repeat 1000 20 R")
    terminal.type("\x03")
    status = r"/repeat interrupted after (\d+) of 1000"
    terminal.expect_screen(rf"(?m)^{status}$", timeout=5)
    match = re.search(status, terminal.screen_text())
    assert match is not None
    enter(terminal, "MARK")
    assert client.wait_for(b"MARK\n") == b"R\n" * int(match.group(1)) + b"MARK\n"
