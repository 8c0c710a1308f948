"""Every `printf '...' | netrepl ...` example in README.md, docs/guide.md and `netrepl --help`
sends what it shows: run against a loopback peer (the example's host and port replaced), the
peer receives printf's lines, each ending in the example's end of line (`--eol`, LF by
default), exactly. An example whose printf holds a CR would show bytes that a piped line
never sends (its line ending is --eol's), unless it uses `--stdin raw`.
"""

from __future__ import annotations

import contextlib
import re
import shlex
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from websockets.sync.server import ServerConnection, serve

from netrepl.options import build_parser, parse_options
from netrepl.payload import EOLS
from tests.net.conftest import WAIT, netrepl_env
from tests.proxies import real_proxy

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = re.compile(r"printf '((?:[^'\\]|\\.)*)' \| netrepl ([^\n#>]*)")


def examples() -> list[tuple[str, str, str]]:
    """(where, printf's format, netrepl's arguments) of every example."""
    found = []
    for name in ("README.md", "docs/guide.md"):
        text = (ROOT / name).read_text(encoding="utf-8")
        found += [(name, m.group(1), m.group(2).strip()) for m in EXAMPLE.finditer(text)]
    help_text = build_parser().format_help()
    # --help puts what an example does after two spaces or more.
    found += [
        ("--help", m.group(1), re.split(r"\s{2,}", m.group(2).strip())[0])
        for m in EXAMPLE.finditer(help_text)
    ]
    return found


def test_the_docs_have_printf_examples_to_check():
    places = {where for where, _, _ in examples()}
    assert places == {"README.md", "docs/guide.md", "--help"}, examples()


def printed(fmt: str) -> bytes:
    """What the shell's printf writes for `fmt` (the reader's shell, not Python's escapes)."""
    return subprocess.run(["printf", fmt], capture_output=True, check=True).stdout


def expected_on_the_wire(fmt: str, options: dict[str, str]) -> bytes:
    data = printed(fmt)
    if options.get("stdin") == "raw":
        return data
    eol = EOLS[options.get("eol") or "lf"]
    lines = data.split(b"\n")
    if lines[-1] == b"":
        lines.pop()
    return b"".join(line + eol for line in lines)


class Recorder:
    """A loopback listener recording what its one client sends, until the client ends."""

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(WAIT)
        self.port = self.listener.getsockname()[1]
        self.received = bytearray()
        self.done = threading.Event()
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        try:
            sock, _ = self.listener.accept()
            with sock:
                sock.settimeout(WAIT)
                while chunk := sock.recv(65536):
                    self.received += chunk
        except OSError:
            pass
        finally:
            self.done.set()


class MessageRecorder:
    """A loopback WebSocket server (the `websockets` library, not netrepl's wsproto)
    recording the messages of its one client, until the client closes."""

    def __init__(self) -> None:
        self.messages: list[bytes] = []
        self.done = threading.Event()
        self.server = serve(self._record, "127.0.0.1", 0)
        self.port = self.server.socket.getsockname()[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def _record(self, connection: ServerConnection) -> None:
        try:
            for message in connection:
                self.messages.append(message.encode() if isinstance(message, str) else message)
        finally:
            self.done.set()


def check_websocket_example(where: str, fmt: str, words: list[str], tmp_path: Path) -> None:
    """A ws:// example: each printf line is one text message, ending in --eol's end of line
    (none by default, as the WebSocket kind declares)."""
    options = parse_options(words)
    recorder = MessageRecorder()
    try:
        url = next(word for word in words if word.startswith("ws://"))
        path = "/" + url.split("://", 1)[1].partition("/")[2]
        words = [f"ws://127.0.0.1:{recorder.port}{path}" if w == url else w for w in words]
        result = subprocess.run(
            [sys.executable, "-m", "netrepl", *words, "--linger", "0.2"],
            input=printed(fmt),
            capture_output=True,
            env=netrepl_env(),
            cwd=tmp_path,  # where a --log FILE goes
            timeout=20,
        )
        assert result.returncode == 0, result.stderr
        assert recorder.done.wait(WAIT)
    finally:
        recorder.server.shutdown()
    lines = printed(fmt).split(b"\n")
    if lines[-1] == b"":
        lines.pop()
    eol = EOLS[options.eol]
    expected = [line + eol for line in lines]
    assert recorder.messages == expected, f"{where}: printf '{fmt}' | netrepl {' '.join(words)}"


@pytest.mark.parametrize(("where", "fmt", "arguments"), examples())
def test_a_printf_example_sends_what_it_shows(where, fmt, arguments, tmp_path):
    words = shlex.split(arguments)
    if any(word.startswith("ws://") for word in words):
        check_websocket_example(where, fmt, words, tmp_path)
        return
    options = vars(build_parser().parse_args(words))
    assert options["stdin"] == "raw" or "\\r" not in fmt, (
        f"{where}: printf '{fmt}' shows a CR, but a piped line ends in --eol's end of line"
    )
    expected = expected_on_the_wire(fmt, options)
    if options["listen"]:
        port = options["port"] or options["host"]
        words = [word if word != port else "0" for word in words]
        words.insert(words.index("-l") + 1, "127.0.0.1")
        process = subprocess.Popen(
            [sys.executable, "-m", "netrepl", *words],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=netrepl_env(),
        )
        assert process.stderr is not None
        status = process.stderr.readline().decode()
        match = re.search(r"listening on 127\.0\.0\.1:(\d+)", status)
        assert match, status
        with socket.create_connection(("127.0.0.1", int(match.group(1))), timeout=WAIT) as sock:
            process.stdin.write(printed(fmt))  # type: ignore[union-attr]
            process.stdin.close()  # type: ignore[union-attr]
            received = bytearray()
            while chunk := sock.recv(65536):  # until netrepl half-closes at the end of stdin
                received += chunk
        process.wait(WAIT)
        assert bytes(received) == expected, f"{where}: printf '{fmt}' | netrepl {arguments}"
        return
    recorder = Recorder()
    words = [*words[:-2], "127.0.0.1", str(recorder.port)]  # HOST PORT come last
    with contextlib.ExitStack() as stack:
        if options["proxy"]:
            # Through a real proxy on this machine, at the port the example's URL names.
            proxy = stack.enter_context(real_proxy("socks5+http"))
            url = options["proxy"]
            words[words.index(url)] = re.sub(r":\d+$", f":{proxy.port}", url)
        result = subprocess.run(
            [sys.executable, "-m", "netrepl", *words, "--linger", "0.2"],
            input=printed(fmt),
            capture_output=True,
            env=netrepl_env(),
            timeout=20,
        )
    assert result.returncode == 0, result.stderr
    assert recorder.done.wait(WAIT)
    assert bytes(recorder.received) == expected, f"{where}: printf '{fmt}' | netrepl {arguments}"
