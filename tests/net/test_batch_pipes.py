"""Batch mode as a pipe, the way nc is used: the end of stdin half-closes, the reply after an
/eof gets through, --once leaves with its client although stdin stays open, --stdin raw puts
stdin's bytes on the wire unchanged, rules from --script answer a client that speaks at once,
and a display that dies ends the run with a line and status 4.

The real program runs in a subprocess against loopback peers written here; "it exited at
once" is proved by a linger far longer than the test's own timeout.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import socket
import subprocess
import sys
import threading

import pytest

from tests.net.conftest import WAIT, ScriptedServer, netrepl_env, run_netrepl


def answer_at_end_of_stream(server: ScriptedServer, sock: socket.socket) -> None:
    """Like `socat ... EXEC:'tr a-z A-Z'`: read everything, answer at end of stream, close."""
    while server.recv(sock):
        pass
    sock.sendall(bytes(server.received).upper())
    sock.close()


def redis_like(server: ScriptedServer, sock: socket.socket) -> None:
    """PING -> +PONG; at the client's end of stream, close (as redis does)."""
    pending = bytearray()
    while (line := server.read_line(sock, pending)) is not None:
        if line.strip().upper() == b"PING":
            sock.sendall(b"+PONG\r\n")
    sock.close()


def test_end_of_stdin_half_closes_so_a_peer_answering_at_end_of_stream_answers(make_server):
    server = make_server(answer_at_end_of_stream)
    result = run_netrepl(*server.args, "--linger", "600", stdin=b"shout this\n", timeout=15)
    assert result.returncode == 0, result.stderr
    assert result.stdout == b"SHOUT THIS\n"


def test_no_shutdown_keeps_the_write_side_open(make_server):
    server = make_server(answer_at_end_of_stream)
    result = run_netrepl(
        *server.args, "--no-shutdown", "--linger", "0.3", stdin=b"quiet\n", timeout=15
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == b"", "the peer never saw end of stream, so never answered"
    assert b"sent end of stream" not in result.stderr


def test_one_shot_pipe_exits_when_the_peer_closes_not_after_the_linger(make_server):
    server = make_server(redis_like)
    # A linger far beyond the test's timeout: returning at all proves it did not wait.
    result = run_netrepl(*server.args, "--linger", "600", stdin=b"PING\n", timeout=15)
    assert result.returncode == 0, result.stderr
    assert result.stdout == b"+PONG\n"
    assert server.wait_finished() == b"PING\n"


def test_the_reply_after_an_eof_line_is_shown(make_server):
    server = make_server(redis_like)
    result = run_netrepl(*server.args, "--linger", "3", stdin=b"PING\n/eof\n", timeout=15)
    assert result.returncode == 0, result.stderr
    assert result.stdout == b"+PONG\n"
    assert b"(7 bytes received, 5 sent)" in result.stderr


def test_eof_over_tls_keeps_reading_until_the_peer_closes(tmp_path_factory):
    from tests.net.test_cli_transports import TlsPeer, make_certs

    certs = make_certs(tmp_path_factory.mktemp("certs"))
    with TlsPeer(certs, greeting=b"hello\n", lines=1) as peer:
        result = run_netrepl(
            "--tls", "--cafile", certs.ca, "127.0.0.1", str(peer.port), "--linger", "600",
            stdin=b"ping\n/eof\n", timeout=15,
        )  # fmt: skip
        assert peer.wait_done() is None, peer.error
    assert result.returncode == 0, result.stderr
    assert result.stdout == b"hello\necho: ping\n"


def test_unix_socket_end_of_stdin_half_closes(make_unix_server):
    path = make_unix_server(answer_at_end_of_stream)
    result = run_netrepl("--unix", path, "--linger", "600", stdin=b"over unix\n", timeout=15)
    assert result.returncode == 0, result.stderr
    assert result.stdout == b"OVER UNIX\n"


@pytest.fixture
def make_unix_server(tmp_path):
    """A unix stream server running `script(server, sock)` for its one client."""
    listeners: list[socket.socket] = []

    def make(script) -> str:
        path = str(tmp_path / "peer.sock")
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        listener.bind(path)
        listener.listen()
        listeners.append(listener)
        server = ScriptedServer.__new__(ScriptedServer)
        server.received = bytearray()
        server._changed = threading.Condition()

        def serve() -> None:
            sock, _ = listener.accept()
            with contextlib.suppress(OSError):
                script(server, sock)

        threading.Thread(target=serve, daemon=True).start()
        return path

    yield make
    for listener in listeners:
        listener.close()


# ---- --once with stdin left open -----------------------------------------------------------


def test_once_leaves_when_the_first_client_does_although_stdin_stays_open(start_netrepl):
    run = start_netrepl("-l", "127.0.0.1", "0", "--once", "--linger", "600")
    port = run.listening_port("TCP")
    client = socket.create_connection(("127.0.0.1", port), timeout=WAIT)
    run.wait_stderr(b"#1 connected from")
    client.sendall(b"bye\n")
    run.wait_stdout(b"bye\n")
    client.close()
    # stdin is still open (nobody wrote to it or closed it): netrepl must leave anyway.
    run.process.wait(WAIT)
    assert run.process.returncode == 0


# ---- --stdin raw -----------------------------------------------------------------------------


AWKWARD = (
    b"GET /{id} HTTP/1.1\r\nHost: x\r\n\r\n"
    b"C:\\\\temp \\x41 \\q {crc32}\n/quit\n//not a command\n\x00\xff\xfe"
    + os.urandom(300_000)
    + b"no newline at the end"
)


def test_raw_stdin_puts_the_file_on_the_wire_unchanged(make_server):
    server = make_server(answer_at_end_of_stream)
    result = run_netrepl(*server.args, "--stdin", "raw", "--view", "raw", stdin=AWKWARD)
    assert result.returncode == 0, result.stderr
    got = server.wait_finished()
    assert hashlib.sha256(got).hexdigest() == hashlib.sha256(AWKWARD).hexdigest()
    # The reply is shown as usual (here: raw, the peer's upper-cased copy).
    assert result.stdout == AWKWARD.upper()
    assert f"stdin: sent, {len(AWKWARD):,} bytes in".encode() in result.stderr


def test_raw_stdin_to_a_listener_goes_to_its_first_client(start_netrepl):
    run = start_netrepl("-l", "127.0.0.1", "0", "--once", "--stdin", "raw")
    port = run.listening_port("TCP")
    run.write(b"line one\r\n/quit\n")
    run.close_stdin()
    client = socket.create_connection(("127.0.0.1", port), timeout=WAIT)
    received = bytearray()
    while chunk := client.recv(65536):  # netrepl half-closes at the end of its stdin
        received += chunk
    client.close()
    result = run.finish()
    assert result.returncode == 0, result.stderr
    assert bytes(received) == b"line one\r\n/quit\n"


# ---- rules from --script before the first byte -----------------------------------------------


def test_when_rules_from_a_script_answer_a_client_that_speaks_at_once(start_netrepl, tmp_path):
    script = tmp_path / "rules.nrs"
    script.write_text("/eol crlf\n/when ^PING -> PONG\n")
    # Each run is a fresh race between the client's first bytes and the script's rules.
    for attempt in range(6):
        run = start_netrepl("-l", "127.0.0.1", "0", "--script", str(script), "--once")
        port = run.listening_port("TCP")
        with socket.create_connection(("127.0.0.1", port), timeout=WAIT) as client:
            client.sendall(b"PING\r\n")
            reply = client.recv(100)
        assert reply == b"PONG\r\n", f"attempt {attempt}: {reply!r}"
        assert run.finish().returncode == 0


def test_when_rules_from_on_connect_answer_a_peer_that_speaks_at_once(
    make_server, start_netrepl, tmp_path
):
    def greeter(server: ScriptedServer, sock: socket.socket) -> None:
        sock.sendall(b"HELLO\n")  # before netrepl could have read any script line
        pending = bytearray()
        server.read_line(sock, pending)
        sock.close()

    script = tmp_path / "login.nrs"
    script.write_text("/when ^HELLO -> WELCOME\n")
    for attempt in range(4):
        server = make_server(greeter)
        # stdin stays open until the answer is in: its end would half-close the connection.
        run = start_netrepl(*server.args, "--on-connect", str(script), "--linger", "600")
        assert server.wait_finished() == b"WELCOME\n", f"attempt {attempt}"
        assert run.finish().returncode == 0


# ---- a display that dies ---------------------------------------------------------------------


def test_a_display_thread_that_dies_ends_the_run_with_a_line_and_status_4(make_peer):
    peer = make_peer(greeting=b"hello\n")
    # Once it has shown the greeting, the display thread's own wait raises: what the huge
    # /frame idle did (OverflowError) before its range was checked.
    code = (
        "import sys\n"
        "from netrepl import render\n"
        "due = render.Renderer.next_due\n"
        "def broken(self, now):\n"
        "    if self.latest_at: raise OverflowError('timeout value is too large')\n"
        "    return due(self, now)\n"
        "render.Renderer.next_due = broken\n"
        "from netrepl.cli import main\n"
        "raise SystemExit(main(sys.argv[1:]))\n"
    )
    process = subprocess.Popen(
        [sys.executable, "-c", code, *peer.args, "--linger", "600"],
        stdin=subprocess.PIPE,  # left open: the run must end without it
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=netrepl_env(),
    )
    try:
        stdout, stderr = process.communicate(timeout=15)
    finally:
        process.kill()
    assert process.returncode == 4, stderr
    assert stdout == b"hello\n"
    assert b"netrepl: the display failed: OverflowError('timeout value is too large')" in stderr
    assert b"Traceback" not in stderr


def test_a_udp_listener_sends_to_an_address_before_anyone_has_sent_to_it(start_netrepl):
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as target:
        target.bind(("127.0.0.1", 0))
        target.settimeout(WAIT)
        run = start_netrepl("-u", "-l", "127.0.0.1", "0", "--linger", "0.2")
        run.listening_port("UDP")
        run.write(b"/to 127.0.0.1:%d\nhello\n" % target.getsockname()[1])
        assert target.recvfrom(100)[0] == b"hello\n"
        assert run.finish().returncode == 0
