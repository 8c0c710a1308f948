"""View commands: how received bytes are shown (hexdump, an encoding, auto)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from netrepl.commands.registry import Arguments, Param, command, show_or_set
from netrepl.errors import UsageError
from netrepl.framing import FRAME_LENGTH, FRAME_MODES, IDLE_MS, parse_framing
from netrepl.jsonview import JSON_MAX_CHARS, JSON_SETTLE_SECONDS
from netrepl.view import VIEW_NAMES

if TYPE_CHECKING:
    from netrepl.session import Session

COMMON_ENCODINGS = (
    "utf-8",
    "gbk",
    "gb18030",
    "big5",
    "shift_jis",
    "euc-jp",
    "euc-kr",
    "latin-1",
    "cp1252",
    "ascii",
    "utf-16-le",
    "utf-16-be",
    "cp437",
    "koi8-r",
    "auto",
)


def _view_shortcut(name: str, summary: str, details: str = "") -> None:
    def switch(session: Session, args: Arguments) -> None:
        session.set_view_name(name)

    command(name, summary, group="View", details=details, setup=True)(switch)


_view_shortcut("hex", "show received bytes as a hexdump (hexdump -C layout, stream offsets)")
_view_shortcut("utf8", "show received bytes as UTF-8 text")
_view_shortcut("gbk", "show received bytes as GBK text (and send typed text in GBK)")
_view_shortcut(
    "auto",
    "show UTF-8 where valid, GBK where not, escapes where neither",
    "Chinese in UTF-8 is always UTF-8; other characters stay in the encoding of the one"
    " before them while they fit (so GBK text stays GBK); typed text is sent as UTF-8.",
)

_view_shortcut(
    "json",
    "show each received line or message that is a JSON object or array indented and coloured",
    "Anything else is shown as the text view shows it, in the current encoding. On a stream"
    " (TCP, TLS, unix) each line is looked at; a datagram, a message or a /frame frame as a"
    " whole. A line that starts with { or [ is held until its end (or a silence of"
    f" {JSON_SETTLE_SECONDS:g} s, when it is shown as a document if it is one); over"
    f" {JSON_MAX_CHARS // 1024} KiB it is shown as text, as it comes.",
)


@command(
    "view",
    "switch view, or show the current one",
    group="View",
    setup=True,
    params=[Param("NAME", choices=VIEW_NAMES, optional=True)],
    details="""
`text` shows text in the current encoding; `utf8`, `gbk` and `auto` also set the encoding;
`json` shows JSON objects and arrays indented, the rest as text, in the current encoding.
`raw` writes received bytes to stdout unchanged and exists in batch mode only.
The switch applies to bytes that arrive after it; a character split across it is kept whole.
""",
)
def _view(session: Session, args: Arguments) -> None:
    show_or_set(session, args, "view", session.settings.view.label, session.set_view_name)


@command(
    "encoding",
    "set the text encoding used to show received text and to encode typed text",
    group="View",
    setup=True,
    params=[Param("NAME", suggestions=COMMON_ENCODINGS, optional=True)],
    details="Any Python text codec (utf-8, gbk, gb18030, big5, shift_jis, latin-1, ...) or auto.",
)
def _encoding(session: Session, args: Arguments) -> None:
    show_or_set(session, args, "encoding", session.settings.view.encoding, session.set_encoding)


@command(
    "time",
    "timestamps on each received and sent block: on (clock), delta (since the previous), off",
    group="View",
    setup=True,
    params=[Param("MODE", choices=("on", "off", "delta"), optional=True)],
    details="""
With timestamps on, every received frame and every send is a block under a header line:
`── 14:03:07.250 ← 12 bytes` (`→` for what you sent; `#N ADDRESS` in listen mode). `delta`
shows the time since the previous block instead: latency at a glance.
""",
)
def _time(session: Session, args: Arguments) -> None:
    def apply(mode: str) -> None:
        session.set_timestamps(mode)  # type: ignore[arg-type]

    show_or_set(session, args, "time", session.settings.view.timestamps, apply)


@command(
    "frame",
    "how received bytes are cut into frames: raw, idle MS, line, len N, delim HEX",
    group="View",
    setup=True,
    params=[Param("MODE", suggestions=FRAME_MODES, optional=True, rest=True)],
    details=f"""
`raw` (the default): each read is shown as it comes. `idle 20`: a frame ends after 20 ms of
silence, as GUI tools split packets ({IDLE_MS.range} ms). `line`: after each newline. `len 8`:
every 8 bytes ({FRAME_LENGTH.range}). `delim 0d 0a`: after each CR LF (any bytes, in hex).
Other than raw, each frame is shown as a block under a header line, in every view.
""",
)
def _frame(session: Session, args: Arguments) -> None:
    if not args:
        session.note(f"frame {session.settings.view.framing.label}")
        return
    try:
        framing = parse_framing(args[0].split())
    except ValueError as error:
        raise UsageError(f"/frame: {error}") from None
    session.set_framing(framing)


@command(
    "pause",
    "stop showing received data; it is still received, counted and logged",
    group="View",
    setup=True,
)
def _pause(session: Session, args: Arguments) -> None:
    session.pause(True)


@command(
    "resume",
    "show received data again, after a summary of what was not shown",
    group="View",
    setup=True,
)
def _resume(session: Session, args: Arguments) -> None:
    session.pause(False)
