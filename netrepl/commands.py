"""The one registry of slash commands: name, arguments, help and handler, declared once.

`/help`, tab completion, argument errors and docs/commands.md are all generated from it;
adding a command is one `@command` entry here. Handlers act only through the Session, so
every command works the same typed at the prompt, piped into batch mode, or run from a script.
Regenerate the reference with `python -m netrepl.commands > docs/commands.md`.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from netrepl.errors import UsageError
from netrepl.payload import EOLS, PLACEHOLDERS, parse_hex_line
from netrepl.transport import Target, format_address, parse_host_port
from netrepl.view import VIEW_NAMES

if TYPE_CHECKING:
    from netrepl.session import Session

GROUPS = ("View", "Send", "Connection", "Session")

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


@dataclass(frozen=True)
class Param:
    name: str
    choices: tuple[str, ...] = ()
    """When set, the only accepted values (completion offers them)."""
    suggestions: tuple[str, ...] | Callable[[Session], Iterable[str]] = ()
    """Values completion offers without restricting what is accepted (may depend on the
    session: the ids of connected clients, say)."""
    optional: bool = False
    rest: bool = False
    """Takes the rest of the line verbatim, spaces included."""

    @property
    def usage(self) -> str:
        shown = "|".join(self.choices) if self.choices else self.name
        if self.rest:
            shown += "..."
        return f"[{shown}]" if self.optional else shown

    def completions(self, session: Session) -> tuple[str, ...]:
        if self.choices:
            return self.choices
        suggestions = self.suggestions
        return tuple(suggestions(session) if callable(suggestions) else suggestions)


@dataclass(frozen=True)
class Arguments:
    """A command's checked argument values, with the column where each began in the line."""

    values: tuple[str, ...] = ()
    columns: tuple[int, ...] = ()

    def __getitem__(self, index: int) -> str:
        return self.values[index]

    def __len__(self) -> int:
        return len(self.values)

    def column(self, index: int) -> int:
        return self.columns[index]


Handler = Callable[["Session", Arguments], None]


@dataclass(frozen=True)
class Command:
    name: str
    summary: str
    group: str
    run: Handler
    params: tuple[Param, ...] = ()
    aliases: tuple[str, ...] = ()
    details: str = ""

    @property
    def usage(self) -> str:
        return " ".join([f"/{self.name}", *(param.usage for param in self.params)])

    def parse_args(self, text: str, column: int) -> Arguments:
        """Split and check the argument text, which starts at `column` of the typed line."""
        values: list[str] = []
        columns: list[int] = []
        for param in self.params:
            stripped = text.lstrip()
            column += len(text) - len(stripped)
            text = stripped
            if not text:
                if not param.optional:
                    raise UsageError(f"/{self.name}: missing {param.name} (usage: {self.usage})")
                break
            if param.rest:
                value, text = text.rstrip(), ""
            else:
                value, _, text = text.partition(" ")
            if param.choices and value not in param.choices:
                raise UsageError(
                    f"/{self.name}: {value!r} is not one of {', '.join(param.choices)}"
                )
            values.append(value)
            columns.append(column)
            column += len(value) + 1
        if text.strip():
            raise UsageError(f"/{self.name}: unexpected {text.strip()!r} (usage: {self.usage})")
        return Arguments(tuple(values), tuple(columns))


@dataclass
class Registry:
    commands: dict[str, Command] = field(default_factory=dict)
    _by_alias: dict[str, Command] = field(default_factory=dict)

    def add(self, command: Command) -> None:
        for name in (command.name, *command.aliases):
            if name in self._by_alias:
                raise ValueError(f"command /{name} declared twice")
            self._by_alias[name] = command
        self.commands[command.name] = command

    def find(self, name: str) -> Command:
        try:
            return self._by_alias[name]
        except KeyError:
            close = difflib.get_close_matches(name, self._by_alias, n=1)
            hint = f"; did you mean /{close[0]}?" if close else " (/help lists the commands)"
            raise UsageError(f"unknown command /{name}{hint}") from None

    def get(self, name: str) -> Command | None:
        return self._by_alias.get(name)

    def parse(self, line: str) -> tuple[Command, Arguments]:
        """`/name args...` -> the command and its checked arguments."""
        name, _, rest = line[1:].partition(" ")
        command = self.find(name)
        return command, command.parse_args(rest, column=len(name) + 3)

    def names(self) -> Iterable[str]:
        return self._by_alias.keys()


REGISTRY = Registry()


def command(
    name: str,
    summary: str,
    *,
    group: str,
    params: Iterable[Param] = (),
    aliases: Iterable[str] = (),
    details: str = "",
) -> Callable[[Handler], Handler]:
    """Declare a slash command: the decorated function is its handler."""

    def declare(run: Handler) -> Handler:
        REGISTRY.add(
            Command(name, summary, group, run, tuple(params), tuple(aliases), details.strip())
        )
        return run

    return declare


def _show_or_set(
    session: Session, args: Arguments, name: str, current: str, apply: Callable[[str], None]
) -> None:
    """A setting's command: with an argument it sets the setting, without one it tells it."""
    if args:
        apply(args[0])
    else:
        session.note(f"{name} {current}")


# ---- View --------------------------------------------------------------------------------


def _view_shortcut(name: str, summary: str, details: str = "") -> None:
    def switch(session: Session, args: Arguments) -> None:
        session.set_view_name(name)

    command(name, summary, group="View", details=details)(switch)


_view_shortcut("hex", "show received bytes as a hexdump (hexdump -C layout, stream offsets)")
_view_shortcut("utf8", "show received bytes as UTF-8 text")
_view_shortcut("gbk", "show received bytes as GBK text (and send typed text in GBK)")
_view_shortcut(
    "auto",
    "show UTF-8 where valid, GBK where not, escapes where neither",
    "Decided character by character over the whole stream; typed text is sent as UTF-8.",
)


@command(
    "view",
    "switch view, or show the current one",
    group="View",
    params=[Param("NAME", choices=VIEW_NAMES, optional=True)],
    details="""
`text` shows text in the current encoding; `utf8`, `gbk` and `auto` also set the encoding.
`raw` writes received bytes to stdout unchanged and exists in batch mode only.
The switch applies to bytes that arrive after it; a character split across it is kept whole.
""",
)
def _view(session: Session, args: Arguments) -> None:
    _show_or_set(session, args, "view", session.settings.view.label, session.set_view_name)


@command(
    "encoding",
    "set the text encoding used to show received text and to encode typed text",
    group="View",
    params=[Param("NAME", suggestions=COMMON_ENCODINGS, optional=True)],
    details="Any Python text codec (utf-8, gbk, gb18030, big5, shift_jis, latin-1, ...) or auto.",
)
def _encoding(session: Session, args: Arguments) -> None:
    _show_or_set(session, args, "encoding", session.settings.view.encoding, session.set_encoding)


# ---- Send --------------------------------------------------------------------------------


@command(
    "x",
    "send bytes given in hex, once",
    group="Send",
    params=[Param("HEX", rest=True)],
    details="""
Lenient: `01 03 0a`, `01030A`, `0x01,0x03`, `01:03` and `\\x01\\x03` all work. No end of line
is added. An odd digit count or a non-hex character is an error naming its column, and then
nothing is sent. Placeholders work here too: `/x 01 03 00 00 00 0A {crc16-modbus}` sends a
Modbus RTU request with its CRC (`/placeholders` lists them).
""",
)
def _x(session: Session, args: Arguments) -> None:
    data = parse_hex_line(args[0], session.send_context(), column=args.column(0))
    session.send(data, as_hex=True)


@command(
    "input",
    "make typed lines hex or text, or show which",
    group="Send",
    params=[Param("MODE", choices=("text", "hex"), optional=True)],
    details="In hex input every typed line is parsed like /x and no end of line is added.",
)
def _input(session: Session, args: Arguments) -> None:
    def apply(mode: str) -> None:
        session.settings.input_mode = mode  # type: ignore[assignment]

    _show_or_set(session, args, "input", session.settings.input_mode, apply)


@command(
    "eol",
    "set the end of line appended to typed text, or show it",
    group="Send",
    params=[Param("EOL", choices=tuple(EOLS), optional=True)],
)
def _eol(session: Session, args: Arguments) -> None:
    def apply(eol: str) -> None:
        session.settings.eol = eol

    _show_or_set(session, args, "eol", session.settings.eol, apply)


@command(
    "escapes",
    "interpret \\r \\n \\t \\0 \\\\ \\xNN in typed text, or send backslashes as typed",
    group="Send",
    params=[Param("STATE", choices=("on", "off"), optional=True)],
)
def _escapes(session: Session, args: Arguments) -> None:
    def apply(state: str) -> None:
        session.settings.escapes = state == "on"

    _show_or_set(session, args, "escapes", "on" if session.settings.escapes else "off", apply)


@command(
    "placeholders",
    "list the {placeholders} a typed line or /x can hold (checksums, counter, time, file)",
    group="Send",
    details="""
A placeholder is replaced when the line is sent. A checksum covers the bytes before it on the
line (not the end of line), or a range of them counted from 0: `{crc16-modbus:2-}` skips two
header bytes, `{sum8:1-4}` sums bytes 1 to 4. `\\{` sends a brace itself; with `/escapes off`
nothing is replaced. A wrong placeholder is an error and nothing is sent.

"""
    + "\n".join(f"- `{{{name}}}`: {text}" for name, text in PLACEHOLDERS.items()),
)
def _placeholders(session: Session, args: Arguments) -> None:
    width = max(map(len, PLACEHOLDERS)) + 4
    session.note(
        "\n".join(f"  {{{name}}}".ljust(width) + text for name, text in PLACEHOLDERS.items())
    )


# ---- Connection --------------------------------------------------------------------------


@command(
    "connect",
    "close the current connection and connect to another address",
    group="Connection",
    params=[Param("HOST"), Param("PORT")],
)
def _connect(session: Session, args: Arguments) -> None:
    session.connect(args[0], args[1])


@command("reconnect", "connect again to the last address", group="Connection")
def _reconnect(session: Session, args: Arguments) -> None:
    session.reconnect()


@command(
    "close",
    "close the connection (or stop listening) and stay in netrepl",
    group="Connection",
)
def _close(session: Session, args: Arguments) -> None:
    if session.transport is None or not session.transport.is_open:
        raise UsageError("not connected: nothing to close")
    session.close()


@command(
    "eof",
    "half-close: send end of stream, keep reading what the peer sends",
    group="Connection",
    details="""
Like `nc -N` or `shutdown(SHUT_WR)`: the peer reads end of stream, and netrepl keeps showing
what it sends until it closes. Over TLS a close_notify is sent first. In listen mode it goes
to the current target (/to). The toolbar then shows `half-closed`.
""",
)
def _eof(session: Session, args: Arguments) -> None:
    session.send_eof()


def _target_suggestions(session: Session) -> list[str]:
    return ["all", "last", *(str(peer.conn) for peer in session.peers())]


@command(
    "to",
    "choose where typed data goes in listen mode: all, last, client N or HOST:PORT (UDP)",
    group="Connection",
    params=[Param("TARGET", suggestions=_target_suggestions, optional=True)],
    details="""
`all` (TCP listen default) sends to every connected client; `N` (or `#N`) to one client;
`last` (UDP listen default) replies to whoever sent the last datagram; `HOST:PORT` sends UDP
datagrams to any address. Without an argument it tells the current target.
""",
)
def _to(session: Session, args: Arguments) -> None:
    if not args:
        session.note(f"to {describe_target(session.current_target)}")
        return
    session.set_target(parse_target(args[0]))


@command(
    "clients",
    "list the connected clients (or UDP senders): id, address, time, bytes",
    group="Connection",
    aliases=["peers"],
)
def _clients(session: Session, args: Arguments) -> None:
    peers = session.peers()
    if not peers:
        session.note("no clients" if session.listening else "not connected")
        return
    lines = [f"  {'id':>4}  {'address':<28} {'connected':>10} {'received':>12} {'sent':>12}"]
    for peer in peers:
        age = format_duration(peer.connected_for)
        state = f"  {peer.state}" if peer.state not in ("open", "udp") else ""
        lines.append(
            f"  {'#' + str(peer.conn):>4}  {peer.address:<28} {age:>10}"
            f" {peer.received:>12,} {peer.sent:>12,}{state}"
        )
    session.note("\n".join(lines))


@command(
    "kick",
    "close the connection of client N (listen mode)",
    group="Connection",
    params=[Param("N", suggestions=lambda s: [str(p.conn) for p in s.peers()])],
)
def _kick(session: Session, args: Arguments) -> None:
    session.kick(parse_client_id(args[0], "/kick"))


@command(
    "cert",
    "show the peer's TLS certificate chain (client N in listen mode)",
    group="Connection",
    params=[Param("N", optional=True, suggestions=lambda s: [str(p.conn) for p in s.peers()])],
)
def _cert(session: Session, args: Arguments) -> None:
    conn = parse_client_id(args[0], "/cert") if args else None
    session.show_certificates(conn)


def parse_client_id(text: str, name: str) -> int:
    """`3` or `#3`."""
    digits = text.removeprefix("#")
    if not (digits.isascii() and digits.isdigit()):
        raise UsageError(f"{name}: {text!r} is not a client id (like 3 or #3; /clients)")
    return int(digits)


def parse_target(text: str) -> Target:
    """/to's argument: all, last, N, #N or HOST:PORT."""
    if text in ("all", "last"):
        return text  # type: ignore[return-value]
    digits = text.removeprefix("#")
    if digits.isascii() and digits.isdigit():
        return int(digits)
    return parse_host_port(text)


def describe_target(target: Target, *, short: bool = False) -> str:
    """`#2`, `10.0.0.5:502`, `all clients` (`all` when short), `the last sender` (`last`)."""
    if isinstance(target, int):
        return f"#{target}"
    if isinstance(target, tuple):
        return format_address(*target)
    if short:
        return target
    return {"all": "all clients", "last": "the last sender"}[target]


def format_duration(seconds: float) -> str:
    """`42s`, `3m05s`, `2h01m`."""
    whole = int(seconds)
    if whole < 60:
        return f"{whole}s"
    if whole < 3600:
        return f"{whole // 60}m{whole % 60:02d}s"
    return f"{whole // 3600}h{whole % 3600 // 60:02d}m"


# ---- Session -----------------------------------------------------------------------------


@command(
    "help",
    "list the commands, or explain one",
    group="Session",
    params=[Param("COMMAND", suggestions=lambda _: sorted(REGISTRY.commands), optional=True)],
)
def _help(session: Session, args: Arguments) -> None:
    session.note(help_text(args[0].lstrip("/")) if args else help_text())


@command("quit", "close the connection and leave (also Ctrl-D)", group="Session", aliases=["exit"])
def _quit(session: Session, args: Arguments) -> None:
    session.quit_requested = True


# ---- Generated help and reference -----------------------------------------------------------

_PREAMBLE = (
    "Type text and press Enter to send it (escapes like \\r\\n and \\xNN work; "
    "//text sends /text). Tab completes commands and their arguments."
)


def _by_group() -> Iterable[tuple[str, list[Command]]]:
    for group in GROUPS:
        yield group, [c for c in REGISTRY.commands.values() if c.group == group]


def help_text(name: str | None = None) -> str:
    """What /help prints: all commands by group, or the usage and details of one."""
    if name is not None:
        found = REGISTRY.find(name)
        lines = [f"usage: {found.usage}", found.summary]
        if found.aliases:
            lines.append("also: " + ", ".join(f"/{alias}" for alias in found.aliases))
        if found.details:
            lines.append(found.details.replace("`", ""))
        return "\n".join(lines)
    width = max(len(c.usage) for c in REGISTRY.commands.values()) + 2
    lines = [_PREAMBLE]
    for group, commands in _by_group():
        lines.append(group)
        lines += [f"  {c.usage:<{width}}{c.summary}" for c in commands]
    return "\n".join(lines)


def reference_markdown() -> str:
    """docs/commands.md, generated from the registry."""
    out = [
        "# Command reference",
        "",
        "<!-- Generated by `python -m netrepl.commands > docs/commands.md`; do not edit. -->",
        "",
        _PREAMBLE,
        "",
    ]
    for group, commands in _by_group():
        out += [f"## {group}", ""]
        for c in commands:
            out += [f"### `{c.usage}`", "", c.summary[0].upper() + c.summary[1:] + "."]
            if c.aliases:
                out += ["", "Also: " + ", ".join(f"`/{alias}`" for alias in c.aliases) + "."]
            if c.details:
                out += ["", c.details]
            out.append("")
    return "\n".join(out)


if __name__ == "__main__":
    print(reference_markdown(), end="")
