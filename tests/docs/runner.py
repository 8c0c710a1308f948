"""Run a doc session for real and return the lines its doc block must hold.

An `Interactive` session runs netrepl in a pty (tests/terminal.py: pexpect + pyte, with the
scrollback kept) and types each line as a person does: at the prompt, once what the last
line provoked is on the screen. A `Batch` session runs it with piped stdin and takes stdout
(or stderr, or the file `> FILE` names); while it runs, its steps play a relay's client,
each waiting on what can be counted or read (bytes at the other side, a line netrepl said),
then for the output to stay still. Only loopback is ever contacted: the doc's hosts are
played by `peers.Role`s. A relay (`-l PORT --relay HOST:PORT`) connects to its upstream
role once per client, so the runner waits for that connection after each `Connect`.

What legitimately varies from run to run is replaced in a narrow, declared way, never by
loosening a line:
- a role's real loopback `host:port` → its doc address (`127.0.0.1:41327` → `192.168.1.7:502`);
- netrepl's own end of each connection a role accepted → `Interactive.local`, in order;
- a listener's address (`-l PORT` runs as `-l 127.0.0.1 0`) → `listen` (`*:9000`, as netrepl
  names a listener on every interface);
- addresses the runner cannot know (the demo peer runs inside netrepl) → `unknown`, in
  order of first appearance;
- the seconds of a `/time delta` header, a `--time on` clock, a flow's age and a
  certificate's expiry → the values declared.
A loopback address left over after that is an error, not a doc line.

Besides what a session shows, the runner reads two things from netrepl's screen: the prompt
ends in `> ` (it types only then), and the toolbar says `rx N B` and `tx N B` (it types the
next line only once those count every byte the peers sent and took; for a relay, rx is what
both sides sent and tx what both received, so a held or dropped frame is counted in rx and
never in tx, as at the peers). If netrepl changes either, change
`ScrollbackTerminal.prompt_ready` or `toolbar_counts`, then regenerate.
"""

from __future__ import annotations

import os
import re
import shlex
import signal
import subprocess
import sys
import tempfile
import threading
import time
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import pexpect
import pyte

from tests.docs.peers import DatagramSender, DeviceClient, Role, Server
from tests.terminal import ROWS, Terminal, terminal_env

WAIT = 10.0
"""Seconds any single wait may take before the session fails."""

DOC_COLUMNS = 160
"""The doc terminal's width: wider than any line shown, so none is wrapped."""

QUIET = 0.2
"""Seconds the screen must stay unchanged before the next line is typed. netrepl shows the
last, unfinished hexdump row of a burst (and a character cut at the end of a read) only
after 30 ms of quiet, and nothing on the screen says it is still to come: a person reads the
screen before typing, and a row shown after the next echo would not be what they see."""


# ---- steps -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Type:
    """Type a command that puts nothing on the wire (`/hex`, `/time delta`, `/quit`);
    `connects`: how many connections it opens (`/reconnect`), waited for."""

    line: str
    connects: int = 0


@dataclass(frozen=True)
class Send:
    """Type a line that puts bytes on the wire (text, `/x ...`); wait for its answer."""

    line: str


@dataclass(frozen=True)
class Connect:
    """The device at `who` (a `DeviceClient`'s doc address) connects to the listener."""

    who: str


@dataclass(frozen=True)
class Push:
    """The device or sender at `who` sends `data` to netrepl (a datagram from a sender)."""

    who: str
    data: bytes


@dataclass(frozen=True)
class Await:
    """(Batch) wait until netrepl has printed `text` (on stderr) `times` times in all: what a
    script did (`forwarded frame 2`), where no byte count can say it."""

    text: str
    times: int = 1


@dataclass(frozen=True)
class Leave:
    """(Batch) the device or client at `who` closes its connection."""

    who: str


@dataclass(frozen=True)
class Interrupt:
    """(Batch) Ctrl-C, once every byte a peer sent has reached the other peers: netrepl gets
    SIGINT, and the block shows `^C` where the terminal would."""


Step = Type | Send | Connect | Push | Await | Leave | Interrupt


# ---- sessions ----------------------------------------------------------------------------------


@dataclass
class Vary:
    """Values that change from run to run: each match of `pattern`'s group 1 is replaced,
    in order, by the next of `shown`."""

    pattern: str
    shown: Sequence[str]


@dataclass
class Interactive:
    """A session typed in a terminal.

    command: the command line as the doc shows it (`$ netrepl 192.168.1.7 502 --view hex`).
    peers: the roles that play the doc's hosts, and devices that connect in.
    steps: what is typed and what the peers do, in order.
    show_command: the block starts with `command`.
    start_at: the block starts at the first screen line that starts with this.
    screen: the block ends with the prompt (the cursor as `_`) and the toolbar, as on the
      screen; the empty rows between them are left out.
    notes: a note for the first line that starts with each key, in a column (`← ...`).
    local: how netrepl's own end of each connection reads, in the order the peers accepted.
    listen: how the listener's address reads (`-l` sessions).
    unknown: how addresses the runner cannot know read, in order of first appearance.
    vary: other values that change from run to run.
    """

    command: str
    peers: list[Role]
    steps: list[Step]
    show_command: bool = True
    start_at: str | None = None
    screen: bool = False
    notes: dict[str, str] = field(default_factory=dict)
    local: Sequence[str] = ("192.168.1.10:51234", "192.168.1.10:51236")
    listen: str | None = None
    unknown: Sequence[str] = ()
    vary: Sequence[Vary] = ()


@dataclass
class Batch:
    """A pipe: `command` is `[$ ]printf '...' | netrepl ARGS [< FILE] [> FILE]`; the left side
    runs in sh, as in the reader's shell. The block is the command, then what `show` names:
    `stdout`, `stderr`, or a file netrepl wrote (`traffic.txt`, shown after `$ cat NAME`).

    files: files in netrepl's directory before it starts (`< FILE`, `--script FILE`).
    steps: what the peers do while netrepl runs (a relay's clients; Connect, Push, Await,
      Leave, Interrupt); without steps netrepl runs to its end at once.
    listen: how the listener's address reads (`-l` sessions).
    then: commands run afterwards in the same directory (`$ netrepl export ...`), each shown
      with what it printed.
    """

    command: str
    peers: list[Role]
    show: Sequence[str] = ("stdout",)
    show_command: bool = True
    exit_status: int = 0
    files: dict[str, bytes] = field(default_factory=dict)
    local: Sequence[str] = ("192.168.1.10:51234",)
    vary: Sequence[Vary] = ()
    steps: list[Step] = field(default_factory=list)
    listen: str | None = None
    then: Sequence[str] = ()


Session = Interactive | Batch


def run(session: Session) -> list[str]:
    """Run `session` and return its doc block's lines."""
    with tempfile.TemporaryDirectory(prefix="netrepl-doc-") as home:
        for peer in session.peers:
            peer.start()
        try:
            if isinstance(session, Interactive):
                return _run_interactive(session, home)
            return _run_batch(session, home)
        finally:
            for peer in session.peers:
                peer.stop()


# ---- the command line --------------------------------------------------------------------------


def _split(command: str) -> list[str]:
    return shlex.split(command.removeprefix("$ "), comments=True)


def real_arguments(words: list[str], peers: list[Role]) -> list[str]:
    """netrepl's arguments with the doc's hosts replaced by their loopback peers, and a
    listener on loopback only, at a free port."""
    assert words and words[0] == "netrepl", f"not a netrepl command: {words}"
    args = words[1:]
    for peer in peers:
        if not isinstance(peer, Server):
            continue
        host, port = peer.doc_address.rsplit(":", 1)
        at = next(
            (i for i in range(len(args) - 1) if args[i : i + 2] == [host, port]),
            None,
        )
        url = next((i for i, word in enumerate(args) if f"//{peer.doc_address}/" in word), None)
        if at is not None:
            args[at : at + 2] = ["127.0.0.1", str(peer.port)]
        elif url is not None:  # ws://HOST:PORT/PATH
            args[url] = args[url].replace(f"//{peer.doc_address}/", f"//127.0.0.1:{peer.port}/")
        else:
            # One word, as --relay HOST:PORT names its upstream.
            assert peer.doc_address in args, f"{host} {port} is not in the command line {words}"
            args[args.index(peer.doc_address)] = f"127.0.0.1:{peer.port}"
        # The certificate is checked against the doc's name, as when that name is connected to.
        if "--tls" in args and "--sni" not in args and not re.fullmatch(r"[\d.]+", host):
            args += ["--sni", host]
    for flag in ("-l", "--listen"):
        if flag in args:
            at = args.index(flag) + 1
            two = at + 1 < len(args) and args[at + 1].isdigit()
            args[at : at + (2 if two else 1)] = ["127.0.0.1", "0"]
    return args


def _environment(home: str, peers: list[Role], base: dict[str, str]) -> dict[str, str]:
    """No state or config of the user's (a config file could change the view or the eol)."""
    env = dict(base)
    env.update(
        XDG_STATE_HOME=os.path.join(home, "state"),
        XDG_CONFIG_HOME=os.path.join(home, "config"),
        PYTHONIOENCODING="utf-8",
    )
    for name in ("FORCE_COLOR", "NO_COLOR", "PYTHONWARNINGS", "SSL_CERT_FILE", "SSL_CERT_DIR"):
        env.pop(name, None)
    for peer in peers:
        env.update(peer.environment(home))
    return env


# ---- what varies -------------------------------------------------------------------------------

_LOOPBACK = re.compile(r"(?<![\w.])127\.0\.0\.1:\d+(?!\d)")


class DocValues:
    """Real values seen in a run → how the doc shows them (see the module docstring)."""

    def __init__(self, session: Session) -> None:
        self._session = session
        self.known: dict[str, str] = {}

    def collect(self, netrepl_listens_at: str | None = None) -> None:
        session = self._session
        for peer in session.peers:
            self.known.update(peer.doc_values())
        ends = [end for peer in session.peers for end in peer.netrepl_ends()]
        assert len(ends) <= len(session.local), (
            f"netrepl made {len(ends)} connections; declare how each reads in `local`"
        )
        self.known.update(zip(ends, session.local, strict=False))
        if netrepl_listens_at is not None:
            assert session.listen, "declare `listen`"
            self.known[netrepl_listens_at] = session.listen

    def apply(self, lines: list[str]) -> list[str]:
        text = "\n".join(lines)
        shown = dict(self.known)
        declared = getattr(self._session, "unknown", ())
        unknown = [a for a in dict.fromkeys(_LOOPBACK.findall(text)) if a not in shown]
        if len(unknown) > len(declared):
            raise AssertionError(
                f"loopback addresses with no doc address: {unknown[len(declared) :]}\n{text}"
            )
        shown.update(zip(unknown, declared, strict=False))
        if shown:
            # One pass: a doc value may be some other run's real port (50112 is ephemeral).
            reals = sorted(shown, key=len, reverse=True)
            pattern = r"(?<![\w.])(?:" + "|".join(map(re.escape, reals)) + r")(?!\d)"
            text = re.sub(pattern, lambda match: shown[match[0]], text)
        for vary in self._session.vary:
            text = re.sub(vary.pattern, _replacer(vary), text, flags=re.MULTILINE)
        return text.split("\n")


def _replacer(vary: Vary) -> Callable[[re.Match[str]], str]:
    """Replace group 1 of each match by the next of `vary.shown`."""
    values = iter(vary.shown)

    def replace(match: re.Match[str]) -> str:
        value = next(values, None)
        if value is None:
            raise AssertionError(f"more matches of {vary.pattern!r} than values {vary.shown}")
        whole = match.string
        return whole[match.start(0) : match.start(1)] + value + whole[match.end(1) : match.end(0)]

    return replace


# ---- interactive -------------------------------------------------------------------------------


class _ScrollbackScreen(pyte.HistoryScreen):
    """A screen that keeps what scrolls off its top and answers cursor-position queries."""

    child: object

    def write_process_input(self, data: str) -> None:
        self.child.send(data.encode())  # type: ignore[attr-defined]


class ScrollbackTerminal(Terminal):
    """tests/terminal.Terminal with a screen that keeps its scrollback (a session is longer
    than the rows a person sees at once, and the doc shows all of it), wide enough that no
    line the docs show is wrapped by the terminal (a reader's window may be any width)."""

    def __init__(
        self, args: list[str], env: dict[str, str], cwd: str, timeout: float = WAIT
    ) -> None:
        # Not Terminal.__init__: its screen keeps no scrollback, and is narrower.
        self.timeout = timeout
        self.raw = bytearray()
        self._searched = 0
        self.screen = _ScrollbackScreen(DOC_COLUMNS, ROWS, history=100_000)
        self._stream = pyte.ByteStream(self.screen)
        self.child = self.screen.child = pexpect.spawn(
            sys.executable,
            ["-m", "netrepl", *args],
            env=env,
            cwd=cwd,
            dimensions=(ROWS, DOC_COLUMNS),
            timeout=timeout,
        )

    @staticmethod
    def _text(row: object, end: int = DOC_COLUMNS) -> str:
        # A wide character fills its cell and leaves the next one empty ("").
        return "".join(row[x].data for x in range(end)).rstrip()  # type: ignore[index]

    def before_cursor(self) -> str:
        """The cursor's row up to the cursor, spaces kept (`> `)."""
        cursor = self.screen.cursor
        return "".join(self.screen.buffer[cursor.y][x].data for x in range(cursor.x))

    def rows(self) -> list[str]:
        return [self._text(self.screen.buffer[y]) for y in range(ROWS)]

    def all_lines(self) -> list[str]:
        """The scrollback and the screen, as a person would scroll through them."""
        rows = [*self.screen.history.top, *(self.screen.buffer[y] for y in range(ROWS))]
        wrapped = [self._text(row) for row in rows if row[DOC_COLUMNS - 1].data != " "]
        if wrapped:
            raise AssertionError(f"lines as wide as the terminal (it wraps them): {wrapped}")
        lines = [self._text(row) for row in rows]
        while lines and not lines[-1]:
            lines.pop()
        return lines

    def prompt_ready(self) -> bool:
        """The prompt is drawn whole (toolbar at the bottom) with nothing typed after it."""
        rows = self.rows()
        typed = rows[self.screen.cursor.y][len(self.before_cursor()) :]
        return bool(rows[-1]) and self.before_cursor().endswith("> ") and not typed.strip()

    def toolbar_counts(self) -> tuple[int, int] | None:
        """`rx N B  tx M B` from the toolbar: what netrepl has received and sent."""
        match = re.search(r"\brx ([\d,]+) B\b.*\btx ([\d,]+) B\b", self.rows()[-1])
        if match is None:
            return None
        return int(match[1].replace(",", "")), int(match[2].replace(",", ""))

    def wait_for(self, found: Callable[[], bool], what: str) -> None:
        """Wait until `found()`, reading the terminal meanwhile. Short reads: what is
        awaited may be a peer's count, which changes without a byte on the terminal."""
        deadline = time.monotonic() + self.timeout
        while not found():
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"timed out waiting for {what}\n--- screen ---\n{self.screen_text()}"
                )
            if not self._pump(0.02) and not self.child.isalive():
                self._pump(0)
                if not found():
                    raise AssertionError(
                        f"netrepl exited while waiting for {what}\n" + self.screen_text()
                    )


class _Play:
    """One interactive run: start, steps, and the lines left on the terminal."""

    def __init__(self, session: Interactive, terminal: ScrollbackTerminal) -> None:
        self.session = session
        self.terminal = terminal
        self.listening_at: str | None = None
        self.peers = {peer.doc_address: peer for peer in session.peers}
        self.servers = [peer for peer in session.peers if isinstance(peer, Server)]
        self.since = 0
        """The first connection the toolbar counts: /reconnect opens a transport anew."""
        self.live_prompt = ""
        self.live_between: list[str] = []
        self.live_toolbar = ""

    def begin(self) -> None:
        terminal = self.terminal
        terminal.wait_for(terminal.prompt_ready, "the first prompt")
        if self.session.listen is not None:
            # Before any client, the only loopback address netrepl names is its listener's.
            terminal.wait_for(
                lambda: _LOOPBACK.search("\n".join(terminal.all_lines())) is not None,
                "the listener's address",
            )
            match = _LOOPBACK.search("\n".join(terminal.all_lines()))
            assert match is not None
            self.listening_at = match[0]
        else:
            # A relay (listening) connects to its upstream only when a client comes.
            for server in self.servers:
                server.wait_accepted(1)
        self.settle()

    def listener(self) -> tuple[str, int]:
        assert self.listening_at is not None, "Connect and Push need a listening netrepl"
        host, port = self.listening_at.rsplit(":", 1)
        return host, int(port)

    def do(self, step: Step) -> None:
        terminal = self.terminal
        match step:
            case Type(line, connects):
                terminal.wait_for(terminal.prompt_ready, "the prompt")
                before = self._connections()
                for peer in self.session.peers:
                    peer.typed(line)
                terminal.enter(line)
                if line == "/quit":
                    return
                terminal.wait_for(
                    lambda: self._connections() >= before + connects,
                    f"{connects} new connection(s) from {line!r}",
                )
                if connects:
                    self.since = before
            case Send(line):
                terminal.wait_for(terminal.prompt_ready, "the prompt")
                before = sum(peer.counts()[1] for peer in self.session.peers)
                for peer in self.session.peers:
                    peer.typed(line)
                terminal.enter(line)
                terminal.wait_for(
                    lambda: sum(peer.counts()[1] for peer in self.session.peers) > before,
                    f"the bytes of {line!r} at a peer",
                )
            case Connect(who):
                peer = self.peers[who]
                assert isinstance(peer, DeviceClient)
                upstream = [len(server.netrepl_ends()) for server in self.servers]
                peer.connect(self.listener())
                # A relay joins each client to a connection of its own to the upstream.
                for server, before in zip(self.servers, upstream, strict=True):
                    server.wait_accepted(before + 1)
            case Push(who, data):
                peer = self.peers[who]
                if isinstance(peer, DatagramSender):
                    peer.send_to(self.listener(), data)
                else:
                    assert isinstance(peer, DeviceClient)
                    peer.push(data)
        self.settle()

    def _connections(self) -> int:
        return sum(len(peer.netrepl_ends()) for peer in self.session.peers)

    def settle(self) -> None:
        """Wait until netrepl has shown what the peers did: it names every connection and
        sender, its toolbar counts every byte they sent and took, and the screen is still."""
        terminal = self.terminal
        peers = self.session.peers
        named = {address for peer in peers for address in peer.named_by_netrepl()}
        terminal.wait_for(
            lambda: named <= set(_LOOPBACK.findall("\n".join(terminal.all_lines()))),
            f"netrepl to name {sorted(named)}",
        )

        def counted() -> bool:
            counts = [peer.counts(self.since) for peer in peers]
            sent, received = sum(c[0] for c in counts), sum(c[1] for c in counts)
            return terminal.toolbar_counts() == (sent, received)

        terminal.wait_for(counted, "the toolbar to count what the peers sent and took")
        still_since, last = time.monotonic(), terminal.all_lines()[:-1]
        deadline = time.monotonic() + WAIT
        while time.monotonic() - still_since < QUIET:
            if time.monotonic() > deadline:
                raise AssertionError(f"the screen never settled\n{terminal.screen_text()}")
            terminal._pump(0.02)
            now = terminal.all_lines()[:-1]
            if now != last:
                still_since, last = time.monotonic(), now
        rows = terminal.rows()
        # The prompt, the cursor as `_`, and the toolbar: what `screen` sessions end with.
        self.live_prompt = terminal.before_cursor() + "_"
        self.live_between = [row for row in rows[terminal.screen.cursor.y + 1 : -1] if row]
        self.live_toolbar = rows[-1]

    def end(self) -> list[str]:
        """Quit (unless the session does) and return what is left on the terminal, up to
        the runner's `/quit`."""
        terminal = self.terminal
        shown_quit = bool(self.session.steps) and self.session.steps[-1] == Type("/quit")
        if not shown_quit:
            terminal.wait_for(terminal.prompt_ready, "the prompt")
            terminal.enter("/quit")
        status = terminal.wait_exit(WAIT)
        assert status == 0, f"netrepl exited with {status}\n{terminal.plain[-2000:]}"
        lines = terminal.all_lines()
        if not shown_quit:
            quits = [i for i, line in enumerate(lines) if line.endswith("> /quit")]
            assert quits, f"no /quit on the screen\n{lines}"
            lines = lines[: quits[-1]]
        return lines


def _run_interactive(session: Interactive, home: str) -> list[str]:
    args = real_arguments(_split(session.command), session.peers)
    env = _environment(home, session.peers, terminal_env(os.path.join(home, "state")))
    terminal = ScrollbackTerminal(args, env, cwd=home)
    try:
        play = _Play(session, terminal)
        play.begin()
        for step in session.steps:
            play.do(step)
        lines = play.end()
    finally:
        terminal.close()
        terminal.child.close(force=True)
    values = DocValues(session)
    values.collect(play.listening_at)
    if session.screen:
        # Only empty rows are left out (prompt_toolkit keeps room for completions there).
        assert not play.live_between, f"rows under the prompt: {play.live_between}"
        lines = [*lines, play.live_prompt, play.live_toolbar]
    lines = values.apply(lines)
    if session.start_at is not None:
        starts = [i for i, line in enumerate(lines) if line.startswith(session.start_at)]
        assert starts, f"no line starts with {session.start_at!r}\n" + "\n".join(lines)
        lines = lines[starts[0] :]
    lines = _noted(lines, session.notes)
    if session.show_command:
        lines = [session.command, *lines]
    return lines


def _width(text: str) -> int:
    return sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in text)


def _noted(lines: list[str], notes: dict[str, str]) -> list[str]:
    """Notes in one column, six spaces right of the longest noted line."""
    targets: dict[int, str] = {}
    for start, note in notes.items():
        index = next((i for i, line in enumerate(lines) if line.startswith(start)), None)
        assert index is not None and index not in targets, f"no line for the note {start!r}"
        targets[index] = note
    if not targets:
        return lines
    column = max(_width(lines[i]) for i in targets) + 6
    return [
        line + " " * (column - _width(line)) + "← " + targets[i] if i in targets else line
        for i, line in enumerate(lines)
    ]


# ---- batch -------------------------------------------------------------------------------------


@dataclass
class _BatchCommand:
    """A batch command line taken apart: netrepl's words, its stdin, where its stdout goes."""

    words: list[str]
    stdin: bytes
    stdout: str | None
    """The file `> FILE` names (in netrepl's directory), or None for a pipe."""


def _batch_command(session: Batch) -> _BatchCommand:
    words = _split(session.command)
    stdin = b""
    if "|" in words:
        bar = words.index("|")
        left, words = words[:bar], words[bar + 1 :]
        stdin = subprocess.run(
            ["sh", "-c", shlex.join(left)], capture_output=True, check=True, timeout=WAIT
        ).stdout
    stdout = None
    for redirect in ("<", ">"):
        if redirect in words:
            at = words.index(redirect)
            name = words[at + 1]
            del words[at : at + 2]
            if redirect == ">":
                stdout = name
            elif name != "/dev/null":
                stdin = session.files[name]
    return _BatchCommand(words, stdin, stdout)


def _run_batch(session: Batch, home: str) -> list[str]:
    command = _batch_command(session)
    for name, content in session.files.items():
        with open(os.path.join(home, name), "wb") as file:
            file.write(content)
    args = real_arguments(command.words, session.peers)
    env = _environment(home, session.peers, dict(os.environ))
    play = _BatchPlay(session, [sys.executable, "-m", "netrepl", *args], command, env, home)
    try:
        play.begin()
        for step in session.steps:
            play.do(step)
        returncode = play.end()
    finally:
        play.stop()
    outputs = {"stdout": play.stdout(), "stderr": play.stderr_shown()}
    if returncode != session.exit_status:
        raise AssertionError(
            f"{session.command}: exit status {returncode}, not {session.exit_status}\n"
            f"stdout {outputs['stdout'][-2000:]!r}\nstderr {outputs['stderr'][-2000:]!r}"
        )
    lines: list[str] = []
    for stream in session.show:
        if stream not in outputs:
            lines.append(f"$ cat {stream}")
            with open(os.path.join(home, stream), encoding="utf-8") as file:
                output = file.read()
        else:
            output = outputs[stream]
        lines += output.removesuffix("\n").split("\n") if output else []
    for then in session.then:
        done = subprocess.run(
            [sys.executable, "-m", "netrepl", *_split(then)[1:]],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,  # one terminal shows both, in the order written
            env=env,
            cwd=home,
            timeout=2 * WAIT,
        )
        assert done.returncode == 0, f"{then}: exit status {done.returncode}\n{done.stdout!r}"
        lines += [then, *done.stdout.decode("utf-8").removesuffix("\n").split("\n")]
    values = DocValues(session)
    values.collect(play.listening_at)
    lines = values.apply(lines)
    return [session.command, *lines] if session.show_command else lines


class _BatchPlay:
    """One batch run: netrepl with piped stdin, its stderr read as it comes, the steps played
    against it (a relay's client connects, speaks, leaves), and its end."""

    def __init__(
        self,
        session: Batch,
        argv: list[str],
        command: _BatchCommand,
        env: dict[str, str],
        home: str,
    ) -> None:
        self.session = session
        self.home = home
        self.command = command
        self.peers = {peer.doc_address: peer for peer in session.peers}
        self.servers = [peer for peer in session.peers if isinstance(peer, Server)]
        self.listening_at: str | None = None
        self._stderr = bytearray()
        self._interrupted_at: int | None = None
        self._changed = threading.Condition()
        self._stdout_file = (
            open(os.path.join(home, command.stdout), "wb")  # noqa: SIM115 (closed in stop)
            if command.stdout is not None and command.stdout != "/dev/null"
            else None
        )
        self.process = subprocess.Popen(
            argv,
            stdin=subprocess.PIPE,
            stdout=self._stdout_file
            or (subprocess.DEVNULL if command.stdout == "/dev/null" else subprocess.PIPE),
            stderr=subprocess.PIPE,
            env=env,
            cwd=home,
        )
        self._stdout = bytearray()
        self._readers = [threading.Thread(target=self._read_stderr, daemon=True)]
        if self.process.stdout is not None:
            self._readers.append(threading.Thread(target=self._read_stdout, daemon=True))
        for reader in self._readers:
            reader.start()

    def _read_stderr(self) -> None:
        assert self.process.stderr is not None
        while data := self.process.stderr.read1(65536):
            with self._changed:
                self._stderr += data
                self._changed.notify_all()

    def _read_stdout(self) -> None:
        assert self.process.stdout is not None
        while data := self.process.stdout.read1(65536):
            with self._changed:
                self._stdout += data
                self._changed.notify_all()

    def wait(self, found: Callable[[], bool], what: str) -> None:
        deadline = time.monotonic() + WAIT
        with self._changed:
            while not found():
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(
                        f"timed out waiting for {what}\nstderr: {self.stderr_text()[-2000:]}"
                    )
                # Short slices: what is awaited may be a peer's count, which does not notify.
                self._changed.wait(min(left, 0.02))

    def stderr_text(self) -> str:
        return self._stderr.decode("utf-8", "replace")

    def begin(self) -> None:
        if self.command.stdin:
            assert self.process.stdin is not None
            self.process.stdin.write(self.command.stdin)
        assert self.process.stdin is not None
        self.process.stdin.close()
        if self.session.listen is not None:
            self.wait(lambda: _LOOPBACK.search(self.stderr_text()) is not None, "the listener")
            match = _LOOPBACK.search(self.stderr_text())
            assert match is not None
            self.listening_at = match[0]

    def _balanced(self) -> bool:
        """Every byte a peer sent has reached the others: nothing is in flight or held."""
        counts = [peer.counts() for peer in self.session.peers]
        return sum(c[0] for c in counts) == sum(c[1] for c in counts)

    def do(self, step: Step) -> None:
        match step:
            case Connect(who):
                peer = self.peers[who]
                assert isinstance(peer, DeviceClient) and self.listening_at is not None
                host, port = self.listening_at.rsplit(":", 1)
                accepted = [len(server.netrepl_ends()) for server in self.servers]
                peer.connect((host, int(port)))
                for server, before in zip(self.servers, accepted, strict=True):
                    server.wait_accepted(before + 1)
            case Push(who, data):
                peer = self.peers[who]
                assert isinstance(peer, DeviceClient)
                others = [p for p in self.session.peers if p is not peer]
                before = sum(p.counts()[1] for p in others)
                peer.push(data)
                # Through netrepl to the other side (a server counts it once it has answered).
                self.wait(
                    lambda: sum(p.counts()[1] for p in others) >= before + len(data),
                    f"{data!r} at the other side",
                )
            case Await(text, times):
                self.wait(lambda: self.stderr_text().count(text) >= times, f"{times} x {text!r}")
            case Leave(who):
                self.peers[who].stop()
                return
            case Interrupt():
                self.wait(self._balanced, "every byte to reach the other side")
                self.settle()
                with self._changed:
                    self._interrupted_at = len(self._stderr)
                self.process.send_signal(signal.SIGINT)
                return
            case _:
                raise AssertionError(f"{step} is not a batch step")
        self.settle()

    def settle(self) -> None:
        """netrepl has named every connection, and its output stays still a moment."""
        named = {address for peer in self.session.peers for address in peer.named_by_netrepl()}
        if "-q" not in self.command.words:
            self.wait(
                lambda: named <= set(_LOOPBACK.findall(self.stderr_text())),
                f"netrepl to name {sorted(named)}",
            )
        still_since, last = time.monotonic(), self._output_size()
        deadline = time.monotonic() + WAIT
        while time.monotonic() - still_since < QUIET:
            if time.monotonic() > deadline:
                raise AssertionError("netrepl's output never settled")
            with self._changed:
                self._changed.wait(0.02)
            now = self._output_size()
            if now != last:
                still_since, last = time.monotonic(), now

    def _output_size(self) -> tuple[int, ...]:
        written = os.path.getsize(self._stdout_file.name) if self._stdout_file is not None else 0
        counts = tuple(n for peer in self.session.peers for n in peer.counts())
        with self._changed:
            return (len(self._stderr), len(self._stdout), written, *counts)

    def end(self) -> int:
        try:
            returncode = self.process.wait(2 * WAIT)
        except subprocess.TimeoutExpired as error:
            raise AssertionError(
                f"{self.session.command}: still running after {2 * WAIT} s\n"
                f"stderr: {self.stderr_text()[-2000:]}"
            ) from error
        for reader in self._readers:
            reader.join(WAIT)
        return returncode

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(WAIT)
        if self._stdout_file is not None:
            self._stdout_file.close()

    def stdout(self) -> str:
        return self._stdout.decode("utf-8")

    def stderr_shown(self) -> str:
        """stderr as the terminal shows it: `^C` where Ctrl-C was pressed."""
        stderr = bytes(self._stderr)
        at = self._interrupted_at
        if at is not None:
            stderr = stderr[:at] + b"^C\n" + stderr[at:]
        return stderr.decode("utf-8")
