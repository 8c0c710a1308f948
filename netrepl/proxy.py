"""Proxies a stream client connects through (--proxy URL): the URL as settings, and the
SOCKS4, SOCKS4a, SOCKS5 and HTTP CONNECT handshakes as bytes out and bytes in.

Pure (sans-I/O), like h11: it never opens a socket, waits or starts a thread. The transport
(`transport/client.py`) sends what a handshake asks, feeds it what arrives, in any pieces,
and keeps the deadline and Ctrl-C; whatever the target sent after the proxy's success reply
is handed back (`early`), never dropped.
"""

from __future__ import annotations

import ipaddress
import re
import urllib.parse

from netrepl.codec import quote
from netrepl.errors import UsageError
from netrepl.records import record

DEFAULT_PORTS = {"socks5": 1080, "socks5h": 1080, "socks4": 1080, "socks4a": 1080, "http": 8080}
"""The schemes --proxy takes, with the port each means when the URL gives none."""

# The proxy resolves the target's name for these; for the others netrepl resolves it.
_REMOTE_NAMES = frozenset({"socks5h", "socks4a", "http"})

SOCKS5_REPLIES = {
    1: "general failure",
    2: "connection not allowed by ruleset",
    3: "network unreachable",
    4: "host unreachable",
    5: "connection refused",
    6: "TTL expired",
    7: "command not supported",
    8: "address type not supported",
}
"""RFC 1928's reply codes (the field REP), by number."""

SOCKS4_REPLIES = {
    91: "request rejected or failed",
    92: "request rejected: the proxy cannot reach the client's identd",
    93: "request rejected: identd reports a different user id",
}
"""The SOCKS4 protocol's refusals (the field CD; 90 grants the request)."""

# A proxy's HTTP reply head longer than this is not a proxy's reply.
MAX_HTTP_HEAD = 16384


@record(unsafe_hash=True)
class ProxySettings:
    """--proxy: which proxy, where, and the credentials to give it."""

    scheme: str
    """`socks5`, `socks5h`, `socks4`, `socks4a` or `http`."""
    host: str
    port: int
    username: str | None = None
    password: str | None = None

    @property
    def protocol(self) -> str:
        """`socks5`, `socks4` or `http`: what the proxy speaks (socks5h is SOCKS5)."""
        return {"socks5h": "socks5", "socks4a": "socks4"}.get(self.scheme, self.scheme)

    @property
    def resolves_names(self) -> bool:
        """The proxy, not netrepl, looks up the target's name (socks5h, socks4a, http)."""
        return self.scheme in _REMOTE_NAMES

    @property
    def address(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"

    @property
    def label(self) -> str:
        """`socks5 proxy 127.0.0.1:1080`: how status lines and errors name it."""
        return f"{self.protocol} proxy {self.address}"


class ProxyError(Exception):
    """The proxy refused, failed, or spoke something else: one line saying why."""


def parse_proxy_url(text: str) -> ProxySettings:
    """`socks5h://user:secret@proxy:1080`: credentials percent-decoded, the port defaulted by
    scheme. Raises UsageError with one line."""

    def bad(reason: str) -> UsageError:
        return UsageError(f"bad --proxy URL {quote(text)}: {reason}")

    if any(char < " " or char == "\x7f" or "\udc80" <= char <= "\udcff" for char in text):
        raise bad("it holds a control character or bytes that are not UTF-8")
    scheme, separator, rest = text.partition("://")
    scheme = scheme.lower()
    if not separator or scheme not in DEFAULT_PORTS:
        schemes = [f"{name}://" for name in DEFAULT_PORTS]
        raise bad(f"give {', '.join(schemes[:-1])} or {schemes[-1]}, then HOST[:PORT]")
    authority, _, path = rest.partition("/")
    if path or "?" in authority or "#" in authority:
        raise bad("a proxy URL is SCHEME://[USER:PASSWORD@]HOST[:PORT], with no path")
    userinfo, at, hostport = authority.rpartition("@")
    username = password = None
    if at:
        user_text, colon, password_text = userinfo.partition(":")
        try:
            username = urllib.parse.unquote(user_text, errors="strict")
            password = urllib.parse.unquote(password_text, errors="strict") if colon else None
        except UnicodeDecodeError:
            raise bad("its %-escaped credentials are not UTF-8") from None
        _check_credentials(scheme, username, password, bad)
    host, port = _split_host_port(hostport, scheme, bad)
    return ProxySettings(scheme, host, port, username, password)


def _check_credentials(scheme: str, username: str, password: str | None, bad: type) -> None:
    if scheme.startswith("socks4"):
        if password is not None:
            raise bad("SOCKS4 has no passwords: give only a user id (socks4://USER@HOST)")
        if "\0" in username:  # %00: the user id ends at the first NUL
            raise bad("a SOCKS4 user id cannot hold a NUL")
    if scheme.startswith("socks5"):
        for what, value in (("user name", username), ("password", password or "")):
            if len(value.encode()) > 255:
                raise bad(f"a SOCKS5 {what} is at most 255 bytes")
    if scheme == "http" and ":" in username:  # %3A
        raise bad(
            "an HTTP proxy's user name cannot hold a colon (Basic authentication splits at it)"
        )


def _split_host_port(hostport: str, scheme: str, bad: type) -> tuple[str, int]:
    if hostport.startswith("["):
        host, bracket, rest = hostport[1:].partition("]")
        if not bracket or (rest and not rest.startswith(":")):
            raise bad("write an IPv6 proxy as [ADDRESS]:PORT")
        port_text = rest[1:] if rest else ""
    else:
        host, colon, port_text = hostport.partition(":")
        if colon and not port_text:
            raise bad("no port after the colon")
    if not host:
        raise bad("no host")
    try:
        host.encode("idna")
    except UnicodeError:
        raise bad("each dot-separated part of a name must be 1 to 63 characters") from None
    if not port_text:
        return host, DEFAULT_PORTS[scheme]
    port = int(port_text) if port_text.isascii() and port_text.isdigit() else 0
    if not 1 <= port <= 65535 or len(port_text) > 5:
        raise bad(f"port {quote(port_text)} is not a port (1-65535)")
    return host, port


# ---- handshakes


class Handshake:
    """One handshake with a proxy, for a connection to `host`:`port` beyond it.

    `start()` gives the first bytes to send; `receive(data)` takes what arrived (any split)
    and gives what to send next (often nothing). Once `done`, the tunnel is open and `early`
    holds what the target already sent. Raises ProxyError.
    """

    def __init__(self, settings: ProxySettings, host: str, port: int) -> None:
        self.settings = settings
        self.host = host
        self.port = port
        self.done = False
        self.early = b""
        self.answered = False
        """Anything came back at all (a silent proxy times out differently)."""
        self._buffer = bytearray()

    def start(self) -> bytes:
        raise NotImplementedError

    def closed(self) -> str:
        """Why the handshake failed when the proxy hung up before it was done."""
        if not self.answered:
            hint = "" if self.settings.username else " (does it want USER:PASSWORD@?)"
            return f"the proxy closed the connection without answering{hint}"
        return "the proxy closed the connection before the tunnel was open"

    def receive(self, data: bytes) -> bytes:
        if self.done:
            self.early += data
            return b""
        self.answered = self.answered or bool(data)
        self._buffer += data
        return self._advance()

    def _advance(self) -> bytes:
        raise NotImplementedError

    def _take(self, size: int) -> bytes | None:
        """The next `size` bytes of the reply, once they are all here."""
        if len(self._buffer) < size:
            return None
        taken = bytes(self._buffer[:size])
        del self._buffer[:size]
        return taken

    def _finish(self) -> bytes:
        self.done = True
        self.early, self._buffer = bytes(self._buffer), bytearray()
        return b""


def open_handshake(settings: ProxySettings, host: str, port: int) -> Handshake:
    """The handshake `settings` speaks. For socks5 and socks4, `host` is an address netrepl
    resolved (socks4: IPv4); the others take a name as it is."""
    kind = {"socks5": Socks5Handshake, "socks4": Socks4Handshake, "http": HttpConnectHandshake}
    return kind[settings.protocol](settings, host, port)


def _ip(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


class Socks5Handshake(Handshake):
    """RFC 1928, with RFC 1929's user name and password when the URL gives them."""

    def closed(self) -> str:
        # Some proxies hang up on bad credentials instead of answering them (pproxy does).
        if self._stage == "auth":
            return "authentication failed (the proxy hung up on our user name and password)"
        if self._stage == "reply" and not self._buffer:
            return "the proxy closed the connection instead of answering the request"
        return super().closed()

    def start(self) -> bytes:
        self._stage = "method"
        methods = b"\x00\x02" if self.settings.username is not None else b"\x00"
        return bytes([5, len(methods)]) + methods

    def _request(self) -> bytes:
        address = _ip(self.host)
        if address is None:
            name = self.host.encode("idna")
            if len(name) > 255:
                raise ProxyError("the target's name is longer than SOCKS5 allows (255 bytes)")
            target = bytes([3, len(name)]) + name
        else:
            target = bytes([1 if address.version == 4 else 4]) + address.packed
        self._stage = "reply"
        return b"\x05\x01\x00" + target + self.port.to_bytes(2, "big")

    def _advance(self) -> bytes:
        out = b""
        while not self.done:
            step = self._step()
            if step is None:
                return out
            out += step
        return out

    def _step(self) -> bytes | None:
        if self._stage == "method":
            reply = self._take(2)
            if reply is None:
                return None
            if reply[0] != 5:
                raise ProxyError(_not_a("SOCKS5", reply))
            if reply[1] == 0:
                return self._request()
            if reply[1] == 2 and self.settings.username is not None:
                self._stage = "auth"
                user = self.settings.username.encode()
                password = (self.settings.password or "").encode()
                return bytes([1, len(user)]) + user + bytes([len(password)]) + password
            if reply[1] == 0xFF or reply[1] == 2:
                if self.settings.username is None:
                    raise ProxyError(
                        "the proxy wants a user name and password (give USER:PASSWORD@ in the URL)"
                    )
                raise ProxyError("the proxy accepts none of our authentication methods")
            raise ProxyError(f"the proxy chose an authentication method never offered ({reply[1]})")
        if self._stage == "auth":
            reply = self._take(2)
            if reply is None:
                return None
            if reply[0] != 1:
                raise ProxyError(f"not a SOCKS5 authentication reply (it began {_show(reply)})")
            if reply[1] != 0:
                raise ProxyError("authentication failed (user name or password refused)")
            return self._request()
        head = bytes(self._buffer[:5])
        if len(head) < 2:
            return None
        if head[0] != 5:
            raise ProxyError(_not_a("SOCKS5", head))
        if head[1] != 0:
            name = SOCKS5_REPLIES.get(head[1], "an unknown failure")
            raise ProxyError(f"the proxy says {name} (reply {head[1]})")
        if len(head) < 5:
            return None
        sizes = {1: 4, 4: 16, 3: 1 + head[4]}
        if head[3] not in sizes:
            raise ProxyError(f"not a SOCKS5 reply (address type {head[3]})")
        if self._take(4 + sizes[head[3]] + 2) is None:
            return None
        return self._finish()


class Socks4Handshake(Handshake):
    """SOCKS4 (an IPv4 address) and SOCKS4a (a name the proxy resolves)."""

    def start(self) -> bytes:
        user = (self.settings.username or "").encode() + b"\0"
        address = _ip(self.host)
        if isinstance(address, ipaddress.IPv4Address):
            return b"\x04\x01" + self.port.to_bytes(2, "big") + address.packed + user
        if address is not None or not self.settings.resolves_names:
            raise ProxyError(f"SOCKS4 reaches IPv4 addresses only, not {self.host}")
        # SOCKS4a: an address 0.0.0.x (x > 0) says "the name follows".
        name = self.host.encode("idna") + b"\0"
        return b"\x04\x01" + self.port.to_bytes(2, "big") + b"\0\0\0\x01" + user + name

    def _advance(self) -> bytes:
        reply = bytes(self._buffer[:8])
        if reply[:1] not in (b"", b"\0"):
            raise ProxyError(_not_a("SOCKS4", reply))
        if len(reply) < 2:
            return b""
        if reply[1] != 90:
            name = SOCKS4_REPLIES.get(reply[1])
            if name is None:
                raise ProxyError(f"not a SOCKS4 reply (code {reply[1]})")
            raise ProxyError(f"the proxy says {name} (reply {reply[1]})")
        if self._take(8) is None:
            return b""
        return self._finish()


_STATUS_LINE = re.compile(rb"HTTP/1\.[01] ([0-9]{3})(?: ([^\r\n]*))?\r?\n")


class HttpConnectHandshake(Handshake):
    """HTTP CONNECT (RFC 9110 9.3.6), with Basic credentials when the URL gives them."""

    def start(self) -> bytes:
        authority = f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"
        lines = [f"CONNECT {authority} HTTP/1.1", f"Host: {authority}"]
        if self.settings.username is not None:
            import base64  # here: every start imports this module, few send credentials

            pair = f"{self.settings.username}:{self.settings.password or ''}".encode()
            lines.append(f"Proxy-Authorization: Basic {base64.b64encode(pair).decode()}")
        return ("\r\n".join(lines) + "\r\n\r\n").encode()

    def _advance(self) -> bytes:
        if not b"HTTP/".startswith(bytes(self._buffer[:5])):
            raise ProxyError(f"not an HTTP reply (it began {_show(bytes(self._buffer[:8]))})")
        end = self._buffer.find(b"\r\n\r\n")
        if end < 0:
            if len(self._buffer) > MAX_HTTP_HEAD:
                raise ProxyError(f"the proxy's reply head is longer than {MAX_HTTP_HEAD} bytes")
            return b""
        head = self._take(end + 4)
        assert head is not None
        status = _STATUS_LINE.match(head)
        if status is None:
            raise ProxyError(f"not an HTTP reply (it began {_show(head[:16])})")
        code = int(status.group(1))
        reason = (status.group(2) or b"").decode("latin-1").strip()
        if not 200 <= code < 300:
            said = f"{code} {_printable(reason)}".rstrip()
            if code == 407 and self.settings.username is None:
                said += " (give USER:PASSWORD@ in the URL)"
            raise ProxyError(said)
        return self._finish()


def _not_a(protocol: str, data: bytes) -> str:
    if data.startswith(b"HT"):
        return f"not a {protocol} reply: it answers in HTTP (an http:// proxy?)"
    return f"not a {protocol} reply (it began {_show(data)})"


def _show(data: bytes) -> str:
    return " ".join(f"{byte:02x}" for byte in data[:8]) or "empty"


def _printable(text: str) -> str:
    return "".join(char if char.isprintable() else "?" for char in text)[:120]
