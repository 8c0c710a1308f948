"""Script commands: wait (/sleep, /expect), run files (/run), answer automatically (/when),
and record what you type (/record)."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from netrepl.commands.registry import Arguments, Param, command
from netrepl.errors import UsageError
from netrepl.payload import SendContext
from netrepl.quantity import WAIT, looks_like_number
from netrepl.script import run_script
from netrepl.watch import compile_hex_pattern, compile_text_pattern

if TYPE_CHECKING:
    from netrepl.session import Session

EXPECT_TIMEOUT = 5.0


def split_timeout(text: str, what: str) -> tuple[str, float]:
    """`PATTERN [TIMEOUT]`: a last word that is a number is the timeout, in WAIT's range
    (`inf` and `nan` are not numbers here: they are part of the pattern)."""
    words = text.rsplit(None, 1)
    if len(words) == 2 and looks_like_number(words[1]):
        return words[0], WAIT.parse(words[1], f"{what} timeout")
    return text, EXPECT_TIMEOUT


@command(
    "sleep",
    "wait S seconds (in scripts; Ctrl-C stops it)",
    group="Script",
    params=[Param("S")],
    details=f"S is {WAIT.range} seconds, fractions allowed: `/sleep 0.25`.",
)
def _sleep(session: Session, args: Arguments) -> None:
    session.sleep(WAIT.parse(args[0], "/sleep"))


@command(
    "expect",
    "wait until what arrived since the last send matches REGEX (default timeout 5 s)",
    group="Script",
    params=[Param("REGEX", rest=True)],
    details=f"""
`/expect +PONG` or `/expect ^OK\\r\\n 2.5`: a last word that is a number is the timeout in
seconds ({WAIT.range}). The pattern is a Python regular expression matched against the
received bytes (text in the current encoding; `\\xNN` matches a byte); `^` and `$` match at
line starts and ends (before LF or CR LF), and a `$` waits for the line end to arrive. What it
matches is used up, so two `/expect`s in a row wait for two answers. On a timeout a script
stops there, and batch mode exits with status 3, naming the pattern.
""",
)
def _expect(session: Session, args: Arguments) -> None:
    pattern, timeout = split_timeout(args[0], "/expect")
    session.expect(pattern, timeout)


@command(
    "expect-hex",
    "like /expect, for bytes given in hex (?? matches any byte)",
    group="Script",
    params=[Param("HEX", rest=True)],
    details="`/expect-hex 01 03 04 ?? ?? ?? ?? 2` waits 2 s for a Modbus reply of 4 data bytes;"
    f" the timeout is {WAIT.range} seconds, as for /expect.",
)
def _expect_hex(session: Session, args: Arguments) -> None:
    pattern, timeout = split_timeout(args[0], "/expect-hex")
    session.expect(pattern, timeout, hex=True, column=args.column(0))


@command(
    "run",
    "run a script: a file of lines exactly as typed, # for comments",
    group="Script",
    params=[Param("FILE", rest=True)],
    details="""
Each line is handled as if typed: data is sent, commands run, `/expect` waits. The first line
that fails stops the script with its file name and line number. Blank lines send the end of
line, as a blank typed line does. Also `--script FILE` on the command line.
""",
)
def _run(session: Session, args: Arguments) -> None:
    # The first /run of a session with --script is that script (the REPL runs it so).
    run_script(session, args[0], session.take_startup_hold())


@command(
    "when",
    "answer automatically: /when REGEX -> REPLY; alone it lists the rules",
    group="Script",
    setup=True,
    params=[Param("RULE", optional=True, rest=True)],
    details="""
Each time a connection's data matches REGEX, REPLY is sent to that connection, as a typed
line (end of line, escapes, `{placeholders}`). `\\1` .. `\\9` put in what the pattern's groups
matched: `/when ^PING (\\d+) -> PONG \\1`. A rule that fires more than 20 times in a second is
stopped, so two machines cannot answer each other forever. `/unwhen N` removes one. In relay
mode the reply goes to the side whose data matched, and that data is forwarded as usual; to
answer instead of the device, also delete the request: `/rewrite client PATTERN ->`.
""",
)
def _when(session: Session, args: Arguments) -> None:
    if not args:
        rules = session.replies.rules()
        session.note("\n".join(r.describe() for r in rules) if rules else "no /when rules")
        return
    pattern, reply = split_rule(args[0], "/when")
    compiled = compile_text_pattern(pattern, session.settings.view.encoding)
    check_reply(session, compiled, reply, hex=False)
    rule = session.replies.add(compiled, reply, hex=False, shown=pattern)
    session.note(f"rule {rule.number}: when {pattern} -> {reply}")


@command(
    "when-hex",
    "answer automatically in hex: /when-hex HEX -> HEX (?? matches any byte)",
    group="Script",
    setup=True,
    params=[Param("RULE", rest=True)],
    details="""
`/when-hex 01 03 ?? ?? ?? ?? ?? ?? -> 01 03 02 00 2a {crc16-modbus}` answers any Modbus read
from unit 1. The reply is hex, as /x takes it; no end of line is added.
""",
)
def _when_hex(session: Session, args: Arguments) -> None:
    pattern, reply = split_rule(args[0], "/when-hex")
    compiled = compile_hex_pattern(pattern)
    check_reply(session, compiled, reply, hex=True)
    rule = session.replies.add(compiled, reply, hex=True, shown=pattern)
    session.note(f"rule {rule.number}: when-hex {pattern} -> {reply}")


def check_reply(session: Session, pattern: re.Pattern[bytes], reply: str, *, hex: bool) -> None:
    """A mistake in a reply is told now, not each time the rule fires: build it once with
    stand-in groups (and files read as empty)."""
    groups = pattern.groups
    for found in re.finditer(r"\\([1-9])", reply):
        if int(found.group(1)) > groups:
            raise UsageError(f"reply uses \\{found.group(1)}, but the pattern has {groups} groups")
    example = re.sub(r"\\[1-9]", "00" if hex else "x", reply)
    session.reply_payload(example, hex, SendContext(read_file=lambda path: b""))


def split_rule(text: str, name: str, result: str = "REPLY") -> tuple[str, str]:
    """`PATTERN -> RESULT` (a /when's reply, a /rewrite's replacement): both, stripped."""
    pattern, arrow, reply = text.partition(" -> ")
    if not arrow or not pattern.strip():
        raise UsageError(f"{name}: write PATTERN -> {result}")
    return pattern.strip(), reply.strip()


@command(
    "unwhen",
    "remove the /when rule N, or all",
    group="Script",
    setup=True,
    params=[Param("N", suggestions=lambda s: ["all", *(str(r.number) for r in s.replies.rules())])],
)
def _unwhen(session: Session, args: Arguments) -> None:
    removed = session.replies.remove(args[0])
    session.note(f"removed {', '.join(f'rule {r.number}' for r in removed) or 'no rules'}")


@command(
    "record",
    "write what you type from now on to FILE, a script for /run; /record off stops",
    group="Script",
    setup=True,
    params=[Param("FILE", optional=True, rest=True)],
)
def _record(session: Session, args: Arguments) -> None:
    if not args:
        recording = session.files.recording
        session.note(f"recording to {recording.path}" if recording else "not recording")
    elif args[0] == "off":
        stopped = session.files.stop_recording()
        session.note(f"stopped recording to {stopped}" if stopped else "was not recording")
    else:
        session.files.start_recording(args[0])
        session.note(f"recording what you type to {args[0]} (/record off stops)")
