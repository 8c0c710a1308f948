"""Proxies for the tests of --proxy: a real one (pproxy, a PyPI proxy server: SOCKS4, SOCKS5
and HTTP CONNECT, with user:password) run as a subprocess, and a scripted one for what a
real proxy will not do on demand (each SOCKS reply code, a greeting in the reply's segment,
SOCKS4a, silence).

pproxy runs in its own process: it patches asyncio's streams on import, and keeps who has
authenticated in class attributes, which must not leak into the test process.
"""

from __future__ import annotations

import contextlib
import select
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator

from tests.peers import DEFAULT_TIMEOUT, deadline

# Starts pproxy on a free port and prints it: the test waits for that line, not a sleep.
# authtime -1: pproxy otherwise lets an address that once authenticated in without
# credentials for 30 days, and "authentication refused" could not be tested after "ok".
_LAUNCH = """
import asyncio, sys
import pproxy

async def main(uri):
    server = pproxy.Server(uri)
    listener = await server.start_server(
        {"rserver": [], "verbose": lambda *args: None, "authtime": -1}
    )
    print(listener.sockets[0].getsockname()[1], flush=True)
    await asyncio.Event().wait()

asyncio.run(main(sys.argv[1]))
"""


class RealProxy:
    """pproxy listening on 127.0.0.1, speaking `schemes` (`socks5`, `http`, `socks4`), with
    `credentials` (`user:password`; for socks4 the user id) when given."""

    def __init__(self, schemes: str, credentials: str | None = None) -> None:
        uri = f"{schemes}://127.0.0.1:0" + (f"#{credentials}" if credentials else "")
        self.process = subprocess.Popen(
            [sys.executable, "-c", _LAUNCH, uri],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        assert self.process.stdout is not None
        ready, _, _ = select.select([self.process.stdout], [], [], DEFAULT_TIMEOUT)
        line = self.process.stdout.readline() if ready else b""
        if not line.strip().isdigit():
            self.stop()
            raise AssertionError(f"pproxy did not start: {line!r} {self.process.stderr!r}")
        self.port = int(line)

    def url(self, scheme: str, credentials: str | None = None) -> str:
        userinfo = f"{credentials}@" if credentials else ""
        return f"{scheme}://{userinfo}127.0.0.1:{self.port}"

    def stop(self) -> None:
        self.process.kill()
        self.process.wait(DEFAULT_TIMEOUT)
        for stream in (self.process.stdout, self.process.stderr):
            if stream is not None:
                stream.close()


class ScriptedProxy:
    """One connection: read the client's handshake in the pieces `expect` gives (a size, or
    up to a marker), answer each with the matching `answers` entry, and then (when `echo`)
    echo the tunnel. An answer of None: answer nothing more and hold the connection (a proxy
    that hangs). Records what it was sent."""

    def __init__(
        self, expect: list[int | bytes], answers: list[bytes | None], *, echo: bool = True
    ) -> None:
        self.expect = expect
        self.answers = answers
        self.echo = echo
        self.received = bytearray()
        self.handshake_read = threading.Event()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._sockets: list[socket.socket] = []
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def _serve(self) -> None:
        with contextlib.suppress(OSError):
            sock, _ = self._listener.accept()
            self._sockets.append(sock)
            pending = bytearray()
            for wanted, answer in zip(self.expect, self.answers, strict=True):
                pending = self._read(sock, pending, wanted)
                if answer is None:
                    self.handshake_read.set()
                    sock.recv(1)  # hold the connection, answering nothing, until the client goes
                    return
                sock.sendall(answer)
            self.handshake_read.set()
            if pending and self.echo:
                sock.sendall(pending)
            left = deadline(DEFAULT_TIMEOUT)
            while self.echo and left() > 0:
                data = sock.recv(65536)
                if not data:
                    return
                sock.sendall(data)

    def _read(self, sock: socket.socket, pending: bytearray, wanted: int | bytes) -> bytearray:
        """Read until `wanted` bytes (or up to the `wanted` marker) are here; the rest stays."""
        left = deadline(DEFAULT_TIMEOUT)
        while left() > 0:
            if isinstance(wanted, int) and len(pending) >= wanted:
                self.received += pending[:wanted]
                return pending[wanted:]
            if isinstance(wanted, bytes) and wanted in pending:
                end = pending.index(wanted) + len(wanted)
                self.received += pending[:end]
                return pending[end:]
            data = sock.recv(65536)
            if not data:
                raise OSError("the client left")
            pending += data
        raise OSError("the client's handshake never came whole")

    def stop(self) -> None:
        self._listener.close()
        for sock in self._sockets:
            with contextlib.suppress(OSError):
                sock.close()


@contextlib.contextmanager
def real_proxy(schemes: str, credentials: str | None = None) -> Iterator[RealProxy]:
    proxy = RealProxy(schemes, credentials)
    try:
        yield proxy
    finally:
        proxy.stop()
