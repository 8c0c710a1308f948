"""Events -> styled text (rich `Text`) in the current view, keeping per-connection stream state.

Pure: no terminal, no socket, no thread. Only the display calls it, from its one thread, in
event order, so a view switch applies exactly to the bytes that arrive after it. Every string
that came from outside (peer bytes, typed lines, addresses) passes through `codec.escape_text`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from rich.text import Span, Text

from netrepl.codec import SafeText, TextDecoder, escape_text
from netrepl.events import (
    CertificateInfo,
    Closed,
    Connected,
    Event,
    HalfClosed,
    Listening,
    Noticed,
    Received,
    Sent,
    Submitted,
    TlsEstablished,
    ViewChanged,
)
from netrepl.hexdump import format_hexdump
from netrepl.view import View

Channel = Literal["data", "echo", "status", "info", "error"]
"""`data` is the received stream (stdout in batch mode); the rest are messages for the user."""

STYLES: dict[str, str] = {
    "netrepl.control": "bold magenta",
    "netrepl.invalid": "bold red",
    "netrepl.offset": "dim",
    "netrepl.sent": "cyan",
    "netrepl.prompt": "bold",
    "netrepl.echo": "",
    "netrepl.label": "bold yellow",
    "netrepl.status": "dim",
    "netrepl.info": "",
    "netrepl.error": "bold red",
}


@dataclass(frozen=True, slots=True)
class Output:
    """One piece for the display: styled text, or for the raw view the bytes themselves."""

    channel: Channel
    text: Text | None = None
    raw: bytes = b""


def styled(safe: SafeText, style: str = "") -> Text:
    """Styled `Text` for already escaped text: escapes get the style of their kind."""
    spans = [Span(start, end, f"netrepl.{kind}") for start, end, kind in safe.escapes]
    return Text(safe.text, style=style, spans=spans, end="")


def safe_text(text: str, style: str = "") -> Text:
    """`text` with every unsafe character escaped and the escapes styled."""
    return styled(escape_text(text), style)


def hexdump_text(data: bytes, offset: int, style: str = "") -> Text:
    """A block of `hexdump -C` lines, each ending in a newline, with the offsets dimmed."""
    lines = format_hexdump(data, offset)
    spans = []
    position = 0
    for line in lines:
        spans.append(Span(position, position + line.index(" "), "netrepl.offset"))
        position += len(line) + 1
    return Text("\n".join(lines) + "\n", style=style, spans=spans, end="")


def count(number: int, noun: str) -> str:
    """`1 byte`, `2,048 bytes`."""
    return f"{number:,} {noun}" if number == 1 else f"{number:,} {noun}s"


def certificate_lines(chain: tuple[CertificateInfo, ...]) -> list[str]:
    """What /cert prints: each certificate of a chain, leaf first."""
    lines: list[str] = []
    for depth, cert in enumerate(chain):
        lines.append(f"{depth}: subject {cert.subject or '(empty)'}")
        lines.append(f"   issuer  {cert.issuer or '(empty)'}")
        lines.append(f"   valid   {cert.not_before} .. {cert.not_after}{_expiry(cert)}")
        if cert.alt_names:
            lines.append(f"   names   {', '.join(cert.alt_names)}")
    return lines


def _expiry(cert: CertificateInfo) -> str:
    if cert.days_left is None:
        return ""
    if cert.days_left < 0:
        return f" (EXPIRED {count(-cert.days_left, 'day')} ago)"
    return f" ({count(cert.days_left, 'day')} left)"


@dataclass
class _Peer:
    label: str
    accepted: bool
    protocol: str


class _ReceivedStream:
    """What one connection's received bytes look like so far, in the current view."""

    def __init__(self, view: View) -> None:
        self.view = view
        self.offset = 0  # bytes of this stream fed so far
        self.decoder = TextDecoder(view.encoding) if view.mode == "text" else None
        self.mid_line = False  # the last text shown did not end with a newline
        # A CR shown last, kept across a detour through hex so a following LF adds no line.
        self.after_cr = False

    def feed(self, data: bytes, final: bool = False) -> list[Output]:
        start = self.offset - (len(self.decoder.pending()) if self.decoder else 0)
        self.offset += len(data)
        if self.decoder is not None:
            return self._text(self.decoder.decode(data, final))
        return self._bytes(data, start)

    def _text(self, decoded: SafeText) -> list[Output]:
        text = styled(decoded)
        if not text.plain:
            return []
        self.mid_line = not text.plain.endswith("\n")
        return [Output("data", text)]

    def _bytes(self, data: bytes, start: int) -> list[Output]:
        if not data:
            return []
        self.after_cr = False
        if self.view.mode == "raw":
            return [Output("data", raw=data)]
        block = hexdump_text(data, start)
        if self.mid_line:
            # The hexdump must start at column 0 even after a text line left open.
            block = Text("\n", end="") + block
            self.mid_line = False
        return [Output("data", block)]

    def switch(self, view: View) -> list[Output]:
        """Change view; bytes held back for an incomplete character carry over."""
        old = self.decoder
        pending = old.pending() if old else b""
        if old is not None:
            self.after_cr = old.after_cr
        self.view = view
        if view.mode == "text":
            self.decoder = TextDecoder(view.encoding, after_cr=self.after_cr)
            return self._text(self.decoder.decode(pending))
        self.decoder = None
        return self._bytes(pending, self.offset - len(pending))

    def end_line(self) -> list[Output]:
        """End a text line left open, so what follows starts at column 0."""
        if not self.mid_line:
            return []
        self.mid_line = False
        return [Output("data", Text("\n", end=""))]

    def finish(self) -> list[Output]:
        """Flush what is held back when the stream ends, and end an open text line."""
        return self.feed(b"", final=True) + self.end_line()


class Renderer:
    """Turns events into outputs. One instance per session, used by the display thread only."""

    def __init__(self, view: View) -> None:
        self.view = view
        self._received: dict[int, _ReceivedStream] = {}
        self._sent_offsets: dict[int, int] = {}
        self._peers: dict[int, _Peer] = {}
        self._accepted_streams = 0
        self._last_source: int | None = None
        """The connection whose data was shown last: a change of source gets a label."""

    def render(self, event: Event) -> list[Output]:
        match event:
            case Received(conn, data, datagram):
                if datagram:
                    return self._datagram(conn, data)
                return self._from(conn, self._stream(conn).feed(data))
            case Sent(conn, data, as_hex, echo):
                offset = self._sent_offsets.get(conn, 0)
                self._sent_offsets[conn] = offset + len(data)
                if not (as_hex and echo):
                    return []
                return [Output("echo", hexdump_text(data, offset, "netrepl.sent"))]
            case Connected(conn, peer, local, protocol, accepted):
                self._peers[conn] = _Peer(peer, accepted, protocol)
                self._received[conn] = _ReceivedStream(self.view)
                self._sent_offsets[conn] = 0
                if accepted and protocol != "udp":
                    self._accepted_streams += 1
                return [
                    self._notice(
                        self._connected_text(conn, peer, local, protocol, accepted), "status"
                    )
                ]
            case Listening(address, protocol, tls):
                kind = {"tcp": "TCP", "udp": "UDP", "unix": "unix"}[protocol]
                kind += "+TLS" if tls else ""
                return [self._notice(f"listening on {address} ({kind})", "status")]
            case TlsEstablished():
                return [self._notice(self._tls_text(event), "status")]
            case HalfClosed(conn):
                who = self._who(conn)
                text = f"sent end of stream to {who}: half-closed, still reading until it closes"
                return [self._notice(text, "status")]
            case Closed(conn, reason, received, sent, failed):
                stream = self._received.get(conn)
                outputs = self._from(conn, stream.finish()) if stream else []
                self._received.pop(conn, None)
                self._sent_offsets.pop(conn, None)
                peer = self._peers.pop(conn, None)
                prefix = f"#{conn} {peer.label} " if peer and peer.accepted else ""
                summary = f"{prefix}{reason} ({count(received, 'byte')} received, {sent:,} sent)"
                outputs.append(self._notice(summary, "error" if failed else "status"))
                if self._last_source == conn:
                    self._last_source = None
                return outputs
            case Submitted(prompt, line):
                text = Text(end="")
                text.append(prompt, style="netrepl.prompt")
                text.append_text(safe_text(line, "netrepl.echo"))
                return [Output("echo", text)]
            case Noticed(text, level):
                return [self._notice(text, level)]
            case ViewChanged(view):
                self.view = view
                return [
                    out
                    for conn, stream in list(self._received.items())
                    for out in self._from(conn, stream.switch(view))
                ]
        raise TypeError(f"not an event: {event!r}")

    # ---- received data

    def _stream(self, conn: int) -> _ReceivedStream:
        stream = self._received.get(conn)
        if stream is None:  # data for a connection announced before this renderer existed
            stream = self._received[conn] = _ReceivedStream(self.view)
        return stream

    def _from(self, conn: int, outputs: list[Output]) -> list[Output]:
        """Data of one connection, after a label line when it comes from another client than
        the data shown last (and after ending that client's open line)."""
        if not any(out.channel == "data" for out in outputs):
            return outputs
        previous, self._last_source = self._last_source, conn
        if self._accepted_streams < 2 or previous == conn or self.view.mode == "raw":
            return outputs
        # The label's own stream keeps its open line: its data continues after the label.
        label = [out for c, s in self._received.items() if c != conn for out in s.end_line()]
        label.append(Output("data", self._label(conn)))
        return label + outputs

    def _datagram(self, conn: int, data: bytes) -> list[Output]:
        """One datagram, one block: a label line, then its bytes decoded on their own."""
        self._last_source = conn
        if self.view.mode == "raw":
            return [Output("data", raw=data)]
        outputs = self._end_open_lines()
        outputs.append(Output("data", self._label(conn, f" · {count(len(data), 'byte')}")))
        if self.view.mode == "hex":
            body = hexdump_text(data, 0) if data else Text("", end="")
        else:
            body = styled(TextDecoder(self.view.encoding).decode(data, final=True))
            if body.plain and not body.plain.endswith("\n"):
                body.append("\n")
        outputs.append(Output("data", body))
        return outputs

    def _label(self, conn: int, suffix: str = "") -> Text:
        text = Text("── ", style="netrepl.label", end="")
        text.append_text(safe_text(self._who(conn), "netrepl.label"))
        text.append(suffix + "\n", style="netrepl.label")
        return text

    def _end_open_lines(self) -> list[Output]:
        return [out for stream in self._received.values() for out in stream.end_line()]

    # ---- messages

    def _who(self, conn: int) -> str:
        peer = self._peers.get(conn)
        if peer is None:
            return f"#{conn}"
        return f"#{conn} {peer.label}" if peer.accepted else peer.label

    @staticmethod
    def _connected_text(conn: int, peer: str, local: str, protocol: str, accepted: bool) -> str:
        if protocol == "udp":
            if accepted:
                return f"#{conn} datagrams from {peer}"
            return f"sending datagrams to {peer} from {local}"
        if accepted:
            return f"#{conn} connected from {peer}"
        return f"connected to {peer} from {local}" if local else f"connected to {peer}"

    def _tls_text(self, event: TlsEstablished) -> str:
        peer = self._peers.get(event.conn)
        who = f"#{event.conn} {peer.label}: " if peer is not None and peer.accepted else ""
        parts = [f"{who}{event.version} {event.cipher}"]
        if event.alpn:
            parts.append(f"ALPN {event.alpn}")
        if event.chain:
            leaf = event.chain[0]
            name = leaf.subject or (leaf.alt_names[0] if leaf.alt_names else "(no subject)")
            parts.append(f"certificate {name}, expires {leaf.not_after}{_expiry(leaf)}")
            parts.append("verified" if event.verified else "NOT verified")
        else:
            parts.append("no certificate from the peer")
        return "; ".join(parts)

    @staticmethod
    def _notice(text: str, level: Channel) -> Output:
        return Output(level, safe_text(text, f"netrepl.{level}"))
