"""Batch mode: the real program as a subprocess, stdin piped, against real loopback peers.

Exit codes: 0 ok (the peer closing included), 1 connection error, 2 usage error. Received
data goes to stdout, messages to stderr, and nothing reaches either as a raw escape sequence.
"""

from __future__ import annotations

import hashlib
import re

import pytest

from netrepl.demo import HELP, HOSTILE, flood_bytes
from tests.net.conftest import hexdump_line, reset_after_line_script, run_netrepl
from tests.peers import free_port

# One `hexdump -C` line: offset, up to 16 bytes in two groups, and the ASCII gutter.
HEXDUMP_LINE = re.compile(
    r"(?P<offset>[0-9a-f]{8})  (?P<hex>[0-9a-f ]{23}  [0-9a-f ]{23})  \|(?P<gutter>[ -~]{1,16})\|"
)


def parse_hexdump(text: str) -> bytes:
    """The bytes a run of hexdump -C lines shows, checking that the offsets follow on."""
    out = bytearray()
    for line in text.splitlines():
        match = HEXDUMP_LINE.fullmatch(line)
        assert match, f"not a hexdump -C line: {line!r}"
        assert int(match["offset"], 16) == len(out), f"offset out of step: {line!r}"
        chunk = bytes.fromhex(match["hex"])
        assert 1 <= len(chunk) <= 16 and len(match["gutter"]) == len(chunk), line
        out += chunk
    return bytes(out)


def stderr_lines(result) -> list[str]:
    return result.stderr.decode().splitlines()


# ---- the README example ------------------------------------------------------------------------


def test_redis_ping_prints_pong(redis_peer):
    result = run_netrepl(*redis_peer.args, stdin=b"PING\r\n")

    assert result.returncode == 0, result.stderr
    assert result.stdout == b"+PONG\n"
    # The CR of the CRLF stdin line is not sent: the default end of line is LF.
    assert redis_peer.wait_finished() == b"PING\n"


def test_output_has_no_terminal_codes_and_status_goes_to_stderr(redis_peer):
    result = run_netrepl(*redis_peer.args, "--linger", "30", stdin=b"PING\nQUIT\n")

    assert result.returncode == 0, result.stderr
    assert result.stdout == b"+PONG\n+OK\n"
    assert b"\x1b" not in result.stdout and b"\x1b" not in result.stderr
    lines = stderr_lines(result)
    assert lines[0].startswith(f"netrepl: connected to 127.0.0.1:{redis_peer.port} from 127.0.0.1:")
    # The end of stdin half-closes; the peer may have closed first, after QUIT.
    half = f"netrepl: sent end of stream to 127.0.0.1:{redis_peer.port}: half-closed, still"
    lines = [line for line in lines if not line.startswith(half)]
    assert len(lines) == 2, lines
    assert lines[1] == "netrepl: connection closed by peer (12 bytes received, 10 sent)"


def test_quiet_suppresses_status_lines(redis_peer):
    result = run_netrepl(*redis_peer.args, "-q", "--linger", "30", stdin=b"PING\nQUIT\n")
    assert result.returncode == 0
    assert result.stdout == b"+PONG\n+OK\n"
    assert result.stderr == b""


@pytest.mark.parametrize(
    ("options", "sent"),
    [((), b"PING\nQUIT\n"), (("--eol", "crlf"), b"PING\r\nQUIT\r\n")],
)
def test_crlf_stdin_lines_send_no_stray_cr(redis_peer, options, sent):
    result = run_netrepl(*redis_peer.args, *options, "--linger", "30", stdin=b"PING\r\nQUIT\r\n")
    assert result.returncode == 0, result.stderr
    assert redis_peer.wait_finished() == sent


# ---- the demo peer -----------------------------------------------------------------------------


def test_demo_answers_help():
    result = run_netrepl("--demo", "--linger", "30", stdin=b"help\nhostile\nclose\n")

    assert result.returncode == 0, result.stderr
    stdout = result.stdout.decode()
    assert HELP.decode().replace("\r\n", "\n") in stdout
    assert stdout.endswith("bye\n")
    assert "\x1b" not in stdout and "\x07" not in stdout and "\x9b" not in stdout
    assert "\\x1b[2J" in stdout, "the hostile line is shown with visible escapes"
    assert "demo peer on 127.0.0.1:" in result.stderr.decode()


def test_demo_flood_reaches_stdout_whole():
    size = 2_000_000
    result = run_netrepl(
        "--demo", "-q", "--linger", "30", stdin=f"flood {size}\nclose\n".encode(), timeout=40
    )
    assert result.returncode == 0, result.stderr[-500:]
    tail = b"bye\n"
    assert result.stdout.endswith(tail)
    flood = result.stdout.split(b"\n", 3)[3]  # after the greeting's three lines
    flood = flood[flood.index(b"netrepl demo flood") : -len(tail)]
    assert len(flood) == size
    assert hashlib.sha256(flood).digest() == hashlib.sha256(flood_bytes(size)).digest()


# ---- views -------------------------------------------------------------------------------------


def test_hex_view_prints_hexdump_lines(make_peer):
    peer = make_peer(greeting=b"hello\x00\x01\xff", close_after_greeting=True)
    result = run_netrepl(*peer.args, "--view", "hex", "-q", stdin=b"")
    assert result.returncode == 0, result.stderr
    assert result.stdout.decode() == hexdump_line(0, b"hello\x00\x01\xff")


def test_hex_view_of_a_longer_stream(make_peer):
    data = bytes(range(256)) * 3 + HOSTILE
    peer = make_peer(greeting=[data[:100], data[100:]], close_after_greeting=True)
    result = run_netrepl(*peer.args, "--view", "hex", "-q", stdin=b"")
    assert result.returncode == 0, result.stderr
    assert parse_hexdump(result.stdout.decode("ascii")) == data


def test_raw_view_writes_received_bytes_unchanged(make_peer):
    data = bytes(range(256)) + HOSTILE + hashlib.sha256(b"x").digest() * 200 + b"\xe4\xb8"
    peer = make_peer(greeting=data, close_after_greeting=True)
    result = run_netrepl(*peer.args, "--view", "raw", "-q", stdin=b"")
    assert result.returncode == 0, result.stderr
    assert result.stdout == data


@pytest.mark.parametrize("option", [("--view", "gbk"), ("--encoding", "gbk")])
def test_gbk_peer_shows_chinese(make_peer, option):
    text = "你好，世界！设备说中文\r\n"
    peer = make_peer(greeting=text.encode("gbk"), close_after_greeting=True)
    result = run_netrepl(*peer.args, *option, stdin=b"")
    assert result.returncode == 0, result.stderr
    assert result.stdout.decode() == "你好，世界！设备说中文\n"


def test_gbk_bytes_in_the_default_view_are_escaped(make_peer):
    peer = make_peer(greeting="中\n".encode("gbk"), close_after_greeting=True)
    result = run_netrepl(*peer.args, stdin=b"")
    assert result.returncode == 0
    assert result.stdout == b"\\xd6\\xd0\n"


def test_trailing_partial_character_is_shown_at_the_end(make_peer):
    peer = make_peer(greeting=b"ab\xe4", close_after_greeting=True)
    result = run_netrepl(*peer.args, stdin=b"")
    assert result.returncode == 0
    assert result.stdout == b"ab\\xe4\n"
    assert "connection closed by peer" in result.stderr.decode()


# ---- end of stdin, linger and quit --------------------------------------------------------------


def test_exits_when_the_peer_closes_without_waiting_for_linger(make_peer):
    peer = make_peer(greeting=b"one shot\n", close_after_greeting=True)
    # A linger far beyond the communicate timeout: exiting at all proves it did not wait.
    result = run_netrepl(*peer.args, "--linger", "600", stdin=b"", timeout=15)
    assert result.returncode == 0
    assert result.stdout == b"one shot\n"


def test_one_shot_pipe_exits_when_the_peer_closes_after_the_half_close(redis_peer):
    # `printf 'PING\r\n' | netrepl HOST PORT`: the end of stdin half-closes, Redis answers
    # and closes, and netrepl leaves then: the linger, far beyond the timeout, never runs.
    result = run_netrepl(*redis_peer.args, "--linger", "600", stdin=b"PING\r\n", timeout=15)
    assert result.returncode == 0, result.stderr
    assert result.stdout == b"+PONG\n"
    assert redis_peer.wait_finished() == b"PING\n", "the peer read the end of the stream"
    assert "connection closed by peer" in result.stderr.decode()


def test_linger_ends_a_quiet_connection(make_peer):
    peer = make_peer(greeting=b"hi\n")
    result = run_netrepl(*peer.args, "--linger", "0.3", stdin=b"hello\n", timeout=15)
    assert result.returncode == 0, result.stderr
    assert result.stdout == b"hi\n"
    client = peer.wait_for_client()
    assert client.wait_closed() == b"hello\n", "netrepl closes its side when it leaves"


@pytest.mark.parametrize("quit_line", [b"/quit", b"/exit"])
def test_quit_on_stdin_leaves_at_once(make_peer, quit_line):
    peer = make_peer()
    result = run_netrepl(
        *peer.args, "--linger", "600", stdin=b"a\n" + quit_line + b"\nb\n", timeout=15
    )
    assert result.returncode == 0, result.stderr
    assert peer.wait_for_client().wait_closed() == b"a\n"


# ---- errors ------------------------------------------------------------------------------------


def test_connection_refused():
    port = free_port()
    result = run_netrepl("127.0.0.1", str(port), stdin=b"PING\n")
    assert result.returncode == 1
    assert (
        result.stderr
        == f"netrepl: cannot connect to 127.0.0.1:{port}: connection refused\n".encode()
    )
    assert result.stdout == b""


REFUSED = str(free_port())


@pytest.mark.parametrize(
    "args",
    [
        [],
        ["127.0.0.1"],
        ["127.0.0.1", "0"],
        ["127.0.0.1", "65536"],
        ["127.0.0.1", "nosuchservice"],
        ["127.0.0.1", "²"],
        ["127.0.0.1", REFUSED, "extra"],
        ["--view", "bogus", "127.0.0.1", REFUSED],
        ["--view"],
        ["--eol", "lfcr", "127.0.0.1", REFUSED],
        ["--linger", "-1", "127.0.0.1", REFUSED],
        ["--linger", "nan", "127.0.0.1", REFUSED],
        ["--connect-timeout", "soon", "127.0.0.1", REFUSED],
        ["--encoding", "nosuch-codec", "127.0.0.1", REFUSED],
        ["--encoding", "hex", "127.0.0.1", REFUSED],
        ["--view", "gbk", "--encoding", "big5", "127.0.0.1", REFUSED],
        ["--demo", "127.0.0.1", REFUSED],
        ["--no-such-option", "127.0.0.1", REFUSED],
    ],
    ids=lambda args: " ".join(args).replace(REFUSED, "PORT") or "no-arguments",
)
def test_usage_errors_exit_2_with_one_line(args):
    result = run_netrepl(*args, stdin=b"")
    assert result.returncode == 2, result.stderr
    assert result.stdout == b""
    lines = stderr_lines(result)
    assert len(lines) == 1, lines
    assert lines[0].startswith("netrepl: "), lines


@pytest.mark.parametrize(
    ("bad_line", "message"),
    [
        (b"/x 0g", "not a hex digit 'g'"),
        (b"/nosuch", "unknown command /nosuch"),
        (b"bad \\q escape", "bad escape"),
        (b"/view bogus", "'bogus' is not one of"),
    ],
)
def test_invalid_stdin_line_stops_with_exit_2(make_peer, bad_line, message):
    peer = make_peer()
    stdin = b"one\ntwo\n" + bad_line + b"\nfour\n"
    result = run_netrepl(*peer.args, "--linger", "600", stdin=stdin, timeout=15)

    assert result.returncode == 2
    errors = [line for line in stderr_lines(result) if "stdin line" in line]
    assert len(errors) == 1, stderr_lines(result)
    assert errors[0].startswith("netrepl: stdin line 3: ") and message in errors[0], errors
    assert peer.wait_for_client().wait_closed() == b"one\ntwo\n"


def test_lines_after_the_peer_closed_exit_1(make_peer, start_netrepl):
    peer = make_peer(greeting=b"bye\n", close_after_greeting=True)
    netrepl = start_netrepl(*peer.args, "--linger", "600")
    netrepl.wait_stderr(b"connection closed by peer")

    netrepl.write(b"anyone there?\n")
    result = netrepl.finish(timeout=15)

    assert result.returncode == 1
    assert result.stdout == b"bye\n"
    assert "netrepl: stdin line 1: not connected" in result.stderr.decode()


def test_peer_reset_exits_1(make_server):
    server = make_server(reset_after_line_script)
    result = run_netrepl(*server.args, "--linger", "600", stdin=b"hello\n", timeout=15)
    assert result.returncode == 1, result.stderr
    assert "netrepl: connection reset by peer" in result.stderr.decode()
    assert server.wait_finished() == b"hello\n"


@pytest.mark.parametrize("size", ["9" * 5000, "²", "-1"])
def test_demo_flood_with_a_bad_size_answers_with_its_usage(size):
    stdin = f"flood {size}\nclose\n".encode()
    result = run_netrepl("--demo", "--linger", "30", stdin=stdin)
    assert result.returncode == 0, result.stderr
    assert result.stdout.decode().endswith("usage: flood N (bytes, at most 1073741824)\nbye\n")
