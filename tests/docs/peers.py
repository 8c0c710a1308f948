"""The loopback peers that play the hosts of the docs' sessions: a Redis, a web server, Modbus
devices, a GBK device, the demo peer as a device of its own, devices that connect in, a UDP
sender, and a model of `--demo`.

Each is a `Role`: it binds or connects on 127.0.0.1 only, counts the bytes that cross its
sockets (so a session can wait until netrepl has read all of them), and knows the real
addresses it stands for in the doc. Waits wake on a condition with a timeout; nothing sleeps.
These peers answer like the real thing for what the docs show, and no more.
"""

from __future__ import annotations

import contextlib
import datetime
import socket
import ssl
import threading
from collections.abc import Callable, Iterator

import trustme

from netrepl import demo
from tests.net.session_helpers import crc16_modbus  # written apart from netrepl.checksum

WAIT = 10.0
"""Seconds any single wait on a peer may take before the session fails."""


def loopback(address: tuple[str, int]) -> str:
    return f"{address[0]}:{address[1]}"


def _end(sock: socket.socket) -> None:
    """Close `sock`, waking a thread blocked on it first (close alone does not, on Linux)."""
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    with contextlib.suppress(OSError):
        sock.close()


class Role:
    """Something netrepl talks to in a doc session.

    Per connection, it counts the bytes it handed to netrepl (what netrepl's `rx` must
    reach) and the bytes it took from netrepl and has finished answering (what netrepl's
    `tx` must reach): when both match netrepl's counters, every answer is read.
    """

    def __init__(self, doc_address: str) -> None:
        self.doc_address = doc_address
        """How this host reads in the doc: `192.168.1.7:502`."""
        self._tallies: list[list[int]] = []
        """[sent, received] for each connection, in the order they began."""
        self._changed = threading.Condition()

    # ---- what a session asks of every role

    def start(self) -> None:
        """Start serving (servers); clients start when a step connects them."""

    def stop(self) -> None:
        """Close every socket; the threads end on their own."""

    def doc_values(self) -> dict[str, str]:
        """What varies from run to run (a loopback `host:port`, a date) → how the doc shows it."""
        return {}

    def environment(self, directory: str) -> dict[str, str]:
        """Variables netrepl needs to see this peer as the doc's host does (a trusted CA)."""
        return {}

    def netrepl_ends(self) -> list[str]:
        """netrepl's end of each connection this role accepted, in the order of accepting."""
        return []

    def named_by_netrepl(self) -> list[str]:
        """Real addresses netrepl prints once it has seen this role's connections or
        datagrams: a session waits for them, so no status line comes after its last step."""
        return []

    def typed(self, line: str) -> None:
        """A line was typed (only a model of a peer that runs inside netrepl needs this)."""

    # ---- counting and waiting

    def new_tally(self) -> int:
        """Start counting a connection; its number (0, 1, ...)."""
        with self._changed:
            self._tallies.append([0, 0])
            self._changed.notify_all()
            return len(self._tallies) - 1

    def count(self, *, sent: int = 0, received: int = 0, tally: int = -1) -> None:
        with self._changed:
            self._tallies[tally][0] += sent
            self._tallies[tally][1] += received
            self._changed.notify_all()

    def counts(self, since: int = 0) -> tuple[int, int]:
        """(sent, received) over the connections from number `since` on."""
        with self._changed:
            tallies = self._tallies[since:]
            return sum(t[0] for t in tallies), sum(t[1] for t in tallies)

    def wait(self, predicate: Callable[[], bool], what: str, timeout: float = WAIT) -> None:
        with self._changed:
            if not self._changed.wait_for(predicate, timeout):
                raise AssertionError(f"{type(self).__name__} {self.doc_address}: no {what}")


# ---- servers: netrepl connects to them --------------------------------------------------------


class Connection:
    """One accepted (optionally TLS) connection, counted for its role.

    A chunk read counts as received only when the role asks for the next one (or the
    connection ends): by then the role has sent every answer the chunk asked for.
    """

    def __init__(self, role: Role, sock: socket.socket, tally: int) -> None:
        self._role = role
        self.sock = sock
        self._tally = tally
        self._unanswered = 0
        self._pending = b""

    def recv(self) -> bytes:
        self._role.count(received=self._unanswered, tally=self._tally)
        self._unanswered = 0
        try:
            data = self.sock.recv(65536)
        except OSError:
            data = b""
        self._unanswered = len(data)
        return data

    def lines(self) -> Iterator[bytes]:
        """Each complete line without its end (LF or CR LF), until the end of stream."""
        while True:
            while b"\n" in self._pending:
                line, self._pending = self._pending.split(b"\n", 1)
                yield line.removesuffix(b"\r")
            data = self.recv()
            if not data:
                return
            self._pending += data

    def read_exactly(self, size: int) -> bytes | None:
        while len(self._pending) < size:
            data = self.recv()
            if not data:
                return None
            self._pending += data
        taken, self._pending = self._pending[:size], self._pending[size:]
        return taken

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)
        self._role.count(sent=len(data), tally=self._tally)

    def finish(self) -> None:
        """What was read is answered; the connection ends here (the peer hangs up)."""
        self._role.count(received=self._unanswered, tally=self._tally)
        self._unanswered = 0


class Server(Role):
    """A loopback TCP server (TLS with `tls`) serving each client with `serve` on a thread."""

    def __init__(
        self, doc_address: str, *, resolved: str | None = None, tls: TlsIdentity | None = None
    ) -> None:
        super().__init__(doc_address)
        port = doc_address.rsplit(":", 1)[1]
        self.shown_as = f"{resolved}:{port}" if resolved else doc_address
        """How netrepl names it: the address the doc's host name resolves to."""
        self.tls = tls
        self._context = tls.server_context() if tls is not None else None
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.real_address = loopback(self._listener.getsockname())
        self._ends: list[str] = []
        self._sockets: list[socket.socket] = []
        self._thread = threading.Thread(target=self._accept_loop, daemon=True)

    @property
    def port(self) -> int:
        return self._listener.getsockname()[1]

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        for sock in [self._listener, *self._sockets]:
            _end(sock)

    def doc_values(self) -> dict[str, str]:
        tls = self.tls.doc_values() if self.tls is not None else {}
        return {self.real_address: self.shown_as, **tls}

    def environment(self, directory: str) -> dict[str, str]:
        return self.tls.environment(directory) if self.tls is not None else {}

    def netrepl_ends(self) -> list[str]:
        with self._changed:
            return list(self._ends)

    def named_by_netrepl(self) -> list[str]:
        return self.netrepl_ends()

    def wait_accepted(self, count: int) -> None:
        self.wait(lambda: len(self._ends) >= count, f"connection number {count}")

    def _accept_loop(self) -> None:
        while True:
            try:
                sock, address = self._listener.accept()
            except OSError:
                return
            self._sockets.append(sock)
            with self._changed:
                self._ends.append(loopback(address))
                tally = self.new_tally()
            threading.Thread(target=self._run, args=(sock, tally), daemon=True).start()

    def _run(self, sock: socket.socket, tally: int) -> None:
        try:
            if self._context is not None:
                sock = self._context.wrap_socket(sock, server_side=True)
                self._sockets.append(sock)
            connection = Connection(self, sock, tally)
            self.serve(connection)
            connection.finish()
            sock.shutdown(socket.SHUT_RDWR)
        except (OSError, ssl.SSLError):
            pass  # netrepl left, or refused our certificate: what it saw is what the doc shows
        finally:
            with contextlib.suppress(OSError):
                sock.close()

    def serve(self, connection: Connection) -> None:
        raise NotImplementedError


class RedisLike(Server):
    """Redis's inline protocol: PING, SET, GET, QUIT; it closes at the client's end of stream."""

    def __init__(self, doc_address: str, store: dict[bytes, bytes] | None = None) -> None:
        super().__init__(doc_address)
        self.store = dict(store or {})

    def serve(self, connection: Connection) -> None:
        for line in connection.lines():
            command, *args = line.split() or [b""]
            match command.upper(), args:
                case b"PING", []:
                    connection.send(b"+PONG\r\n")
                case b"SET", [key, value]:
                    self.store[key] = value
                    connection.send(b"+OK\r\n")
                case b"GET", [key]:
                    value = self.store.get(key)
                    if value is None:
                        connection.send(b"$-1\r\n")
                    else:
                        connection.send(b"$%d\r\n%s\r\n" % (len(value), value))
                case b"QUIT", []:
                    connection.send(b"+OK\r\n")
                    return
                case _:
                    connection.send(b"-ERR unknown command '%s'\r\n" % command)


class HttpLike(Server):
    """A web server: answers any request with one small page; `Connection: close` closes."""

    BODY = (
        b"<!doctype html>\n"
        b"<title>Example Domain</title>\n"
        b"<p>This domain is for use in documentation examples.</p>\n"
    )

    def serve(self, connection: Connection) -> None:
        head: list[bytes] = []
        for line in connection.lines():
            if line:
                head.append(line)
                continue
            if not head:
                continue
            close = any(h.lower() == b"connection: close" for h in head[1:])
            response = [
                b"HTTP/1.1 200 OK",
                b"Content-Type: text/html; charset=UTF-8",
                b"Content-Length: %d" % len(self.BODY),
                *([b"Connection: close"] if close else []),
                b"",
                b"",
            ]
            connection.send(b"\r\n".join(response) + self.BODY)
            if close:
                return
            head = []


class ModbusDevice(Server):
    """A Modbus device that answers "read holding registers" (function 3).

    `rtu=False`: Modbus/TCP frames (MBAP header, no CRC). `rtu=True`: RTU frames over TCP
    (unit, function, data, CRC-16/MODBUS), as a serial-to-Ethernet gateway passes them.
    """

    def __init__(
        self, doc_address: str, *, rtu: bool = False, registers: dict[int, int] | None = None
    ) -> None:
        super().__init__(doc_address)
        self.rtu = rtu
        self.registers = registers if registers is not None else {0: 42}

    def _pdu_reply(self, pdu: bytes) -> bytes:
        function = pdu[0]
        if function != 3 or len(pdu) != 5:
            return bytes([function | 0x80, 0x01])  # illegal function
        start, count = int.from_bytes(pdu[1:3], "big"), int.from_bytes(pdu[3:5], "big")
        values = b"".join(self.registers.get(start + i, 0).to_bytes(2, "big") for i in range(count))
        return bytes([3, len(values)]) + values

    def serve(self, connection: Connection) -> None:
        while True:
            if self.rtu:
                frame = connection.read_exactly(8)
                if frame is None:
                    return
                if crc16_modbus(frame[:6]) != frame[6:]:
                    continue  # a device drops a frame with a bad CRC without a word
                reply = frame[:1] + self._pdu_reply(frame[1:6])
                connection.send(reply + crc16_modbus(reply))
            else:
                header = connection.read_exactly(7)
                if header is None:
                    return
                pdu = connection.read_exactly(int.from_bytes(header[4:6], "big") - 1)
                if pdu is None:
                    return
                reply = self._pdu_reply(pdu)
                mbap = header[:4] + (len(reply) + 1).to_bytes(2, "big") + header[6:7]
                connection.send(mbap + reply)


class SilentDevice(Server):
    """A device that listens and never says a word."""

    def serve(self, connection: Connection) -> None:
        while connection.recv():
            pass


class GbkDevice(Server):
    """A device that speaks GBK: says its status on connect and to `查询` (query)."""

    STATUS = "设备状态：正常\r\n".encode("gbk")

    def serve(self, connection: Connection) -> None:
        connection.send(self.STATUS)
        for line in connection.lines():
            if line.decode("gbk", "replace").strip() == "查询":
                connection.send(self.STATUS)
            else:
                connection.send("未知命令\r\n".encode("gbk"))


class JsonDevice(Server):
    """A device that answers each request line with one line of compact JSON."""

    def serve(self, connection: Connection) -> None:
        connection.send(b"ready\r\n")
        for line in connection.lines():
            request = line.decode("utf-8", "replace").strip()
            if request == '{"op":"status"}':
                reply = '{"op":"status","ok":true,"temp":21.5,"alarms":[],"fw":{"v":"2.1"}}'
            else:
                reply = '{"error":"unknown request"}'
            connection.send(reply.encode() + b"\r\n")


class DemoDevice(Server):
    """netrepl's demo peer as `python -m netrepl.demo PORT` runs it: served by netrepl.demo's
    own handler, through a link that counts what crosses it."""

    def serve(self, connection: Connection) -> None:
        demo.serve(_CountedLink(connection))


class WebSocketDemoDevice(Server):
    """netrepl's demo peer's WebSocket endpoint, as `python -m netrepl.demo PORT` serves a
    client whose first words are an upgrade request: netrepl.demo's own handler."""

    def serve(self, connection: Connection) -> None:
        head = b""
        while b"\r\n\r\n" not in head:
            data = connection.recv()
            if not data:
                return
            head += data
        demo.serve_websocket(_CountedLink(connection), head)


class _CountedLink:
    """A `demo.DemoLink` over a counted `Connection`."""

    def __init__(self, connection: Connection) -> None:
        self._connection = connection

    def sendall(self, data: bytes, /) -> None:
        self._connection.send(data)

    def recv(self, size: int, /) -> bytes:
        return self._connection.recv()

    def setsockopt(self, level: int, option: int, value: int, /) -> None:
        self._connection.sock.setsockopt(level, option, value)


class TlsIdentity:
    """A server's TLS identity from trustme: a certificate issued by a fresh CA, or with
    `self_signed` the CA's own certificate (which no client trusts).

    The CA is what the reader's system trusts: `environment()` points OpenSSL's default
    store (`SSL_CERT_FILE`) at it, so netrepl verifies as it would against a public CA.
    The expiry varies with the day of the run: `doc_values()` maps it to the doc's.
    """

    def __init__(
        self,
        *names: str,
        common_name: str | None = None,
        organization: str = "Example Inc",
        unit: str = "Web",
        days_left: int = 365,
        doc_expiry: str | None = None,
        self_signed: bool = False,
    ) -> None:
        self._ca = trustme.CA(organization_name="Example Root CA", organization_unit_name="CA")
        self.self_signed = self_signed
        expires = expiring_in(days_left)
        if not self_signed:
            self._leaf = self._ca.issue_cert(
                *names,
                common_name=common_name,
                organization_name=organization,
                organization_unit_name=unit,
                not_after=expires,
            )
        self._real_expiry = expires.strftime("%Y-%m-%d %H:%M UTC")
        self._doc_expiry = doc_expiry
        self._files: list[str] = []

    def server_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        if self.self_signed:
            with (
                self._ca.cert_pem.tempfile() as cert,
                self._ca.private_key_pem.tempfile() as key,
            ):
                context.load_cert_chain(cert, key)
        else:
            self._leaf.configure_cert(context)
        return context

    def environment(self, directory: str) -> dict[str, str]:
        if self.self_signed:
            return {}
        path = f"{directory}/trusted-ca.pem"
        self._ca.cert_pem.write_to_path(path)
        return {"SSL_CERT_FILE": path}

    def doc_values(self) -> dict[str, str]:
        if self.self_signed or self._doc_expiry is None:
            return {}
        return {self._real_expiry: self._doc_expiry}


def expiring_in(days: int) -> datetime.datetime:
    """A not-after time for which netrepl counts exactly `days` days left for the next 12
    hours (it rounds down), on a whole minute, as netrepl prints it."""
    moment = datetime.datetime.now(datetime.UTC) + datetime.timedelta(days=days, hours=12)
    return moment.replace(second=0, microsecond=0)


# ---- clients: they connect to netrepl ---------------------------------------------------------


class DeviceClient(Role):
    """A device that connects to a listening netrepl and sends what a step pushes."""

    def __init__(self, doc_address: str) -> None:
        super().__init__(doc_address)
        self.new_tally()
        self._sock: socket.socket | None = None
        self.real_address = ""

    def connect(self, address: tuple[str, int]) -> None:
        self._sock = socket.create_connection(address, timeout=WAIT)
        self._sock.settimeout(None)  # the reader waits for replies as long as the session runs
        self.real_address = loopback(self._sock.getsockname())
        threading.Thread(target=self._read_loop, args=(self._sock,), daemon=True).start()

    def push(self, data: bytes) -> None:
        assert self._sock is not None, "push before connect"
        self._sock.sendall(data)
        self.count(sent=len(data))

    def _read_loop(self, sock: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := sock.recv(65536):
                self.count(received=len(data))

    def stop(self) -> None:
        if self._sock is not None:
            _end(self._sock)

    def doc_values(self) -> dict[str, str]:
        return {self.real_address: self.doc_address} if self.real_address else {}

    def named_by_netrepl(self) -> list[str]:
        return [self.real_address] if self.real_address else []


class DatagramSender(Role):
    """A UDP device on its own loopback port: sends datagrams, counts the replies."""

    def __init__(self, doc_address: str) -> None:
        super().__init__(doc_address)
        self.new_tally()
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._sock.bind(("127.0.0.1", 0))
        self.real_address = loopback(self._sock.getsockname())
        self.used = False
        self._stopped = threading.Event()

    def start(self) -> None:
        threading.Thread(target=self._read_loop, daemon=True).start()

    def send_to(self, address: tuple[str, int], data: bytes) -> None:
        self.used = True
        self._sock.sendto(data, address)
        self.count(sent=len(data))

    def _read_loop(self) -> None:
        with contextlib.suppress(OSError):
            while not self._stopped.is_set():
                data, _ = self._sock.recvfrom(65536)
                self.count(received=len(data))

    def stop(self) -> None:
        self._stopped.set()
        _end(self._sock)

    def doc_values(self) -> dict[str, str]:
        return {self.real_address: self.doc_address}

    def named_by_netrepl(self) -> list[str]:
        return [self.real_address] if self.used else []


# ---- the demo peer, which runs inside netrepl ---------------------------------------------------


class BuiltInDemo(Role):
    """`netrepl --demo`'s own peer, modelled from netrepl.demo's constants: its sockets are
    inside netrepl, so the counts are what it will have sent and read once it has answered."""

    ANSWERS = {  # noqa: RUF012 (a table, never changed)
        "help": demo.HELP,
        "gbk": demo.GBK_LINE,
        "binary": demo.BINARY_FRAME,
        "hostile": demo.HOSTILE,
        "prompt": b"login: ",
        "split": demo.SPLIT_LINE,
        "temp": demo.TEMPERATURE,
    }

    def __init__(self) -> None:
        super().__init__("(inside netrepl)")
        self.new_tally()
        self.count(sent=len(demo.OPENING))

    def typed(self, line: str) -> None:
        if line.startswith("/"):
            return
        # An unknown line is echoed back; only the lines in the table are modelled.
        answer = self.ANSWERS.get(line, line.encode() + b"\n")
        self.count(sent=len(answer), received=len(line.encode()) + 1)


class BuiltInWebSocketDemo(Role):
    """`netrepl --demo --ws`'s own peer, modelled from netrepl.demo's constants as
    BuiltInDemo is: netrepl counts the messages' payloads (no end of line is added)."""

    ANSWERS = {  # noqa: RUF012 (a table, never changed)
        "help": demo.WS_HELP,
        "json": demo.WS_JSON,
        "gbk": demo.GBK_LINE,
        "binary": demo.BINARY_FRAME,
        "hostile": demo.WS_HOSTILE,
        "split": demo.WS_SPLIT,
        "ping": b"",  # a ping frame: no payload is counted
        "bye": b"",  # a close frame
    }

    def __init__(self) -> None:
        super().__init__("(inside netrepl)")
        self.new_tally()
        self.count(sent=len(demo.WS_GREETING))

    def typed(self, line: str) -> None:
        if line.startswith("/"):
            return
        answer = self.ANSWERS.get(line)
        if answer is None:
            answer = demo.json_reply(line) or line.encode()
        self.count(sent=len(answer), received=len(line.encode()))
