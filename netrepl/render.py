"""Events -> styled text (`StyledText`) in the current view, keeping per-connection stream state.

Pure: no terminal, no socket, no thread. Only the display calls it, from its one thread, in
event order, so a view switch applies exactly to the bytes that arrive after it. Every string
that came from outside (peer bytes, typed lines, addresses) passes through `codec.escape_text`.
"""

from __future__ import annotations

import time
from typing import Literal

from netrepl.codec import SafeText, TextDecoder, escape_text, quote
from netrepl.events import (
    CertificateInfo,
    ClearRequested,
    Closed,
    Connected,
    Event,
    HalfClosed,
    Listening,
    Noticed,
    PauseChanged,
    Progress,
    Received,
    Sent,
    Signalled,
    Skipped,
    StatsRequested,
    Submitted,
    TlsEstablished,
    Upgraded,
    ViewChanged,
)
from netrepl.framing import Frame, Framer
from netrepl.hexdump import BYTES_PER_LINE, format_hexdump, offset_spans
from netrepl.jsonview import JSON_SETTLE_SECONDS, JsonLines, Piece
from netrepl.records import field, record
from netrepl.styledtext import Span, StyledText
from netrepl.traffic import TrafficStats, count, format_rate
from netrepl.view import View

Channel = Literal["data", "echo", "status", "info", "error", "clear", "progress"]
"""`data` is the received stream (stdout in batch mode); the rest are messages for the user,
and `clear` asks the terminal to clear its screen."""

STYLES: dict[str, str] = {
    "netrepl.control": "bold magenta",
    "netrepl.invalid": "bold red",
    "netrepl.offset": "dim",
    "netrepl.sent": "cyan",
    "netrepl.prompt": "bold",
    "netrepl.echo": "",
    "netrepl.label": "bold yellow",
    "netrepl.bar": "magenta",
    "netrepl.bar.back": "grey23",
    "netrepl.status": "dim",
    "netrepl.info": "",
    "netrepl.error": "bold red",
    # The json view: rich's own JSON colours (rich.default_styles, json.*).
    "netrepl.json.key": "bold blue",
    "netrepl.json.str": "not bold not italic green",
    "netrepl.json.number": "bold not italic cyan",
    "netrepl.json.true": "italic bright_green",
    "netrepl.json.false": "italic bright_red",
    "netrepl.json.null": "italic magenta",
}


@record(slots=True, unsafe_hash=True)
class Output:
    """One piece for the display: styled text, or for the raw view the bytes themselves."""

    channel: Channel
    text: StyledText | None = None
    raw: bytes = b""


def styled(safe: SafeText, style: str = "") -> StyledText:
    """`StyledText` for already escaped text: escapes get the style of their kind."""
    spans = [Span(start, end, f"netrepl.{kind}") for start, end, kind in safe.escapes]
    return StyledText(safe.text, style, spans=spans)


def safe_text(text: str, style: str = "") -> StyledText:
    """`text` with every unsafe character escaped and the escapes styled."""
    return styled(escape_text(text), style)


def pieces_text(pieces: list[Piece], styles: bool = True) -> StyledText:
    """The json view's pieces as one `StyledText`: documents as they are, text as the text view
    shows it (escaped, escapes styled)."""
    text = StyledText()
    for piece in pieces:
        if isinstance(piece, StyledText):
            text.append_text(piece)
        elif styles:
            text.append_text(styled(escape_text(piece)))
        else:
            text.append(escape_text(piece).text)
    return text


def hexdump_text(data: bytes, offset: int, style: str = "", *, styles: bool = True) -> StyledText:
    """A block of `hexdump -C` lines, each ending in a newline, with the offsets dimmed."""
    text = format_hexdump(data, offset)
    if not styles:
        return StyledText(text, style)
    spans = [Span(start, end, "netrepl.offset") for start, end in offset_spans(len(data), offset)]
    return StyledText(text, style, spans=spans)


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


@record
class _Peer:
    """What the renderer remembers of an open connection, to name it in status lines."""

    label: str
    accepted: bool
    protocol: str
    flow: int | None = None
    side: str | None = None

    @property
    def leg(self) -> str:
        """`#1 client`, `#1 upstream`: a relay leg as status lines name it."""
        return f"#{self.flow} {self.side}"

    @property
    def direction(self) -> str:
        """`#1 client → upstream`: where what this relay leg sends goes."""
        other = "upstream" if self.side == "client" else "client"
        return f"#{self.flow} {self.side} → {other}"


@record
class _Unshown:
    """A tally of received data not shown: hidden while paused (`/pause`), or skipped by
    the display to keep up with a flood."""

    received: int = 0
    reads: int = 0
    sent: int = 0
    conns: set[int] = field(default_factory=set)

    def add(self, conn: int, data: bytes) -> None:
        self.received += len(data)
        self.reads += 1
        self.conns.add(conn)


# The kinds' titles, for a transcript written before Listening carried its own.
OLD_TITLES = {"tcp": "TCP", "udp": "UDP", "unix": "unix"}
# While the display skips to keep up, it says so this often (and once more when it is over).
FLOOD_REPORT_SECONDS = 2.0
# Hex view: bytes that arrive within this time of each other are one block, whose rows run
# on across reads, so a flood (or a message split into segments) reads as `hexdump -C` reads
# it; after a silence the next bytes start a line of their own, as a device's reply should.
# An unfinished row waits this long for the rest: a person sees a reply at once.
ROW_SETTLE_SECONDS = 0.03


def clock(at: float) -> str:
    """`14:03:07.250`: local time with milliseconds."""
    return time.strftime("%H:%M:%S", time.localtime(at)) + f".{int(at * 1000) % 1000:03d}"


class _ReceivedStream:
    """What one connection's received bytes look like so far, in the current view."""

    def __init__(self, view: View, styles: bool = True) -> None:
        self.view = view
        self.styles = styles
        self.offset = 0  # bytes of this stream shown (or skipped) so far
        self.decoder = self._decoder(view) if view.mode in ("text", "json") else None
        self.framer = Framer(view.framing)
        self.mid_line = False  # the last text shown did not end with a newline
        self.lines = self._lines(view)
        # A CR shown last, kept across a detour through hex so a following LF adds no line.
        self.after_cr = False
        self.held = b""
        """Hex view: received bytes of a row not yet complete, not shown yet."""
        self.held_at = 0.0

    def _decoder(self, view: View, after_cr: bool = False) -> TextDecoder:
        return TextDecoder(view.encoding, after_cr)

    def _lines(self, view: View) -> JsonLines | None:
        """The json view's line state; a text line left open goes on as text."""
        if view.mode != "json":
            return None
        return JsonLines(styles=self.styles, mid_line=self.mid_line)

    @property
    def settle(self) -> float:
        """How long held bytes wait for the rest of their row, character or line."""
        return JSON_SETTLE_SECONDS if self.lines is not None else ROW_SETTLE_SECONDS

    def show(
        self, data: bytes, final: bool = False, *, at: float = 0.0, whole: bool = False
    ) -> list[Output]:
        """`data` in the view: decoded text (held-back bytes wait), or hexdump lines: rows of
        16 from where the block began, the bytes of an unfinished row waiting for the rest
        (unless `final`, or `whole`: a block of its own)."""
        holding = self.view.mode == "hex" and not whole
        outputs = []
        if (holding or self.decoder) and self.holds() and at - self.held_at >= self.settle:
            # The silence came before these bytes (the display is only now catching up).
            outputs = self.release()
        start = self.offset - (len(self.decoder.pending()) if self.decoder else len(self.held))
        self.offset += len(data)
        if self.lines is not None:
            assert self.decoder is not None
            text = self.decoder.decode_unescaped(data, final)
            outputs += self._shown(self._pieces(self.lines.feed(text, whole=whole or final)))
            if self.holds():
                self.held_at = at
            return outputs
        if self.decoder is not None:
            outputs += self._text(self.decoder.decode(data, final))
            if self.decoder.pending():
                self.held_at = at
            return outputs
        if not holding:
            return self._bytes(data, start)
        data, self.held = self.held + data, b""
        if not final:
            # What is held starts a row, so the block's rows run on from it.
            cut = len(data) - len(data) % BYTES_PER_LINE
            data, self.held, self.held_at = data[:cut], data[cut:], at
        return outputs + self._bytes(data, start)

    def holds(self) -> bool:
        """Received bytes wait to be shown: an unfinished hex row, the start of a character
        (a text view) that the next bytes may complete, or a line that may be a document (the
        json view)."""
        return bool(
            self.held
            or (self.decoder and self.decoder.pending())
            or (self.lines and self.lines.holding)
        )

    def held_due(self, now: float) -> float | None:
        """Seconds until held bytes have waited long enough for the rest of their row or
        character."""
        if not self.holds():
            return None
        return max(0.0, self.held_at + self.settle - now)

    def release(self) -> list[Output]:
        """Show the held bytes now: the peer went quiet (a character's start is then shown as
        escapes: a Modbus CRC ending in e1 is not waiting for more; a line that may be a
        document is shown, as one if it is), or a skip or a view change follows them."""
        if self.lines is not None and self.decoder is not None:
            text = self.decoder.decode_unescaped(b"", final=True)
            return self._shown(self._pieces(self.lines.feed(text) + self.lines.release()))
        if self.decoder is not None:
            return self._text(self.decoder.decode(b"", final=True))
        return self._release_row()

    def _release_row(self) -> list[Output]:
        held, self.held = self.held, b""
        return self._bytes(held, self.offset - len(held))

    def count_unshown(self, size: int) -> None:
        """Count `size` bytes without showing them: offsets stay true to the stream."""
        self.offset += size

    def restart(self) -> None:
        """After a pause: a character or frame cut by the pause is not pieced together."""
        self.decoder = self._decoder(self.view) if self.view.mode in ("text", "json") else None
        self.held = b""
        self.framer = Framer(self.view.framing)
        self.mid_line = False
        self.lines = self._lines(self.view)

    def _text(self, decoded: SafeText) -> list[Output]:
        return self._shown(styled(decoded) if self.styles else StyledText(decoded.text))

    def _pieces(self, pieces: list[Piece]) -> StyledText:
        text = pieces_text(pieces, self.styles)
        if self.mid_line and pieces and isinstance(pieces[0], StyledText):
            # A document starts at column 0, even after a line another view left open.
            text = StyledText("\n") + text
        return text

    def _shown(self, text: StyledText) -> list[Output]:
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
        block = hexdump_text(data, start, styles=self.styles)
        if self.mid_line:
            # The hexdump must start at column 0 even after a text line left open.
            block = StyledText("\n") + block
            self.mid_line = False
        return [Output("data", block)]

    def switch(self, view: View) -> list[Output]:
        """Change view; bytes held back for an incomplete character carry over."""
        shown = self._release_row()  # a hex row that came in the old view is shown in it
        if self.lines is not None:  # and a line that may be a document
            shown += self._shown(self._pieces(self.lines.release()))
        old = self.decoder
        pending = old.pending() if old else b""
        if old is not None:
            self.after_cr = old.after_cr
        self.view = view
        if view.framing != self.framer.framing:
            self.framer = Framer(view.framing)
        self.lines = self._lines(view)
        if self.lines is not None:
            self.decoder = self._decoder(view, self.after_cr)
            text = self.decoder.decode_unescaped(pending)
            return shown + self._shown(self._pieces(self.lines.feed(text)))
        if view.mode == "text":
            self.decoder = self._decoder(view, self.after_cr)
            return shown + self._text(self.decoder.decode(pending))
        self.decoder = None
        return shown + self._bytes(pending, self.offset - len(pending))

    def end_line(self) -> list[Output]:
        """End a text line left open, so what follows starts at column 0."""
        if not self.mid_line:
            return []
        self.mid_line = False
        return [Output("data", StyledText("\n"))]


class Renderer:
    """Turns events into outputs. One instance per session, used by the display thread only."""

    def __init__(self, view: View, *, styles: bool = True) -> None:
        self.view = view
        self.styles = styles
        """False when the output is plain text (batch mode to a file or pipe): the colours of
        escapes and offsets are not worked out at all."""
        self.stats = TrafficStats()
        self._received: dict[int, _ReceivedStream] = {}
        self._sent_offsets: dict[int, int] = {}
        self._peers: dict[int, _Peer] = {}
        self._accepted_streams = 0
        self._last_source: int | None = None
        """The connection whose data was shown last: a change of source gets a label."""
        self._last_block_at: float | None = None
        self._paused_at: float | None = None
        self._hidden = _Unshown()
        """What arrived while paused: said on /resume."""
        self._skipped = _Unshown()
        """What the display skipped to keep up, not yet said."""
        self._skipped_since = 0.0
        self._skipped_grew = False
        self.latest_at = 0.0
        """The time of the newest data event rendered: a replay's clock."""

    def render(self, event: Event) -> list[Output]:
        match event:
            case Received() | Sent() | Connected() | Closed():
                self.stats.observe(event)
        if isinstance(event, (Received, Sent)):
            self.latest_at = max(self.latest_at, event.at)
        if isinstance(event, Skipped):
            return self._skipped_by_display(event)
        if isinstance(event, Received | ViewChanged | PauseChanged | ClearRequested):
            return self._render(event)
        # Anything else is shown below what arrived before it: a hex row still waiting for
        # the rest of its 16 bytes goes first (an echo typed right after a reply).
        return self._release_rows() + self._render(event)

    def _release_rows(self) -> list[Output]:
        outputs: list[Output] = []
        for conn, stream in list(self._received.items()):
            if stream.held:
                outputs += self._from(conn, stream.release())
        return outputs

    def finish(self) -> list[Output]:
        """The display is stopping: what is still held, and a last line about skipped data."""
        outputs = self._release_rows()
        if self._skipped.reads:
            self._skipped_grew = False  # said now, however recent the last skip
            outputs += self._said_skipped(float("inf"))
        return outputs

    def _render(self, event: Event) -> list[Output]:
        match event:
            case Received(conn, data, datagram, at, message):
                if self._paused_at is not None:
                    return self._hide(conn, data)
                if message:
                    return self._message(event)
                if datagram:
                    return self._datagram(conn, data, at)
                stream = self._stream(conn)
                return self._frames(conn, stream, stream.framer.feed(data, at))
            case Sent(conn, data, as_hex, echo, at) if data or not event.message:
                offset = self._sent_offsets.get(conn, 0)
                self._sent_offsets[conn] = offset + len(data)
                if event.message:
                    offset = 0  # a message is a whole of its own, like a datagram
                if self._paused_at is not None:
                    self._hidden.sent += len(data)
                    return []
                return self._frames_before_a_send() + self._sent(
                    conn, data, as_hex, echo, at, offset
                )
            case Connected(conn, peer, local, protocol, accepted):
                self._peers[conn] = _Peer(peer, accepted, protocol, event.flow, event.side)
                self._received[conn] = _ReceivedStream(self.view, self.styles)
                self._sent_offsets[conn] = 0
                if (accepted or event.flow is not None) and not event.datagrams:
                    self._accepted_streams += 1
                if event.flow is not None:
                    return [self._notice(self._leg_text(event), "status")]
                text = self._connected_text(conn, peer, local, event.datagrams, accepted, event.via)
                return [self._notice(text, "status")]
            case Listening(address, protocol, tls, title, upstream):
                kind = title or OLD_TITLES.get(protocol, protocol)
                kind += "+TLS" if tls else ""
                if upstream:
                    text = f"relaying {address} ({kind}) to {upstream}: each client is a flow"
                    return [self._notice(text, "status")]
                return [self._notice(f"listening on {address} ({kind})", "status")]
            case TlsEstablished():
                return [self._notice(self._tls_text(event), "status")]
            case Upgraded(conn, target, subprotocol):
                text = f"upgraded to WebSocket: {target}"
                if subprotocol:
                    text += f", subprotocol {subprotocol}"
                return [self._notice(self._prefixed(conn, text), "status")]
            case Signalled():
                return self._signalled(event)
            case HalfClosed(conn, by_peer):
                who = self._who(conn)
                text = f"sent end of stream to {who}"
                if by_peer:
                    text = f"{who} sent end of stream (half-close): passed on"
                elif conn not in self._peers or self._peers[conn].flow is None:
                    text += ": half-closed, still reading until it closes"
                return [self._notice(text, "status")]
            case Closed(conn, reason, received, sent, failed):
                stream = self._received.get(conn)
                outputs = self._finish(conn, stream) if stream else []
                self._received.pop(conn, None)
                self._sent_offsets.pop(conn, None)
                peer = self._peers.pop(conn, None)
                prefix = f"{self._who_of(conn, peer)} " if peer and peer.accepted else ""
                if peer is not None and peer.flow is not None:
                    prefix = f"{peer.leg} {peer.label} "
                summary = f"{prefix}{reason} ({count(received, 'byte')} received, {sent:,} sent)"
                outputs.append(self._notice(summary, "error" if failed else "status"))
                if self._last_source == conn:
                    self._last_source = None
                return outputs
            case Submitted(prompt, line):
                text = StyledText()
                text.append(prompt, style="netrepl.prompt")
                text.append_text(safe_text(line, "netrepl.echo"))
                return [Output("echo", text)]
            case Noticed(text, level):
                return [self._notice(text, level)]
            case ViewChanged(view):
                return self._switch(view)
            case PauseChanged(paused, at, kept_in):
                return self._pause(paused, at, kept_in)
            case StatsRequested(at):
                return [self._notice(self.stats.report(at), "info")]
            case ClearRequested():
                return [Output("clear")]
            case Progress():
                return self._progress(event)
            case Sent():
                return []  # the end of a message sent in frames: nothing more to show
        raise TypeError(f"not an event: {event!r}")

    def next_due(self, now: float) -> float | None:
        """Seconds until `tick` has something to show by itself (an idle frame's end, a
        row of hex that waited long enough, a line about skipped data), for the display's
        wait; None when nothing is due."""
        waits = [w for s in self._received.values() if (w := s.framer.due(now)) is not None]
        waits += [w for s in self._received.values() if (w := s.held_due(now)) is not None]
        if self._skipped.reads:
            waits.append(0.0 if not self._skipped_grew else FLOOD_REPORT_SECONDS / 4)
        return min(waits) if waits else None

    def tick(self, now: float, *, idle: bool = True) -> list[Output]:
        """Show the frames that ended by silence (idle framing) by `now`, and say what the
        display skipped to keep up, if it did. When `idle` (nothing more is queued), also
        the hex rows that waited long enough for the rest of their row: in a backlog, their
        wait is over by the clock although the rest is right behind them in the queue."""
        outputs: list[Output] = self._said_skipped(now)
        for conn, stream in list(self._received.items()):
            if stream.framer.due(now) == 0:
                outputs += self._frames(conn, stream, stream.framer.flush())
            if idle and stream.held_due(now) == 0:
                outputs += self._from(conn, stream.release())
        return outputs

    # ---- received data

    def _stream(self, conn: int) -> _ReceivedStream:
        stream = self._received.get(conn)
        if stream is None:  # data for a connection announced before this renderer existed
            stream = self._received[conn] = _ReceivedStream(self.view, self.styles)
        return stream

    def _frames(self, conn: int, stream: _ReceivedStream, frames: list[Frame]) -> list[Output]:
        """Received frames: a running stream, or with /time or /frame a block each."""
        outputs: list[Output] = []
        for frame in frames:
            self.stats.received.frames += 1
            if not self.view.blocks:
                outputs += self._from(conn, stream.show(frame.data, at=frame.at))
                continue
            self._last_source = conn
            outputs += self._end_open_lines()
            outputs.append(Output("data", self._header(frame.at, "←", conn, len(frame.data))))
            outputs += stream.show(frame.data, at=frame.at, whole=True)
            if not (stream.decoder and stream.decoder.pending()):
                # A character still incomplete keeps the block open: its last bytes, when
                # they come or when the stream ends, are shown on the same line.
                outputs += stream.end_line()
        return outputs

    def _frames_before_a_send(self) -> list[Output]:
        """The frames being received when a send goes out end there (see
        Framing.ends_at_send): they started before it, so they are shown before it."""
        if not self.view.blocks or not self.view.framing.ends_at_send:
            return []
        outputs: list[Output] = []
        for conn, stream in list(self._received.items()):
            outputs += self._frames(conn, stream, stream.framer.flush())
        return outputs

    def _finish(self, conn: int, stream: _ReceivedStream) -> list[Output]:
        """The stream ended: its last frame, held-back bytes, and an end to its open line."""
        outputs = self._frames(conn, stream, stream.framer.flush())
        outputs += self._from(conn, stream.show(b"", final=True))
        return outputs + stream.end_line()

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

    def _datagram(self, conn: int, data: bytes, at: float, *, what: str = "") -> list[Output]:
        """One datagram (or message: `what` it is), one block: a header line, then its bytes
        decoded on their own."""
        self._last_source = conn
        self.stats.received.frames += 1
        if self.view.mode == "raw":
            return [Output("data", raw=data)]
        outputs = self._end_open_lines()
        header = self._header(at, "←", conn, len(data), always_who=not what, what=what)
        outputs.append(Output("data", header))
        outputs.append(Output("data", self._block_body(data, 0)))
        return outputs

    def _message(self, event: Received) -> list[Output]:
        """A WebSocket message: a block, like a datagram, labelled text or binary. Of one
        larger than --max-message, the first piece is shown and the end is said."""
        conn, data, message = event.conn, event.data, event.message
        if self.view.mode == "raw":
            return [Output("data", raw=data)] if data else []
        if event.offset:
            if event.more:
                return []
            whole = event.offset + len(data)
            text = (
                f"{message} message of {whole:,} bytes in all: only its start is shown"
                " (--max-message); --log keeps it whole"
            )
            return [self._notice(self._prefixed(conn, text), "status")]
        what = f"{message} message"
        if event.more:
            what += " larger than --max-message, its first"
        return self._datagram(conn, data, event.at, what=what)

    def _signalled(self, event: Signalled) -> list[Output]:
        """A pong with its round trip, a ping from the peer; closes are said by `Closed`, and
        our own pings by their pongs."""
        if event.outgoing or event.opcode == "close":
            return []
        payload = (
            f" {quote(event.payload.decode('utf-8', 'surrogateescape'))}" if event.payload else ""
        )
        if event.opcode == "ping":
            text = f"ping{payload} from the peer (answered)"
        elif event.round_trip is not None:
            text = f"pong{payload} in {_milliseconds(event.round_trip)}"
        else:
            text = f"pong{payload} (unsolicited: a heartbeat)"
        return [self._notice(self._prefixed(event.conn, text), "status")]

    def _prefixed(self, conn: int, text: str) -> str:
        """`#2 127.0.0.1:5000 text` for a listener's client; the text alone for a client's
        one peer."""
        peer = self._peers.get(conn)
        return f"{self._who_of(conn, peer)} {text}" if peer is not None and peer.accepted else text

    def _sent(
        self, conn: int, data: bytes, as_hex: bool, echo: bool, at: float, offset: int
    ) -> list[Output]:
        self.stats.sent.frames += 1
        # A relay shows both directions of a conversation, and a line typed into it is a
        # part of it, so it is a block of its own (marked injected) in a running stream too.
        peer = self._peers.get(conn)
        injected = peer is not None and peer.flow is not None
        if (not self.view.blocks and not injected) or self.view.mode == "raw":
            if not (as_hex and echo):
                return []
            return [Output("echo", hexdump_text(data, offset, "netrepl.sent"))]
        outputs = self._end_open_lines()
        outputs.append(Output("data", self._header(at, "→", conn, len(data))))
        if echo:
            body = self._block_body(data, offset, hexdump=as_hex)
            body.stylize("netrepl.sent")
            outputs.append(Output("data", body))
        if not self.view.blocks:
            self._last_source = None  # the stream that goes on below gets its label again
        return outputs

    def _block_body(self, data: bytes, offset: int, *, hexdump: bool = False) -> StyledText:
        """Bytes shown whole on their own: a datagram, or a sent payload (hex sends always
        as a hexdump)."""
        if self.view.mode == "hex" or hexdump:
            return hexdump_text(data, offset) if data else StyledText("")
        if self.view.mode == "json":
            text = TextDecoder(self.view.encoding).decode_unescaped(data, final=True)
            body = pieces_text(JsonLines(styles=self.styles).feed(text, whole=True), self.styles)
            if body.plain and not body.plain.endswith("\n"):
                body.append("\n")
            return body
        decoded = TextDecoder(self.view.encoding).decode(data, final=True)
        body = styled(decoded) if self.styles else StyledText(decoded.text)
        if body.plain and not body.plain.endswith("\n"):
            body.append("\n")
        return body

    def _header(
        self,
        at: float,
        arrow: str,
        conn: int,
        size: int,
        *,
        always_who: bool = False,
        what: str = "",
    ) -> StyledText:
        """`── 14:03:07.250 ← #2 127.0.0.1:5000 · 12 bytes`: time (or the time since the
        previous block), direction, whose (in listen mode), size."""
        parts = ["──"]
        timestamps = self.view.timestamps
        previous = self._last_block_at
        if timestamps == "on":
            parts.append(clock(at))
        elif timestamps == "delta":
            # Never negative: a fixed-length frame that began before the block above it
            # (see Framing.ends_at_send) is shown as following it at once.
            parts.append(f"+{max(0.0, at - previous):.3f}s" if previous is not None else "+0.000s")
        self._last_block_at = at if previous is None else max(at, previous)
        peer = self._peers.get(conn)
        size_text = f"{what}, {count(size, 'byte')}" if what else count(size, "byte")
        if peer is not None and peer.flow is not None:
            # A relay leg: what it received went on to the other side; what was sent on it
            # was typed (what a relay forwards is not posted as sent), so it is injected.
            received = arrow == "←"
            parts.append(peer.direction if received else f"#{peer.flow} netrepl → {peer.side}")
            size_text = "· " + size_text + ("" if received else " injected")
        elif always_who or (peer is not None and peer.accepted):
            parts.append(arrow)
            parts.append(self._who(conn))
            size_text = "· " + size_text
        else:
            parts.append(arrow)
        text = safe_text(" ".join(parts), "netrepl.label")
        text.append(f" {size_text}\n", style="netrepl.label")
        return text

    def _label(self, conn: int) -> StyledText:
        peer = self._peers.get(conn)
        who = peer.direction if peer is not None and peer.flow is not None else self._who(conn)
        text = StyledText("── ", style="netrepl.label")
        text.append_text(safe_text(who, "netrepl.label"))
        text.append("\n", style="netrepl.label")
        return text

    def _end_open_lines(self) -> list[Output]:
        return [out for stream in self._received.values() for out in stream.end_line()]

    def _switch(self, view: View) -> list[Output]:
        outputs: list[Output] = []
        if view.framing != self.view.framing:
            # The frames begun under the old framing end here, shown as they were cut.
            for conn, stream in list(self._received.items()):
                outputs += self._frames(conn, stream, stream.framer.flush())
        self.view = view
        for conn, stream in list(self._received.items()):
            outputs += self._from(conn, stream.switch(view))
        return outputs

    # ---- long sends

    @staticmethod
    def _progress(event: Progress) -> list[Output]:
        rate = format_rate(event.done / event.elapsed) if event.elapsed > 0 else "-"
        amount = count(event.done, "byte")
        if event.total is not None:
            amount += f" of {event.total:,}"
        if event.finished:
            text = f"{event.label}: {event.outcome}, {amount} in {event.elapsed:.1f} s ({rate})"
            if event.detail:
                text += f"; {event.detail}"
            level: Channel = "status" if event.outcome == "sent" and not event.detail else "error"
            return [Output("progress", StyledText()), Renderer._notice(text, level)]
        bar = StyledText()
        bar.append_text(safe_text(f"{event.label} "))
        if event.total is not None:
            width = 30
            filled = width * event.done // event.total if event.total else width
            bar.append("━" * filled, style="netrepl.bar")
            bar.append("━" * (width - filled), style="netrepl.bar.back")
            percent = 100 * event.done // event.total if event.total else 100
            bar.append(f" {percent:3d}%")
        bar.append(f"  {amount}  {rate}  (Ctrl-C stops it)")
        return [Output("progress", bar)]

    # ---- keeping up with a flood

    def _skipped_by_display(self, event: Skipped) -> list[Output]:
        self.stats.received.add(event.size, event.at, chunks=event.reads)
        stream = self._received.get(event.conn)
        if self._paused_at is not None:
            self._hidden.received += event.size
            self._hidden.reads += event.reads
            self._hidden.conns.add(event.conn)
        else:
            if not self._skipped.reads:
                self._skipped_since = event.at
            self._skipped.received += event.size
            self._skipped.reads += event.reads
            self._skipped.conns.add(event.conn)
            self._skipped_grew = True
        if stream is None:
            return []
        # What came before the skip is shown before it (a row of hex need not wait for bytes
        # that will never be shown), and what follows never continues its line.
        outputs = self._from(event.conn, stream.release()) if self._paused_at is None else []
        stream.count_unshown(event.size)
        outputs += stream.end_line() if self._paused_at is None else []
        stream.restart()
        return outputs

    def _said_skipped(self, now: float) -> list[Output]:
        """One line for what was skipped: when the flood eases, and every few seconds while it
        lasts, rather than once per frame."""
        skipped, grew = self._skipped, self._skipped_grew
        self._skipped_grew = False
        if not skipped.reads or (grew and now - self._skipped_since < FLOOD_REPORT_SECONDS):
            return []
        self._skipped = _Unshown()
        text = (
            f"skipped {count(skipped.received, 'byte')} in {count(skipped.reads, 'read')}"
            " to keep up (counted in /stats; --log keeps every byte)"
        )
        return [*self._end_open_lines(), self._notice(text, "status")]

    # ---- pausing

    def _hide(self, conn: int, data: bytes) -> list[Output]:
        self._hidden.add(conn, data)
        stream = self._received.get(conn)
        if stream is not None:
            stream.count_unshown(len(data))
        return []

    def _pause(self, paused: bool, at: float, kept_in: str | None) -> list[Output]:
        if paused:
            if self._paused_at is not None:
                return [self._notice("already paused (/resume shows again)", "error")]
            # What is held back (a frame not yet ended, a character not yet whole) is shown
            # now: after the pause it would no longer be the continuation of anything.
            outputs: list[Output] = []
            for conn, stream in list(self._received.items()):
                outputs += self._frames(conn, stream, stream.framer.flush())
                outputs += self._from(conn, stream.show(b"", final=True))
            outputs += self._end_open_lines()
            self._paused_at, self._hidden = at, _Unshown()
            text = "paused: received data is counted, not shown (/resume)"
            return [*outputs, self._notice(text, "status")]
        if self._paused_at is None:
            return [self._notice("not paused", "error")]
        for stream in self._received.values():
            stream.restart()
        hidden, since = self._hidden, self._paused_at
        self._paused_at = None
        text = (
            f"resumed after {at - since:.1f} s; not shown meanwhile: "
            f"{count(hidden.received, 'byte')} received in {count(hidden.reads, 'read')}"
        )
        if len(hidden.conns) > 1:
            text += f" from {len(hidden.conns)} connections"
        text += f", {count(hidden.sent, 'byte')} sent"
        if kept_in is not None and (hidden.received or hidden.sent):
            text += f" (all of it is in {kept_in})"
        return [self._notice(text, "status")]

    # ---- messages

    def _who(self, conn: int) -> str:
        return self._who_of(conn, self._peers.get(conn))

    @staticmethod
    def _who_of(conn: int, peer: _Peer | None) -> str:
        if peer is None:
            return f"#{conn}"
        if peer.flow is not None:
            return peer.leg
        return f"#{conn} {peer.label}" if peer.accepted else peer.label

    @staticmethod
    def _leg_text(event: Connected) -> str:
        if event.side == "client":
            if event.datagrams:
                return f"#{event.flow} client {event.peer}: datagrams, relayed"
            return f"#{event.flow} client {event.peer} connected"
        source = f" from {event.local}" if event.local else ""
        if event.datagrams:
            return f"#{event.flow} upstream {event.peer}: datagrams{source}, relayed"
        via = f" via {event.via}" if event.via else ""
        return f"#{event.flow} upstream {event.peer}{via} connected{source}: relaying"

    @staticmethod
    def _connected_text(
        conn: int, peer: str, local: str, datagram: bool, accepted: bool, via: str | None = None
    ) -> str:
        if datagram:
            if accepted:
                return f"#{conn} datagrams from {peer}"
            return f"sending datagrams to {peer} from {local}"
        if accepted:
            return f"#{conn} connected from {peer}"
        if via:
            peer = f"{peer} via {via}"
        return f"connected to {peer} from {local}" if local else f"connected to {peer}"

    def _tls_text(self, event: TlsEstablished) -> str:
        peer = self._peers.get(event.conn)
        relayed = peer is not None and peer.flow is not None
        accepted = peer is not None and peer.accepted
        who = f"{self._who_of(event.conn, peer)}: " if accepted or relayed else ""
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


def _milliseconds(seconds: float) -> str:
    """`0.21 ms`, `12.5 ms`, `1,204 ms`: a round trip."""
    ms = seconds * 1000
    return f"{ms:.2f} ms" if ms < 10 else f"{ms:.1f} ms" if ms < 100 else f"{ms:,.0f} ms"
