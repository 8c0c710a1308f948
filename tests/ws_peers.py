"""WebSocket peers for the tests, written with `websockets` (not wsproto, which netrepl uses),
so both ends of a test are not the same library agreeing with itself.

`WebSocketPeer` runs a `websockets` server on a loopback port in a thread and records what
its handler saw; `SilentWebSocketPeer` upgrades by hand and then never answers (a peer that
stops answering pings). Every wait has a timeout.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import http
import json
import socket
import ssl
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from websockets.sync.server import Server, ServerConnection, serve

WAIT = 10.0
GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


@dataclass
class Seen:
    """What a peer's handler saw, for the test to wait on."""

    messages: list[str | bytes] = field(default_factory=list)
    paths: list[str] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)
    subprotocols: list[str | None] = field(default_factory=list)
    closes: list[tuple[int | None, str]] = field(default_factory=list)
    changed: threading.Condition = field(default_factory=threading.Condition)

    def note(self, **what: object) -> None:
        with self.changed:
            for name, value in what.items():
                getattr(self, name).append(value)
            self.changed.notify_all()

    def wait(self, predicate: Callable[[Seen], bool], what: str, timeout: float = WAIT) -> None:
        with self.changed:
            if not self.changed.wait_for(lambda: predicate(self), timeout):
                raise AssertionError(f"the WebSocket peer never saw {what}: {self!r}")


Handler = Callable[[ServerConnection, Seen], None]


class WebSocketPeer:
    """A `websockets` server on 127.0.0.1 (port 0), handling each client with `handler`."""

    def __init__(
        self,
        handler: Handler,
        *,
        subprotocols: list[str] | None = None,
        refuse: tuple[int, str, dict[str, str]] | None = None,
        ssl_context: ssl.SSLContext | None = None,
        host: str = "127.0.0.1",
        ping_interval: float | None = None,
    ) -> None:
        self.seen = Seen()
        self._handler = handler
        self._refuse = refuse
        self._server: Server = serve(
            self._handle,
            host,
            0,
            subprotocols=subprotocols,  # type: ignore[arg-type]
            process_request=self._process_request if refuse else None,
            ssl=ssl_context,
            ping_interval=ping_interval,
            max_size=None,
        )
        self.port = self._server.socket.getsockname()[1]
        self.host = host
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def start(self) -> WebSocketPeer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._thread.join(WAIT)

    def url(self, path: str = "/", scheme: str = "ws") -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{scheme}://{host}:{self.port}{path}"

    def _process_request(self, connection: ServerConnection, request: object) -> object:
        assert self._refuse is not None
        status, body, headers = self._refuse
        response = connection.respond(http.HTTPStatus(status), body)
        for name, value in headers.items():
            response.headers[name] = value
        return response

    def _handle(self, connection: ServerConnection) -> None:
        request = connection.request
        assert request is not None
        self.seen.note(
            paths=request.path,
            headers={name.lower(): value for name, value in request.headers.raw_items()},
            subprotocols=connection.subprotocol,
        )
        try:
            self._handler(connection, self.seen)
        except Exception:  # the client went away mid-handler: the test says what it expected
            pass
        finally:
            code = connection.close_code
            self.seen.note(closes=(code, connection.close_reason or ""))


# ---- handlers


def echo(connection: ServerConnection, seen: Seen) -> None:
    for message in connection:
        seen.note(messages=message)
        connection.send(message)


def greet_then_echo(connection: ServerConnection, seen: Seen) -> None:
    connection.send("welcome")
    echo(connection, seen)


def json_api(connection: ServerConnection, seen: Seen) -> None:
    """Answers {"op": "ping"} with {"op": "pong", "n": 1}."""
    for count, message in enumerate(connection, 1):
        seen.note(messages=message)
        connection.send(json.dumps({"op": "pong", "n": count}))


def fragments(connection: ServerConnection, seen: Seen) -> None:
    """Sends one text message in three fragments, then echoes."""
    connection.send(iter(["ab", "cd", "é"]))
    echo(connection, seen)


def big_binary(size: int) -> Handler:
    def handler(connection: ServerConnection, seen: Seen) -> None:
        for message in connection:
            seen.note(messages=message)
            connection.send(bytes(range(256)) * (size // 256) + b"\x00" * (size % 256))

    return handler


def close_after_first(code: int, reason: str) -> Handler:
    def handler(connection: ServerConnection, seen: Seen) -> None:
        message = connection.recv(WAIT)
        seen.note(messages=message)
        connection.close(code, reason)

    return handler


@contextlib.contextmanager
def running(handler: Handler, **settings: object) -> Iterator[WebSocketPeer]:
    peer = WebSocketPeer(handler, **settings).start()  # type: ignore[arg-type]
    try:
        yield peer
    finally:
        peer.stop()


# ---- a peer that upgrades by hand and then says nothing


class SilentWebSocketPeer:
    """Answers one upgrade correctly (RFC 6455 4.2.2), sends `then_send` (raw frames, with
    the 101), then reads and ignores everything: no pong, no close. `answer_upgrade=False`:
    it never answers the upgrade either."""

    def __init__(self, *, answer_upgrade: bool = True, then_send: bytes = b"") -> None:
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._answer = answer_upgrade
        self._then_send = then_send
        self.received = bytearray()
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def url(self, path: str = "/") -> str:
        return f"ws://127.0.0.1:{self.port}{path}"

    def start(self) -> SilentWebSocketPeer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._done.set()
        self._listener.close()
        self._thread.join(WAIT)

    def _serve(self) -> None:
        self._listener.settimeout(WAIT)
        try:
            sock, _ = self._listener.accept()
        except OSError:
            return
        with sock:
            sock.settimeout(0.2)
            head = bytearray()
            while not self._done.is_set() and b"\r\n\r\n" not in head:
                with contextlib.suppress(TimeoutError):
                    chunk = sock.recv(4096)
                    if not chunk:
                        return
                    head += chunk
            if self._answer and b"\r\n\r\n" in head:
                key = next(
                    line.split(b":", 1)[1].strip()
                    for line in head.split(b"\r\n")
                    if line.lower().startswith(b"sec-websocket-key:")
                )
                accept = base64.b64encode(hashlib.sha1(key + GUID).digest())
                sock.sendall(
                    b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                    b"Connection: Upgrade\r\nSec-WebSocket-Accept: "
                    + accept
                    + b"\r\n\r\n"
                    + self._then_send
                )
            while not self._done.is_set():
                try:
                    chunk = sock.recv(4096)
                except TimeoutError:
                    continue
                except OSError:
                    return
                if not chunk:
                    return
                self.received += chunk
