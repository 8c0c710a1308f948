"""The relay's commands: /flows, and holding, forwarding, dropping and rewriting what the
two sides of a flow send each other (-l PORT --relay HOST:PORT)."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from netrepl.commands.registry import Arguments, Param, command
from netrepl.commands.script import check_reply, split_rule
from netrepl.errors import UsageError
from netrepl.events import SIDES, Side
from netrepl.payload import SendContext, build_payload
from netrepl.traffic import count, format_age
from netrepl.watch import compile_hex_pattern, compile_text_pattern, expand_reply

if TYPE_CHECKING:
    from netrepl.interception import Replacement
    from netrepl.session import Session

HOLDS: dict[str, tuple[Side, ...]] = {
    "client": ("client",),
    "upstream": ("upstream",),
    "both": ("client", "upstream"),
    "off": (),
}


def _held_numbers(session: Session) -> list[str]:
    try:
        _, held = session.relay().holding()
    except (UsageError, TimeoutError):
        return []
    return ["all", *(str(frame.number) for frame in held)]


def _rule_numbers(session: Session) -> list[str]:
    try:
        rules = session.relay().rewrites()
    except (UsageError, TimeoutError):
        return []
    return ["all", *(str(rule.number) for rule in rules)]


@command(
    "flows",
    "list a relay's flows: id, client, upstream, age, bytes each way",
    group="Relay",
    setup=True,
)
def _flows(session: Session, args: Arguments) -> None:
    flows = session.flows()
    if not flows:
        session.note("no flows yet")
        return
    lines = [
        f"  {'id':>4}  {'client':<24} {'upstream':<24} {'age':>7}"
        f" {'to upstream':>13} {'to client':>13}"
    ]
    for flow in flows:
        state = f"  {flow.state}" if flow.state != "open" else ""
        if flow.held:
            state += f"  {count(flow.held, 'byte')} held"
        lines.append(
            f"  {'#' + str(flow.flow):>4}  {flow.client:<24} {flow.upstream:<24}"
            f" {format_age(flow.age):>7} {flow.to_upstream:>13,} {flow.to_client:>13,}{state}"
        )
    session.note("\n".join(lines))


@command(
    "hold",
    "hold what a side sends until /forward or /drop: client, upstream, both or off",
    group="Relay",
    setup=True,
    params=[Param("SIDE", suggestions=tuple(HOLDS), optional=True)],
    details="""
`/hold client` keeps every frame the clients send (client → upstream) instead of forwarding
it: each is shown as it arrives and gets a number, and waits for `/forward N` or `/drop N`.
Frames are cut by the current `/frame` mode (`/frame line` holds a line at a time). What
follows a held frame in the same direction waits behind it, so a stream is never reordered;
`/hold off` forwards what is still held, in order. Over 16 MiB held in one direction, netrepl
stops reading that side until some is forwarded or dropped. Alone, it tells what is held.
""",
)
def _hold(session: Session, args: Arguments) -> None:
    from netrepl.interception import direction_name  # a relay's alone: not at every start

    relay = session.relay()
    if not args:
        holding, held = relay.holding()
        sides = " and ".join(holding) if holding else "nothing"
        lines = [f"holding {sides}; {count(len(held), 'frame')} held"]
        lines += [
            f"  {frame.number}: {direction_name(frame.flow, frame.side)},"
            f" {count(len(frame.data), 'byte')}"
            for frame in held
        ]
        session.note("\n".join(lines))
        return
    sides = HOLDS.get(args[0])
    if sides is None:
        raise UsageError(f"/hold: {args[0]!r} is not one of {', '.join(HOLDS)}")
    relay.hold(sides)
    said = " and ".join(f"what the {side} sends" for side in sides) or "nothing any more"
    session.note(f"holding {said}")


@command(
    "forward",
    "send held frames on: N (and those held before it in its direction), all, or the oldest",
    group="Relay",
    setup=True,
    params=[Param("N", suggestions=_held_numbers, optional=True)],
)
def _forward(session: Session, args: Arguments) -> None:
    session.relay().forward_held(args[0] if args else None)


@command(
    "drop",
    "discard held frames: N, all, or the oldest; the other side never sees them",
    group="Relay",
    setup=True,
    params=[Param("N", suggestions=_held_numbers, optional=True)],
)
def _drop(session: Session, args: Arguments) -> None:
    session.relay().drop_held(args[0] if args else None)


def _side(text: str, name: str) -> Side:
    if text not in SIDES:
        raise UsageError(f"{name}: say whose data to change first: client or upstream")
    return text  # type: ignore[return-value]


def _replacement(session: Session, text: str, *, hex: bool) -> Replacement:
    """How one match is replaced: `text` (groups `\\1`..`\\9`, escapes, placeholders, no end
    of line added), built with checksums over the rewritten frame so far."""
    encoding = session.settings.view.encoding

    def replace(match: re.Match[bytes], before: bytes) -> bytes:
        return build_payload(
            expand_reply(text, match, hex=hex),
            input_mode="hex" if hex else "text",
            encoding=encoding,
            escapes=True,
            eol="none",
            context=SendContext(before=before),
        )

    return replace


def _add_rewrite(session: Session, args: Arguments, *, hex: bool) -> None:
    from netrepl.interception import other_side  # a relay's alone: not at every start

    name = "/rewrite-hex" if hex else "/rewrite"
    if len(args) < 2:
        raise UsageError(f"{name}: write {name} client|upstream PATTERN -> REPLACEMENT")
    side = _side(args[0], name)
    typed = args[1] + " " if args[1].endswith(" ->") else args[1]  # `-> ` deletes what matches
    pattern, replacement = split_rule(typed, name, "REPLACEMENT")
    if hex:
        compiled = compile_hex_pattern(pattern)
    else:
        compiled = compile_text_pattern(pattern, session.settings.view.encoding)
    if "{file:" in replacement:
        raise UsageError(f"{name}: {{file:PATH}} is not read for each frame: give the bytes")
    if hex and not replacement:
        raise UsageError(f"{name}: give the replacement bytes in hex")
    if replacement:
        check_reply(session, compiled, replacement, hex=hex)
    rule = session.relay().add_rewrite(
        side,
        compiled,
        _replacement(session, replacement, hex=hex),
        f"{pattern} -> {replacement}".rstrip(),  # `PATTERN ->` deletes: shown as typed
        hex,
    )
    session.note(f"{rule.describe()} (frames of {side} → {other_side(side)})")


@command(
    "rewrite",
    "change what a side sends: /rewrite client|upstream REGEX -> REPLACEMENT; alone it lists",
    group="Relay",
    setup=True,
    params=[
        Param("SIDE", suggestions=SIDES, optional=True),
        Param("RULE", optional=True, rest=True),
    ],
    details="""
`/rewrite client GET /old -> GET /new` changes every frame the clients send (client →
upstream) where REGEX matches, before it is forwarded; `/rewrite upstream` the other way.
Frames are cut by the current `/frame` mode, so a match split across reads is found when
framing by line, length or delimiter. The replacement is a typed line without the end of
line: escapes, `\\1` .. `\\9` for the groups, and `{placeholders}`, a checksum covering the
rewritten frame before it. Rules apply in order; each rewrite is said in a line.
""",
)
def _rewrite(session: Session, args: Arguments) -> None:
    if not args:
        rules = session.relay().rewrites()
        session.note("\n".join(r.describe() for r in rules) if rules else "no /rewrite rules")
        return
    _add_rewrite(session, args, hex=False)


@command(
    "rewrite-hex",
    "change what a side sends, in hex: /rewrite-hex client|upstream HEX -> HEX (?? any byte)",
    group="Relay",
    setup=True,
    params=[Param("SIDE", suggestions=SIDES), Param("RULE", rest=True)],
    details="""
`/rewrite-hex client 01 03 00 00 00 0a ?? ?? -> 01 03 00 00 00 05 {crc16-modbus}` asks a
Modbus RTU device for 5 registers instead of 10, with the checksum computed again.
""",
)
def _rewrite_hex(session: Session, args: Arguments) -> None:
    _add_rewrite(session, args, hex=True)


@command(
    "unrewrite",
    "remove the /rewrite rule N, or all",
    group="Relay",
    setup=True,
    params=[Param("N", suggestions=_rule_numbers)],
)
def _unrewrite(session: Session, args: Arguments) -> None:
    removed = session.relay().remove_rewrites(args[0])
    session.note(f"removed {', '.join(f'rule {r.number}' for r in removed) or 'no rules'}")
