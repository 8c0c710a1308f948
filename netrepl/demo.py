"""The built-in demo peer: a loopback TCP server that makes every view worth switching to.

It greets in UTF-8 Chinese and English, sends a GBK line and a binary frame, echoes lines,
and answers a few commands (`help`). `netrepl --demo`, the test suite and `python -m
netrepl.demo [PORT]` (a device of its own, to relay to) use this same peer. It binds to
loopback only and owns its own sockets and threads; it never touches the display.
"""

from __future__ import annotations

import argparse
import contextlib
import signal
import socket
import sys
import threading
import time
from typing import Protocol

from netrepl.transport import format_address

GREETING = (
    "你好！这里是 netrepl 的演示节点。\r\n"
    "Hello! This is the netrepl demo peer. Type help to see what I can do.\r\n"
).encode()
GBK_LINE = "GBK 编码的一行：设备说中文 (see it with /gbk or /auto)\r\n".encode("gbk")
# A Modbus RTU reply: unit 1, read holding registers, 4 bytes (0x002a, 0x0100), CRC-16/MODBUS.
BINARY_FRAME = bytes.fromhex("01 03 04 00 2a 01 00 da 6b")
BINARY_INTRO = b"A binary frame (a Modbus reply) follows; /hex shows it best:\r\n"
HOSTILE = (
    b"The next line tries to clear your screen, turn it red, retitle the window and ring:\r\n"
    b"\x1b[2J\x1b[H\x1b[31mred?\x1b]0;pwned\x07\x1b[0m\x07\x9b6n done\r\n"
)
# What a device answers to a query: a reading on a line of its own, which a relay can hold,
# drop, rewrite or answer itself (docs/guide.md's relay walkthrough).
TEMPERATURE = b"temperature 21.5 C\r\n"
SPLIT_LINE = "split: 中文 arrives in two reads, cut mid-character\r\n".encode()
HELP = b"""commands I understand, one per line:
  help        this list
  gbk         a line in GBK (see it with /gbk or /auto)
  binary      a 9-byte Modbus frame (see it with /hex)
  temp        a reading, as a device answers a query
  split       a UTF-8 line sent in two pieces that cut a character in half
  prompt      'login: ' with no newline, like a device waiting for input
  hostile     escape sequences that try to take over your terminal
  flood N     N bytes of text, as fast as the socket takes them
  close       I hang up (then try /reconnect)
anything else is echoed back, byte for byte.
""".replace(b"\n", b"\r\n")
FLOOD_LIMIT = 1 << 30
# A 64-byte line; a flood is this pattern repeated and cut at N bytes.
FLOOD_LINE = b"netrepl demo flood: the quick brown fox jumps over the lazy dog\n"


# 1 MiB, a whole number of lines, so sending it again and again continues the pattern.
_FLOOD_CHUNK = memoryview(FLOOD_LINE * ((1 << 20) // len(FLOOD_LINE)))


OPENING = GREETING + GBK_LINE + BINARY_INTRO + BINARY_FRAME + b"\r\n"
"""What the peer says first, in one write: one read, so a relay shows it as one block."""


def flood_bytes(size: int) -> bytes:
    """Exactly what `flood N` sends, so a test can compare it byte for byte."""
    repeats = size // len(FLOOD_LINE) + 1
    return (FLOOD_LINE * repeats)[:size]


class DemoPeer:
    """A threaded TCP server on 127.0.0.1 (a free port unless given one)."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self._listener = socket.create_server((host, port))
        self.host, self.port = self._listener.getsockname()[:2]
        self._stopping = threading.Event()
        self._clients: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._accept_loop, name="demo-peer", daemon=True)

    @property
    def address(self) -> str:
        return format_address(self.host, self.port)

    def start(self) -> DemoPeer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        # Not every platform lets a listener be shut down; close() below suffices there.
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)
        self._listener.close()
        with self._lock:
            for client in self._clients:
                with contextlib.suppress(OSError):  # the client may have left already
                    client.shutdown(socket.SHUT_RDWR)
        self._thread.join(2)

    def __enter__(self) -> DemoPeer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _accept_loop(self) -> None:
        while not self._stopping.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            with self._lock:
                self._clients.add(client)
            threading.Thread(
                target=self._serve, args=(client,), name="demo-client", daemon=True
            ).start()

    def _serve(self, client: socket.socket) -> None:
        try:
            serve(client)
        except OSError:
            return  # the client went away mid-answer: nothing to report to anyone
        finally:
            with self._lock:
                self._clients.discard(client)
            client.close()


class DemoLink(Protocol):
    """What the peer needs of a connection: a socket, or a test's counting wrapper of one."""

    def sendall(self, data: bytes, /) -> None: ...

    def recv(self, size: int, /) -> bytes: ...

    def setsockopt(self, level: int, option: int, value: int, /) -> None: ...


def serve(client: DemoLink) -> None:
    """Talk to one client until it leaves or says `close`. Raises OSError if it vanishes."""
    client.sendall(OPENING)
    pending = b""
    while True:
        data = client.recv(65536)
        if not data:
            return
        pending += data
        while b"\n" in pending:
            line, pending = pending.split(b"\n", 1)
            if not _answer(client, line + b"\n"):
                return


def _answer(client: DemoLink, line: bytes) -> bool:
    """Reply to one line; False when the peer should hang up."""
    words = line.strip().decode("utf-8", "replace").lower().split()
    match words:
        case ["help"]:
            client.sendall(HELP)
        case ["gbk"]:
            client.sendall(GBK_LINE)
        case ["binary"]:
            client.sendall(BINARY_FRAME)
        case ["temp"]:
            client.sendall(TEMPERATURE)
        case ["split"]:
            cut = SPLIT_LINE.index("中".encode()) + 1
            client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            client.sendall(SPLIT_LINE[:cut])
            time.sleep(0.05)  # pacing: let the first piece arrive as a read of its own
            client.sendall(SPLIT_LINE[cut:])
        case ["prompt"]:
            client.sendall(b"login: ")
        case ["hostile"]:
            client.sendall(HOSTILE)
        case ["flood", size] if (
            size.isascii() and size.isdigit() and len(size) < 12 and int(size) <= FLOOD_LIMIT
        ):
            remaining = int(size)
            while remaining:
                piece = min(remaining, len(_FLOOD_CHUNK))
                client.sendall(_FLOOD_CHUNK[:piece])
                remaining -= piece
        case ["flood", *_]:
            client.sendall(b"usage: flood N (bytes, at most 1073741824)\r\n")
        case ["close"]:
            client.sendall(b"bye\r\n")
            return False
        case _:
            client.sendall(line)
    return True


def _port(text: str) -> int:
    if not (text.isascii() and text.isdigit() and int(text) <= 65535):
        raise argparse.ArgumentTypeError(f"not a port (0-65535): {text!r}")
    return int(text)


def main(argv: list[str] | None = None) -> int:
    """`python -m netrepl.demo [PORT]`: the peer on its own, until Ctrl-C or SIGTERM (exit 0).

    For a device to relay to (`netrepl -l 5020 --relay 127.0.0.1:PORT`) or to connect to from
    another program; port 0 or none picks a free port, and the line printed says which.
    """
    parser = argparse.ArgumentParser(
        prog="python -m netrepl.demo",
        description="Run netrepl's demo peer on 127.0.0.1 until Ctrl-C: a device to talk to.",
    )
    parser.add_argument(
        "port", nargs="?", type=_port, default=0, help="the port (default: a free one)"
    )
    options = parser.parse_args(argv)
    stop = threading.Event()
    # Both end it in order: the listener and the clients' sockets are closed, exit 0.
    signal.signal(signal.SIGINT, lambda signum, frame: stop.set())
    signal.signal(signal.SIGTERM, lambda signum, frame: stop.set())
    try:
        peer = DemoPeer(port=options.port)
    except OSError as error:
        reason = error.strerror or str(error)
        print(f"demo peer: cannot listen on 127.0.0.1:{options.port}: {reason}", file=sys.stderr)
        return 1
    with peer:
        print(f"demo peer on {peer.address} (Ctrl-C stops it)", flush=True)
        stop.wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
