"""The built-in demo peer: a loopback TCP server that makes every view worth switching to.

It greets in UTF-8 Chinese and English, sends a GBK line and a binary frame, echoes lines,
and answers a few commands (`help`). A client whose first words are a WebSocket upgrade
request (`GET / HTTP/1.1` with `Upgrade: websocket`) gets a WebSocket peer instead, on the
same port: messages echoed, a JSON reply, pings answered, a close on request. `netrepl
--demo` (`--demo --ws`), the test suite and `python -m netrepl.demo [PORT]` (a device of its
own, to relay to) use this same peer. It binds to loopback only and owns its own sockets and
threads; it never touches the display, and speaks WebSocket through the pure protocol module
(never through netrepl's transport).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import select
import signal
import socket
import sys
import threading
import time
from typing import Protocol

from netrepl.transport import format_address
from netrepl.websocket import (
    OPCODES,
    ControlReceived,
    HandshakeFailed,
    MessagePiece,
    UpgradeAccepted,
    WebSocketProtocol,
    check_close_code,
    encode_frame,
)

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

# ---- over WebSocket: the same peer, in messages

WS_GREETING = (
    "你好！这里是 netrepl 的演示节点，说 WebSocket。\n"
    "Hello! This is the netrepl demo peer, over WebSocket. Type help to see what I can do."
).encode()
WS_HELP = b"""messages I understand, one per message:
  help                 this list
  json                 a JSON object (see it with /json)
  {"op":"ping"}        any JSON object gets a JSON object back
  gbk                  a binary message in GBK (see it with /gbk or /auto)
  binary               a 9-byte Modbus frame as a binary message (see it with /hex)
  split                a text message sent in three frames, cut mid-character
  ping                 I ping you (netrepl answers); /ping pings me
  hostile              escape sequences that try to take over your terminal
  close CODE [REASON]  I close with that code and reason
  bye                  I close with 1000 'bye' (/close closes from your side)
anything else is echoed back: text as text, binary (/x ...) as binary."""
WS_JSON = json.dumps(
    {
        "device": "netrepl-demo",
        "online": True,
        "temperature": 21.5,
        "unit": "C",
        "registers": [42, 256],
        "note": "你好",
        "alarm": None,
    },
    ensure_ascii=False,
).encode()
WS_SPLIT = "split: 中文 came in three frames, cut mid-character; shown as one message".encode()
WS_HOSTILE = HOSTILE.decode("latin-1").encode()
"""HOSTILE as a text message must be UTF-8: its C1 byte (0x9b) becomes U+009B."""
WS_PING = b"demo"
WS_MESSAGE_LIMIT = 1 << 20
"""A message larger than this is not echoed: the peer closes with 1009 (message too big)."""
UPGRADE_HEAD_LIMIT = 16384
"""A first request head longer than this is not waited for: the client gets the TCP demo."""
UPGRADE_WAIT = 0.5
"""`python -m netrepl.demo`: how long a new client has to send a WebSocket upgrade request
before the TCP greeting goes (a WebSocket client speaks first, a TCP one listens first)."""


def flood_bytes(size: int) -> bytes:
    """Exactly what `flood N` sends, so a test can compare it byte for byte."""
    repeats = size // len(FLOOD_LINE) + 1
    return (FLOOD_LINE * repeats)[:size]


class DemoPeer:
    """A threaded TCP server on 127.0.0.1 (a free port unless given one).

    `upgrade_wait` is how long a new client has to speak first with a WebSocket upgrade
    request before it is greeted as a TCP client: 0 (the default) greets at once, so the peer
    is TCP only; None waits for the client's first bytes however long they take (`netrepl
    --demo --ws`, whose client speaks first)."""

    def __init__(
        self, host: str = "127.0.0.1", port: int = 0, *, upgrade_wait: float | None = 0.0
    ) -> None:
        self.upgrade_wait = upgrade_wait
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
            first = self._first_words(client)
            if first is None:
                return  # it left without a word
            if is_websocket_upgrade(first):
                serve_websocket(client, first)
            else:
                serve(client, first)
        except OSError:
            return  # the client went away mid-answer: nothing to report to anyone
        finally:
            with self._lock:
                self._clients.discard(client)
            client.close()

    def _first_words(self, client: socket.socket) -> bytes | None:
        """What the client says before it is greeted: b"" when it says nothing within
        `upgrade_wait`; a request head whole when it starts like one; None if it left."""
        if self.upgrade_wait == 0:
            return b""
        ready, _, _ = select.select([client], [], [], self.upgrade_wait)
        if not ready:
            return b""
        first = client.recv(65536)
        if not first:
            return None
        if first.startswith(b"GET "):
            # A request head can come in several reads: all of it, to decide.
            while b"\r\n\r\n" not in first and len(first) < UPGRADE_HEAD_LIMIT:
                more = client.recv(65536)
                if not more:
                    return None
                first += more
        return first


def is_websocket_upgrade(head: bytes) -> bool:
    """`GET ... HTTP/1.1` with `Upgrade: websocket`: a WebSocket client's first words."""
    lines = head.split(b"\r\n\r\n", 1)[0].split(b"\r\n")
    request = lines[0].split()
    if len(lines) < 2 or len(request) != 3 or request[0] != b"GET" or request[2] != b"HTTP/1.1":
        return False
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"upgrade" and b"websocket" in value.lower():
            return True
    return False


class DemoLink(Protocol):
    """What the peer needs of a connection: a socket, or a test's counting wrapper of one."""

    def sendall(self, data: bytes, /) -> None: ...

    def recv(self, size: int, /) -> bytes: ...

    def setsockopt(self, level: int, option: int, value: int, /) -> None: ...


def serve(client: DemoLink, first: bytes = b"") -> None:
    """Talk to one client until it leaves or says `close` (`first`: what it said before it
    was greeted). Raises OSError if it vanishes."""
    client.sendall(OPENING)
    pending = first
    while True:
        while b"\n" in pending:
            line, pending = pending.split(b"\n", 1)
            if not _answer(client, line + b"\n"):
                return
        data = client.recv(65536)
        if not data:
            return
        pending += data


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


def serve_websocket(client: DemoLink, head: bytes) -> None:
    """Talk WebSocket to one client whose upgrade request is `head` (with whatever came
    after it) until either end closes. A request wsproto refuses gets its 400 answer."""
    protocol = WebSocketProtocol(client=False, max_message=WS_MESSAGE_LIMIT)
    data = head
    while True:
        try:
            happenings = protocol.feed(data)
        except HandshakeFailed:
            _write(client, protocol.outgoing())  # the 400 that says why
            return
        for happening in happenings:
            # The 101, a pong or the reply to a close, before anything said in answer.
            _write(client, protocol.outgoing())
            match happening:
                case UpgradeAccepted():
                    client.sendall(protocol.message(WS_GREETING, binary=False))
                case MessagePiece() if protocol.open:
                    _answer_message(client, protocol, happening)
                case ControlReceived(opcode="close"):
                    return  # its close answered ours, or ours answered it (written above)
        _write(client, protocol.outgoing())
        data = client.recv(65536)
        if not data:
            protocol.peer_ended()
            return


def _write(client: DemoLink, data: bytes) -> None:
    if data:
        client.sendall(data)


def _answer_message(client: DemoLink, protocol: WebSocketProtocol, piece: MessagePiece) -> None:
    """Reply to one message."""
    if piece.more or piece.offset or len(piece.data) > WS_MESSAGE_LIMIT:
        if piece.offset == 0:  # its first piece (or all of it): larger than the peer takes
            reason = f"at most {WS_MESSAGE_LIMIT:,} bytes, please"
            _write(client, protocol.close(1009, reason))
        return
    if piece.binary:
        client.sendall(protocol.message(piece.data, binary=True))
        return
    text = piece.data.decode("utf-8")
    words = text.strip().split()
    command = words[0].lower() if words else ""
    match command, words[1:]:
        case "help", []:
            client.sendall(protocol.message(WS_HELP, binary=False))
        case "json", []:
            client.sendall(protocol.message(WS_JSON, binary=False))
        case "gbk", []:
            client.sendall(protocol.message(GBK_LINE, binary=True))
        case "binary", []:
            client.sendall(protocol.message(BINARY_FRAME, binary=True))
        case "split", []:
            cut = WS_SPLIT.index("中".encode()) + 1
            last = WS_SPLIT.index("文".encode()) + 2
            # Three frames of one message, each cut in the middle of a character (a text
            # message must be UTF-8 whole, not frame by frame). Written by hand: wsproto
            # sends a message in one frame.
            client.sendall(
                encode_frame(OPCODES["text"], WS_SPLIT[:cut], fin=False)
                + encode_frame(OPCODES["continuation"], WS_SPLIT[cut:last], fin=False)
                + encode_frame(OPCODES["continuation"], WS_SPLIT[last:])
            )
        case "ping", []:
            client.sendall(protocol.ping(WS_PING))
        case "hostile", []:
            client.sendall(protocol.message(WS_HOSTILE, binary=False))
        case "bye", []:
            _write(client, protocol.close(1000, "bye"))
        case "close", [code, *reason] if code.isascii() and code.isdigit() and len(code) < 6:
            try:
                check_close_code(int(code))
            except ValueError as error:
                client.sendall(protocol.message(str(error).encode(), binary=False))
                return
            said = " ".join(reason).encode()[:123].decode("utf-8", "ignore")
            _write(client, protocol.close(int(code), said))
        case "close", _:
            usage = b"usage: close CODE [REASON] (1000-1003, 1007-1014 or 3000-4999)"
            client.sendall(protocol.message(usage, binary=False))
        case _:
            client.sendall(protocol.message(json_reply(text) or piece.data, binary=False))


def json_reply(text: str) -> bytes | None:
    """The answer to a JSON object: `{"op": "pong"}` to `{"op": "ping"}`, else the object
    echoed inside one (with its `id`, as a request/response protocol would); None for
    anything that is not a JSON object."""
    try:
        value = json.loads(text)
    except ValueError:
        return None
    if not isinstance(value, dict):
        return None
    reply: dict[str, object] = (
        {"op": "pong"} if value.get("op") == "ping" else {"op": "echo", "received": value}
    )
    if "id" in value:
        reply["id"] = value["id"]
    return json.dumps(reply, ensure_ascii=False).encode()


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
        peer = DemoPeer(port=options.port, upgrade_wait=UPGRADE_WAIT)
    except OSError as error:
        reason = error.strerror or str(error)
        print(f"demo peer: cannot listen on 127.0.0.1:{options.port}: {reason}", file=sys.stderr)
        return 1
    with peer:
        print(f"demo peer on {peer.address} (Ctrl-C stops it)", flush=True)
        print(f"WebSocket on the same port: netrepl ws://{peer.address}/", flush=True)
        stop.wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
