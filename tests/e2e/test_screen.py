"""What the screen shows, in a pty read by a terminal emulator (pyte): /clear, the toolbar at
any width, the rows between the prompt and the toolbar, long messages wrapped at spaces, the
prompt and toolbar under a flood, answers that stay readable while data scrolls, a resize.

Samples of the screen are taken as a terminal shows it: at each sample, everything that had
arrived is fed to the emulator first. Loops are bounded in count and time.
"""

from __future__ import annotations

import re
import time

import pyte
import pytest

import netrepl.commands  # noqa: F401 (declares the commands that help_text lists)
from netrepl.commands.registry import help_text
from tests.e2e.test_flood import FLOOD_LINE, SKIPPED
from tests.e2e.test_interactive import enter, keys, ready, rows, start, toolbar
from tests.terminal import Terminal, _AnsweringScreen

SAMPLE_SECONDS = 0.05
TOOLBAR_ROW = re.compile(r"^ TCP \S+  connected  .*│  rx [\d,]+ B(?:  tx [\d,]+ B)?$")
PROMPT_ROW = re.compile(r"^(?:\S+ )?>(?: |$)")


def resize(terminal: Terminal, rows: int, columns: int) -> None:
    """Resize the window: the pty (netrepl gets SIGWINCH) and the emulated screen."""
    terminal.screen.resize(rows, columns)
    terminal.child.setwinsize(rows, columns)


def drain(terminal: Terminal, limit: float = 0.5) -> None:
    """Feed the emulator everything that has arrived (for at most `limit` s of reading)."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline and terminal._pump(0):
        pass


def prompt_and_toolbar_shown(lines: list[str]) -> bool:
    toolbars = [i for i, line in enumerate(lines) if TOOLBAR_ROW.match(line)]
    prompts = [i for i, line in enumerate(lines) if PROMPT_ROW.match(line)]
    return bool(toolbars) and bool(prompts) and min(prompts) < max(toolbars)


def samples(terminal: Terminal, count: int) -> list[list[str]]:
    """`count` screens, SAMPLE_SECONDS apart, each as the terminal shows it then."""
    screens = []
    next_at = time.monotonic() + SAMPLE_SECONDS
    for _ in range(count):
        while (left := next_at - time.monotonic()) > 0:
            terminal._pump(left)
        next_at += SAMPLE_SECONDS
        drain(terminal)
        screens.append(terminal.screen_lines())
    return screens


# ---- /clear and Ctrl-L ---------------------------------------------------------------------------


def test_clear_clears_the_screen_and_draws_the_prompt_at_the_top(spawn, make_peer):
    peer = make_peer(greeting=b"before the clear\n")
    terminal, client = start(spawn, peer)
    terminal.expect_screen(rows("before the clear"))
    enter(terminal, "/clear")
    terminal.expect_screen(r"^>\n")  # the prompt on the first row
    ready(terminal)
    assert "before the clear" not in terminal.screen_text()
    assert "/clear" not in terminal.screen_text()

    client.send(b"after the clear\n")
    terminal.expect_screen(r"^after the clear\n>\n")
    enter(terminal, "typed")
    assert client.wait_for(b"typed\n") == b"typed\n"
    terminal.expect_screen(r"^after the clear\n> typed\n>\n")


def test_ctrl_l_clears_the_screen_too(spawn, make_peer):
    peer = make_peer(greeting=b"before ctrl-l\n")
    terminal, _ = start(spawn, peer)
    terminal.expect_screen(rows("before ctrl-l"))
    keys(terminal, "\x0c")
    terminal.expect_screen(r"^>\n")
    ready(terminal)
    assert "before ctrl-l" not in terminal.screen_text()


# ---- the toolbar ---------------------------------------------------------------------------------


def toolbar_row(terminal: Terminal) -> str:
    return next(line for line in reversed(terminal.screen_lines()) if line.startswith(" TCP "))


def test_toolbar_fits_a_narrow_terminal_by_leaving_out_whole_fields(spawn, make_peer):
    peer = make_peer(greeting=b"hello\n")
    terminal, _ = start(spawn, peer)
    ready(terminal)
    resize(terminal, 30, 60)
    address = f"127.0.0.1:{peer.port}"
    # eol, input and tx go first; what stays is whole.
    terminal.expect_screen(rf"(?m)^ TCP {re.escape(address)}  connected  │  view utf-8  │  rx 6 B$")
    resize(terminal, 30, 40)
    terminal.expect_screen(r"(?m)^ connected  │  view utf-8  │  rx 6 B$")
    resize(terminal, 30, 120)
    terminal.expect_screen(toolbar(peer) + r"view utf-8  input text  eol lf  │  rx 6 B  tx 0 B$")


def test_toolbar_during_sendfile_shows_its_progress_whole(spawn, make_peer, tmp_path):
    path = tmp_path / "firmware.bin"
    path.write_bytes(bytes(300_000))
    peer = make_peer()
    terminal, client = start(spawn, peer)
    enter(terminal, f"/sendfile {path} --chunk 1000 --delay 10")
    terminal.expect_screen(
        r"(?m)^ TCP \S+  connected  sendfile firmware\.bin \d+%  \(Ctrl-C stops it\)  │  "
        r"view utf-8(?:  input text)?(?:  eol lf)?  │  rx 0 B  tx [\d,]+ B$"
    )
    resize(terminal, 30, 60)
    # The send and how to stop it stay; the settings and the address go first.
    terminal.expect_screen(
        r"(?m)^ connected  sendfile firmware\.bin \d+%  (?:\(Ctrl-C stops it\)  )?│"
        r"(?:  view utf-8  │)?  rx 0 B$"
    )
    terminal.type("\x03")
    terminal.expect_screen(r"(?m)^sendfile firmware\.bin: interrupted, ")
    client.wait_for_size(1000)


def test_toolbar_says_the_display_is_paused(spawn, make_peer):
    peer = make_peer()
    terminal, client = start(spawn, peer)
    enter(terminal, "/pause")
    terminal.expect_screen(toolbar(peer) + r"view utf-8  paused \(/resume\)  input text")
    client.send(b"unseen\n")
    terminal.expect_screen(toolbar(peer) + r".*│  rx 7 B  tx 0 B$")
    enter(terminal, "/resume")
    terminal.expect_screen(toolbar(peer) + r"view utf-8  input text")
    assert "paused (/resume)" not in toolbar_row(terminal)


def test_no_empty_rows_between_the_prompt_and_the_toolbar_unless_completing(spawn, make_peer):
    peer = make_peer()
    terminal, client = start(spawn, peer)
    ready(terminal)
    client.send(b"".join(b"line %02d\n" % i for i in range(40)))  # more than the screen
    terminal.expect_screen(rows("line 39"))
    enter(terminal, "x")
    # The prompt right above the toolbar, on the last row.
    terminal.expect_screen(r"(?m)^> x\n(?:.*\n)*>\n TCP \S+  connected  │  .* B\Z")
    # The completion menu gets the rows it needs while it is open.
    keys(terminal, "/view ")
    terminal.expect_screen(
        r"(?m)^> /view\s*\n\s+hex\s*\n\s+text\s*\n\s+utf8\s*\n\s+gbk\s*\n\s+auto\s*\n"
        r"\s+json\s*\n\s+raw$"
    )


# ---- long messages -------------------------------------------------------------------------------


def test_help_wraps_at_spaces_under_the_summary_column(spawn, make_peer):
    peer = make_peer()
    terminal, _ = start(spawn, peer)
    enter(terminal, "/help")
    terminal.expect_screen(r"(?m)^  /clear +clear the screen$")
    lines = terminal.screen_lines()
    words = set(help_text().split())
    column = len(re.search(r"(?m)^  /clear +", help_text()).group())  # where summaries start
    shown = lines[: next(i for i, line in enumerate(lines) if line.startswith("  /clear ")) + 1]
    broken = [word for line in shown for word in line.split() if word not in words]
    assert not broken, f"words cut: {broken}\n" + "\n".join(shown)
    continuations = [line for line in shown if line.startswith(" " * column)]
    assert continuations, "\n".join(shown)  # some summaries are longer than a row
    at_summary = [line for line in continuations if line[column] != " "]
    assert at_summary == continuations, "\n".join(continuations)
    # The table as a whole, read back: every summary whole.
    joined = re.sub(rf"\n {{{column}}}(?=\S)", " ", "\n".join(lines))
    for line in help_text().splitlines()[1:]:
        if line.startswith("  /") and line.split()[0] in ("/expect", "/to"):
            assert line in joined.splitlines(), line


def test_a_message_wider_than_a_narrow_terminal_keeps_its_words(spawn, make_peer):
    peer = make_peer()
    terminal, _ = start(spawn, peer)
    ready(terminal)
    resize(terminal, 30, 50)
    terminal.expect_screen(r"(?m)^ connected  │  view utf-8  │  rx 0 B$")
    terminal.enter("/nosuch-command-with-a-long-name")
    terminal.expect_screen(
        rows("unknown command /nosuch-command-with-a-long-name", "  (/help lists the commands)")
    )


# ---- under a flood: the prompt and the toolbar, and answers that stay readable -----------------


@pytest.mark.parametrize("view", ["utf8", "hex", "auto", "gbk"])
def test_prompt_and_toolbar_stay_on_screen_under_a_flood(spawn, make_peer, flood, view):
    peer = make_peer()
    terminal, client = start(spawn, peer, "--view", view)
    ready(terminal)
    pattern = bytes(range(256)) if view == "hex" else FLOOD_LINE
    flooder = flood(client.sock, pattern=pattern)
    terminal.expect_screen("00 01 02 03" if view == "hex" else "flood-line")
    screens = samples(terminal, 80)
    assert not flooder.done.is_set(), "the flood ended while sampling"
    shown = [prompt_and_toolbar_shown(screen) for screen in screens]
    missing = [screen for screen, ok in zip(screens, shown, strict=True) if not ok]
    assert sum(shown) >= 0.95 * len(screens), (
        f"prompt and toolbar on screen in {sum(shown)} of {len(screens)} samples; one without:\n"
        + "\n".join(missing[0])
    )
    keys(terminal, "still typing")
    terminal.expect_screen(r"(?m)^> still typing$")


def visible_for(terminal: Terminal, pattern: str, seconds: float) -> list[bool]:
    """From when `pattern` is first on the screen: whether it is still there in each sample
    over the next `seconds`."""
    terminal.expect_screen(pattern, timeout=15)
    regex = re.compile(pattern)
    screens = samples(terminal, int(seconds / SAMPLE_SECONDS))
    return [regex.search("\n".join(s)) is not None for s in screens]


def readable(shown: list[bool]) -> bool:
    """On screen in the samples, as the prompt is (a terminal without synchronized output
    may show a frame half drawn), and still there at the end."""
    return sum(shown) >= 0.95 * len(shown) and any(shown[-5:])


def test_an_answer_typed_during_a_flood_stays_readable_for_3_s(spawn, make_peer, flood):
    peer = make_peer()
    terminal, client = start(spawn, peer)
    ready(terminal)
    flooder = flood(client.sock, pattern=FLOOD_LINE)
    terminal.expect_screen("flood-line")
    terminal.enter("/stats")
    report = r"(?m)^received +[\d,]+ bytes in [\d,]+ reads.*\nsent +0 bytes in 0 sends"
    shown = visible_for(terminal, report, 2.9)
    assert readable(shown), f"/stats on screen in {sum(shown)} of {len(shown)} samples: {shown}"
    # The line about what the screen skipped, too.
    shown = visible_for(terminal, SKIPPED, 2.9)
    assert readable(shown), f"skipped line on screen in {sum(shown)} of {len(shown)}: {shown}"
    assert not flooder.done.is_set(), "the flood ended too soon"
    # Data keeps scrolling above the answer meanwhile.
    assert "flood-line" in terminal.screen_text()


def test_pinned_answers_leave_once_old(spawn, make_peer, flood):
    peer = make_peer()
    terminal, client = start(spawn, peer)
    ready(terminal)
    flooder = flood(client.sock, pattern=FLOOD_LINE)
    terminal.expect_screen("flood-line")
    terminal.enter("/nosuch")
    answer = r"(?m)^unknown command /nosuch \(/help lists the commands\)$"
    terminal.expect_screen(answer)
    flooder.stop()
    # Once the flood stopped and the answer is old, it is no longer held above the prompt
    # (it is in the scrollback, where data pushed it).
    deadline = time.monotonic() + 6
    while re.search(answer, terminal.screen_text()) and time.monotonic() < deadline:
        terminal._pump(0.1)
    assert not re.search(answer, terminal.screen_text()), terminal.screen_text()


# ---- resizing the window -------------------------------------------------------------------------


class ReflowingScreen(_AnsweringScreen):
    """A screen that reflows its rows when it gets narrower, as VTE, kitty, iTerm2, Windows
    Terminal and tmux do (pyte itself cuts them): a row wider than the new width continues on
    the rows below, the cursor stays on its character, and rows pushed off the top go to the
    scrollback (`history`)."""

    history: list[str]

    def resize(self, lines: int | None = None, columns: int | None = None) -> None:
        lines, columns = lines or self.lines, columns or self.columns
        if columns >= self.columns:
            super().resize(lines, columns)
            return
        rows: list[list[pyte.screens.Char]] = []
        cursor = (0, 0)
        for y in range(self.lines):
            line = self.buffer[y]
            width = max((x + 1 for x, char in line.items() if char.data.strip()), default=0)
            cells = [line[x] for x in range(width)]
            if y == self.cursor.y:
                cursor = (len(rows) + self.cursor.x // columns, self.cursor.x % columns)
            rows += [cells[i : i + columns] for i in range(0, width, columns)] or [[]]
        while len(rows) > lines and len(rows) - 1 > cursor[0] and not rows[-1]:
            rows.pop()
        drop = max(0, len(rows) - lines)
        self.history = [
            *getattr(self, "history", []),
            *("".join(c.data for c in r) for r in rows[:drop]),
        ]
        self.buffer.clear()
        for y, cells in enumerate(rows[drop:]):
            for x, char in enumerate(cells):
                self.buffer[y][x] = char
        self.cursor.y, self.cursor.x = max(cursor[0] - drop, 0), cursor[1]
        self.lines, self.columns = lines, columns
        self.set_margins()
        self.dirty.update(range(lines))


def test_narrowing_the_window_while_a_long_line_is_typed_leaves_one_copy(spawn, make_peer):
    peer = make_peer(greeting=b"".join(b"data %02d\n" % i for i in range(40)))
    terminal = spawn(*peer.args)
    terminal.screen = ReflowingScreen(terminal.screen.columns, terminal.screen.lines)
    terminal.screen.child = terminal.child
    terminal._stream = pyte.ByteStream(terminal.screen)
    terminal.expect_screen(rows("data 39"))
    ready(terminal)
    line = " ".join(f"w{i:03d}" for i in range(50))  # 249 characters
    terminal.type(line)
    terminal.expect_screen(r"(?m)w049$")
    asked = terminal.raw.count(b"\x1b[6n")
    resize(terminal, 30, 60)
    # netrepl erases and asks where the cursor is, then draws the prompt again once told.
    terminal._wait(
        lambda: (
            terminal.raw.count(b"\x1b[6n") > asked
            and b"\x1b[?25h" in terminal.raw[terminal.raw.rindex(b"\x1b[6n") :]
        ),
        "the prompt drawn again at the new width",
        None,
    )
    drain(terminal)
    wrapped = [("> " + line)[i : i + 60] for i in range(0, len(line) + 2, 60)]
    terminal.expect_screen(rows(*wrapped))
    screen = terminal.screen_text()
    assert screen.count("> w000") == 1, screen
    assert "> w000" not in "\n".join(terminal.screen.history), terminal.screen.history
    terminal.enter()
    assert peer.wait_for_client().wait_for(line.encode() + b"\n").endswith(line.encode() + b"\n")
