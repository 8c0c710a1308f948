"""`python -m netrepl.demo [PORT]`: the demo peer as a process of its own, the device that
docs/guide.md's relay walkthrough relays to. It says where it listens in one line, serves until
Ctrl-C or SIGTERM, and exits 0; a port it cannot have is one line and exit 1."""

from __future__ import annotations

import queue
import re
import signal
import socket
import subprocess
import sys
import threading

import pytest

from netrepl.demo import OPENING, TEMPERATURE
from tests.net.conftest import WAIT, netrepl_env

pytestmark = pytest.mark.timeout(60)

ANNOUNCED = re.compile(r"demo peer on 127\.0\.0\.1:(\d+) \(Ctrl-C stops it\)\n")


class DemoProcess:
    """`python -m netrepl.demo ARGS`, its stdout read line by line on a thread."""

    def __init__(self, *args: str) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "netrepl.demo", *args],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=netrepl_env(),
        )
        self._lines: queue.Queue[bytes] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self._lines.put(line)
        self._lines.put(b"")  # the end of its output

    def first_line(self) -> str:
        """Its first line; empty if it exited without one."""
        try:
            return self._lines.get(timeout=WAIT).decode()
        except queue.Empty:
            self.process.kill()
            raise AssertionError("the demo peer printed nothing") from None

    def finish(self) -> tuple[int, bytes]:
        try:
            _, stderr = self.process.communicate(timeout=WAIT)
        except subprocess.TimeoutExpired:
            self.process.kill()
            raise AssertionError("the demo peer is still running") from None
        return self.process.returncode, stderr

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(WAIT)


@pytest.fixture
def start_demo():
    started: list[DemoProcess] = []

    def start(*args: str) -> DemoProcess:
        started.append(DemoProcess(*args))
        return started[-1]

    yield start
    for demo in started:
        demo.kill()


def read_exactly(sock: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            break
        data += chunk
    return data


@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_the_demo_peer_runs_on_its_own_until_a_signal(start_demo, stop):
    demo = start_demo()
    announced = ANNOUNCED.fullmatch(demo.first_line())
    assert announced is not None
    port = int(announced[1])
    with socket.create_connection(("127.0.0.1", port), timeout=WAIT) as client:
        assert read_exactly(client, len(OPENING)) == OPENING
        client.sendall(b"temp\n")
        assert read_exactly(client, len(TEMPERATURE)) == TEMPERATURE
        demo.process.send_signal(stop)
        # A client still connected does not keep it running: it is hung up on.
        assert read_exactly(client, 1) == b""
    assert demo.finish() == (0, b"")


def test_a_port_in_use_is_one_line_and_exit_1(start_demo):
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        demo = start_demo(str(port))
        status, stderr = demo.finish()
    assert status == 1
    assert re.fullmatch(rb"demo peer: cannot listen on 127\.0\.0\.1:%d: [^\n]+\n" % port, stderr)


def test_a_port_that_is_not_one_is_a_usage_error(start_demo):
    status, stderr = start_demo("70000").finish()
    assert status == 2
    assert stderr.splitlines()[-1] == (
        b"python -m netrepl.demo: error: argument port: not a port (0-65535): '70000'"
    )


def test_the_given_port_is_the_one_it_listens_on(start_demo):
    # A port free a moment ago; another program may take it meanwhile, then this is skipped.
    with socket.create_server(("127.0.0.1", 0)) as probe:
        port = probe.getsockname()[1]
    demo = start_demo(str(port))
    line = demo.first_line()
    if not line:
        pytest.skip(f"port {port} was taken by another program meanwhile")
    assert line == f"demo peer on 127.0.0.1:{port} (Ctrl-C stops it)\n"
    demo.process.send_signal(signal.SIGTERM)
    assert demo.finish() == (0, b"")
