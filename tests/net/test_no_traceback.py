"""No traceback, on any input: each hostile command line or typed line is one error line that
names the input. Batch mode exits 2 with exactly one such line on stderr and sends nothing
after it; the interactive REPL (tests/e2e/test_no_traceback_pty.py) says it and keeps running.

The real program as a subprocess against a real loopback echo peer.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys

import pytest

from netrepl.errors import UsageError
from netrepl.options import Startup
from tests.net.conftest import WAIT, netrepl_env, run_netrepl
from tests.peers import free_port

NOT_UTF8 = os.fsdecode(b"\xff")
"""`\\xff` on the command line: Python hands it over as a lone surrogate (surrogateescape)."""
LABEL_RULE = "each dot-separated part of a name must be 1 to 63 characters"
SECONDS = "is not a number of seconds from 0 to 86,400"
MS = "is not a whole number of milliseconds from"


def error_lines(result: subprocess.CompletedProcess[bytes]) -> list[str]:
    """stderr's lines, but the status lines every run prints (connected, the half-close at
    the end of stdin, closed)."""
    status = ("netrepl: connected to ", "netrepl: sent end of stream", "netrepl: connection closed")
    lines = result.stderr.decode("utf-8", "backslashreplace").splitlines()
    return [line for line in lines if not line.startswith(status)]


def assert_one_usage_error(result: subprocess.CompletedProcess[bytes], *expected: str) -> str:
    """Exit 2, no traceback, and exactly one error line, holding every `expected` piece."""
    assert b"Traceback" not in result.stderr, result.stderr.decode(errors="replace")
    assert result.returncode == 2, result.stderr
    lines = error_lines(result)
    assert len(lines) == 1, lines
    for piece in expected:
        assert piece in lines[0], (piece, lines[0])
    return lines[0]


# ---- the command line ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["a" * 64 + ".example", "PORT"], ["bad host 'aaaa", LABEL_RULE]),
        (["a..b", "PORT"], ["bad host 'a..b'", LABEL_RULE]),
        (["-u", "a..b", "PORT"], ["bad host 'a..b'", LABEL_RULE]),
        (["-l", "a..b", "0"], ["bad host 'a..b'", LABEL_RULE]),
        (["-u", "-l", ".a", "0"], ["bad host '.a'", LABEL_RULE]),
        (["--tls", "--sni", "a..b", "127.0.0.1", "PORT"], ["bad --sni 'a..b'", LABEL_RULE]),
        (["--tls", "--sni", "a\x01b", "127.0.0.1", "PORT"], ["bad --sni 'a\\x01b'", "control"]),
        (["--source", "a..b", "127.0.0.1", "PORT"], ["bad --source 'a..b'", LABEL_RULE]),
        (["--source", "[a..b]:0", "127.0.0.1", "PORT"], ["bad --source 'a..b'", LABEL_RULE]),
        ([NOT_UTF8, "PORT"], ["bad host '\\xff': not valid UTF-8"]),
        (["caf" + NOT_UTF8 + ".example", "PORT"], ["bad host 'caf\\xff.example'"]),
        (["127.0.0.1", NOT_UTF8], ["bad port '\\xff': not valid UTF-8"]),
        (["-l", NOT_UTF8], ["bad port '\\xff': not valid UTF-8"]),
        (["127.0.0.1", "9" * 30], ["port '999999999999999999999999999999' is out of range"]),
        (["--linger", "inf", "127.0.0.1", "PORT"], ["--linger", f"'inf' {SECONDS}"]),
        (["--linger", "1e300", "127.0.0.1", "PORT"], ["--linger", f"'1e300' {SECONDS}"]),
        (["--linger", "nan", "127.0.0.1", "PORT"], ["--linger", f"'nan' {SECONDS}"]),
        (["--reconnect", "1e300", "127.0.0.1", "PORT"], ["--reconnect", f"'1e300' {SECONDS}"]),
        (["--reconnect", "inf", "127.0.0.1", "PORT"], ["--reconnect", f"'inf' {SECONDS}"]),
        (
            ["--connect-timeout", "1e300", "127.0.0.1", "PORT"],
            ["--connect-timeout", "'1e300' is not a number of seconds from 0.001 to 86,400"],
        ),
        (
            ["-l", "--max-clients", "9" * 5000, "0"],
            ["--max-clients", "(5,000 characters) is not a whole number of clients from 1"],
        ),
    ],
    ids=repr,
)
def test_a_bad_command_line_is_one_line_naming_it(args, expected):
    port = str(free_port())  # nobody listens: had netrepl connected it would exit 1, not 2
    result = run_netrepl(*(port if arg == "PORT" else arg for arg in args), stdin=b"x\n")
    line = assert_one_usage_error(result, *expected)
    assert line.startswith("netrepl: ") and result.stdout == b""


def test_the_help_says_the_ranges_of_the_numbers():
    result = run_netrepl("--help")
    text = " ".join(result.stdout.decode().split())
    options = ("--linger S", "--reconnect [S]", "--relay-idle S", "--connect-timeout S")
    for option in (*options, "--max-clients N"):
        assert option in text
    assert text.count("0 to 86,400;") == 3 and "0.001 to 86,400;" in text
    assert "1 to 1,000,000" in text


# ---- typed lines, piped ------------------------------------------------------------------------


# `{file}` is a small readable file; the error must name what was typed.
TYPED = [
    # Numbers: finite, in range, the range said.
    ("/sleep inf", ["/sleep: 'inf' " + SECONDS]),
    ("/sleep 1e10", ["/sleep: '1e10' " + SECONDS]),
    ("/sleep nan", ["/sleep: 'nan' " + SECONDS]),
    ("/expect x 1e300", ["/expect timeout: '1e300' " + SECONDS]),
    ("/expect-hex 01 1e300", ["/expect-hex timeout: '1e300' " + SECONDS]),
    ("/expect-hex 01 nan", ["not a hex digit 'n' at column 16"]),
    ("/expect-hex 01 02 zz 5", ["not a hex digit 'z' at column 19"]),
    (
        "/every 99999999999999999999999 x",
        ["/every: '99999999999999999999999' " + MS + " 10 to 86,400,000"],
    ),
    ("/every 1e3 x", ["/every: '1e3' " + MS + " 10 to 86,400,000"]),
    ("/frame idle 1e30", ["/frame: idle: '1e30' " + MS + " 1 to 60,000"]),
    ("/frame idle 99999999999999999999", ["/frame: idle: '99999999999999999999' " + MS]),
    ("/frame len 99999999999999999999", ["/frame: len: '99999999999999999999' is not a whole"]),
    ("/repeat 2 99999999999999999999 x", ["/repeat MS: '99999999999999999999' " + MS]),
    ("/repeat 99999999999999999999 x", ["/repeat COUNT: '99999999999999999999' is not a whole"]),
    ("/sendfile {file} --chunk 99999999999999999999", ["/sendfile --chunk: '9999", "bytes"]),
    ("/sendfile {file} --delay 99999999999999999999", ["/sendfile --delay: '9999", MS]),
    # Numbers of more digits than int() converts (4,300): ValueError, not a message, before.
    ("x{sum8:" + "9" * 5000 + "-}", ["{sum8} at column 2: range 9999"]),
    ("x{sum8:-" + "9" * 5000 + "}", ["{sum8} at column 2: range -9999"]),
    ("/kick " + "9" * 5000, ["/kick: '9999", "is not a client id"]),
    ("/cert " + "9" * 5000, ["/cert: '9999", "is not a client id"]),
    ("/to #" + "9" * 5000, ["/to: '#9999", "is not a client id"]),
    ("/stop " + "9" * 5000, ["/stop: no job 9999"]),
    # Regular expressions the engine cannot hold.
    ("/expect a{99999999999}", ["bad pattern 'a{99999999999}': the repetition number"]),
    ("/when a{99999999999} -> x", ["bad pattern 'a{99999999999}': the repetition number"]),
    ("/expect " + "(" * 3000 + ")" * 3000, ["bad pattern '((((", "nested too deeply"]),
    # Hosts the name lookup would choke on.
    ("/connect a..b 80", ["bad host 'a..b'", LABEL_RULE]),
    ("/connect " + "x" * 70 + " 80", ["bad host 'xxxx", LABEL_RULE]),
    ("/connect 127.0.0.1 \udcff", ["bad port '\\xff': not valid UTF-8"]),
    ("/connect \udcff 80", ["bad host '\\xff': not valid UTF-8"]),
    # Paths with a NUL byte, and files that are not what they should be.
    ("/save a\x00b", ["cannot write 'a\\x00b': a path cannot hold a NUL byte"]),
    ("/run a\x00b", ["cannot read 'a\\x00b': a path cannot hold a NUL byte"]),
    ("/log a\x00b", ["cannot write 'a\\x00b': a path cannot hold a NUL byte"]),
    ("/capture a\x00b", ["cannot write 'a\\x00b': a path cannot hold a NUL byte"]),
    ("/record a\x00b", ["cannot write 'a\\x00b': a path cannot hold a NUL byte"]),
    ("x{file:a\x00b}", ["cannot read 'a\\x00b': a path cannot hold a NUL byte"]),
    ("/record /dev/full", ["cannot write /dev/full: No space left on device"]),
    ("/run /dev/zero", ["/dev/zero:1: a line over 1,048,576 bytes"]),
]


@pytest.fixture
def small_file(tmp_path) -> str:
    path = tmp_path / "small.bin"
    path.write_bytes(b"data")
    return str(path)


@pytest.mark.parametrize(("line", "expected"), TYPED, ids=lambda v: repr(v)[:60])
def test_a_bad_typed_line_is_one_line_naming_it(echo_peer, small_file, line, expected):
    stdin = line.format(file=small_file) if "{file}" in line else line
    result = run_netrepl(
        *echo_peer.args, stdin=(stdin + "\nAFTER\n").encode("utf-8", "surrogateescape")
    )
    error = assert_one_usage_error(result, *expected)
    assert error.startswith("netrepl: stdin line 1: "), error
    assert b"AFTER" not in result.stdout  # batch stops at the line that failed


def test_sendfile_of_a_path_with_a_nul_byte(echo_peer):
    result = run_netrepl(*echo_peer.args, stdin=b"/sendfile a\x00b\nAFTER\n")
    assert_one_usage_error(result, "cannot read 'a\\x00b': a path cannot hold a NUL byte")


# ---- files that fail while they are written ---------------------------------------------------


@pytest.mark.parametrize(("option", "what"), [("--log", "log"), ("--capture", "capture")])
def test_a_full_disk_is_said_once_and_closing_raises_nothing(echo_peer, option, what):
    result = run_netrepl(*echo_peer.args, option, "/dev/full", stdin=b"hello\n")
    assert b"Traceback" not in result.stderr, result.stderr.decode()
    assert result.stdout == b"hello\n"  # the session itself goes on
    lines = error_lines(result)
    assert lines == [f"netrepl: the {what} /dev/full stopped: No space left on device"], lines
    assert result.returncode == 0


# Sets the limit, then becomes netrepl: no preexec_fn in a test process that runs threads.
LIMITED = (
    "import os, resource, sys; limit = int(sys.argv[1]);"
    " resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit));"
    " os.execv(sys.executable, [sys.executable, '-m', 'netrepl', *sys.argv[2:]])"
)


def run_with_file_size_limit(
    args: list[str], stdin: bytes, limit: int
) -> subprocess.CompletedProcess[bytes]:
    """netrepl with RLIMIT_FSIZE: a write past `limit` bytes fails (EFBIG), as on a full disk,
    after the file was opened and written to. Python ignores SIGXFSZ, so only the write fails."""
    return subprocess.run(
        [sys.executable, "-c", LIMITED, str(limit), *args],
        input=stdin,
        capture_output=True,
        env=netrepl_env(),
        timeout=20,
        check=False,
    )


def test_a_recording_that_stops_mid_session_says_so_once_and_the_lines_still_go(
    echo_peer, tmp_path
):
    path = tmp_path / "rec.nrs"
    long_line = "L" * 300
    stdin = f"/record {path}\nshort\n{long_line}\nthird\n".encode()
    result = run_with_file_size_limit(echo_peer.args, stdin, limit=200)
    assert b"Traceback" not in result.stderr, result.stderr.decode()
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"short\n{long_line}\nthird\n".encode()
    stopped = [line for line in error_lines(result) if "stopped" in line]
    assert stopped == [f"netrepl: the recording {path} stopped: File too large"]
    recorded = path.read_bytes()
    # The long line's first bytes may be written before the limit bites; nothing after it.
    assert recorded.startswith(b"# recorded by netrepl") and b"\nshort\nL" in recorded
    assert b"third" not in recorded


def test_a_log_that_stops_mid_session_says_so_once(echo_peer, tmp_path):
    path = tmp_path / "big.log"
    result = run_with_file_size_limit(
        [*echo_peer.args, "--log", str(path)], b"x" * 2000 + b"\n", limit=1000
    )
    assert b"Traceback" not in result.stderr, result.stderr.decode()
    assert result.returncode == 0, result.stderr
    stopped = [line for line in error_lines(result) if "stopped" in line]
    assert stopped == [f"netrepl: the log {path} stopped: File too large"]


def test_a_recording_keeps_the_bytes_of_a_line_that_is_not_utf8(echo_peer, tmp_path):
    path = tmp_path / "rec.nrs"
    result = run_netrepl(*echo_peer.args, stdin=b"/record " + bytes(path) + b"\nh\xffi\n")
    assert b"Traceback" not in result.stderr, result.stderr.decode()
    assert result.returncode == 0, result.stderr
    assert result.stdout == b"h\\xffi\n"  # shown escaped; sent and recorded as the byte
    assert path.read_bytes().endswith(b"\nh\xffi\n")
    replayed = run_netrepl(*echo_peer.args, stdin=b"/run " + bytes(path) + b"\n")
    assert replayed.returncode == 0 and replayed.stdout == b"h\\xffi\n"
    sent = [client.received for client in echo_peer.clients]
    assert bytes(sent[-1]) == b"h\xffi\n"


# ---- scripts that are streams -----------------------------------------------------------------


def test_a_script_from_a_fifo_runs_each_line_as_it_comes(echo_peer, tmp_path, start_netrepl):
    fifo = tmp_path / "script.fifo"
    os.mkfifo(fifo)
    running = start_netrepl(*echo_peer.args, "--linger", "0.2")
    running.write(f"/run {fifo}\nAFTER\n".encode())
    with open(fifo, "wb", buffering=0) as writer:  # waits for netrepl to open it
        writer.write(b"FIRST\n")
        client = echo_peer.wait_for_client()
        # Sent before the rest of the script is even written: lines run as they come.
        assert client.wait_for(b"FIRST\n", WAIT) == b"FIRST\n"
        writer.write(b"SECOND\n")
    result = running.finish()
    assert b"Traceback" not in result.stderr and result.returncode == 0, result.stderr
    assert result.stdout == b"FIRST\nSECOND\nAFTER\n"


def test_script_on_the_command_line_is_checked_without_being_read(tmp_path):
    # /dev/zero would take forever to read whole; the check before connecting only opens it.
    port = str(free_port())
    result = run_netrepl("--script", "/dev/zero", "127.0.0.1", port, timeout=20)
    assert result.returncode == 1 and b"connection refused" in result.stderr, result.stderr
    missing = run_netrepl("--script", str(tmp_path / "nope"), "127.0.0.1", port)
    assert_one_usage_error(missing, f"cannot read {tmp_path / 'nope'}: No such file")


# ---- addresses of the other family --------------------------------------------------------------


def test_an_address_of_the_other_family_says_so(echo_peer):
    result = run_netrepl("-6", "127.0.0.1", str(echo_peer.port))
    assert result.returncode == 1
    assert error_lines(result) == [
        f"netrepl: cannot connect to 127.0.0.1:{echo_peer.port}:"
        " 127.0.0.1 is an IPv4 address, not IPv6"
    ]
    listen = run_netrepl("-l", "-4", "::1", "0")
    assert error_lines(listen) == [
        "netrepl: cannot listen on [::1]:0: ::1 is an IPv6 address, not IPv4"
    ]


def _only_ipv4(name: str) -> bool:
    try:
        socket.getaddrinfo(name, 80, socket.AF_INET6)
    except socket.gaierror:
        try:
            return bool(socket.getaddrinfo(name, 80, socket.AF_INET))
        except socket.gaierror:
            return False
    return False


@pytest.mark.skipif(not _only_ipv4("localhost"), reason="localhost has an IPv6 address here")
def test_a_name_with_no_ipv6_address_says_so_with_6(echo_peer):
    result = run_netrepl("-6", "localhost", str(echo_peer.port))
    assert result.returncode == 1
    assert error_lines(result) == [
        f"netrepl: cannot connect to localhost:{echo_peer.port}:"
        " localhost has no IPv6 address, only IPv4 (127.0.0.1)"
    ]


# ---- the command line's files, with a NUL byte (argv cannot carry one; a config or a caller can)


@pytest.mark.parametrize("field", ["log", "capture", "script", "on_connect"])
def test_startup_files_with_a_nul_byte_are_usage_errors(make_session, field):
    harness = make_session(batch=True)
    with pytest.raises(
        UsageError, match=r"^cannot (read|write) 'a\\x00b': a path cannot hold a NUL byte$"
    ):
        harness.session.begin(Startup(**{field: "a\x00b"}))
    assert harness.session.files.log is None and harness.session.files.capture is None
