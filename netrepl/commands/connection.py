"""Connection commands: connect, close, half-close, and the clients of a listener."""

from __future__ import annotations

from typing import TYPE_CHECKING

from netrepl.commands.registry import Arguments, Param, command
from netrepl.errors import UsageError
from netrepl.quantity import Whole, looks_like_number
from netrepl.traffic import format_age
from netrepl.transport import parse_host
from netrepl.transport.target import SIDES, describe_target, parse_client_id, parse_target

if TYPE_CHECKING:
    from netrepl.session import Session

CLOSE_CODE = Whole(0, 65_535, "a close code")


def _looks_like_a_code(word: str) -> bool:
    """`1000`, and what is meant as a number but is no code (`1e300`, `-1`, `1.5`): the
    latter get the code's error rather than becoming the reason."""
    return looks_like_number(word) or (word[:1] in "-+" and looks_like_number(word[1:]))


@command(
    "connect",
    "close the current connection and connect to another address",
    group="Connection",
    params=[Param("HOST"), Param("PORT", optional=True)],
    details="""
With the current options (TLS, timeouts, a WebSocket's headers). `/connect ws://HOST/PATH`
(or `wss://`) connects to a WebSocket, whatever the current connection is.
""",
)
def _connect(session: Session, args: Arguments) -> None:
    port = args.get("PORT")
    if port is None:
        session.connect_address(args[0])
        return
    session.connect(parse_host(args[0]), port)


@command("reconnect", "connect again to the last address", group="Connection")
def _reconnect(session: Session, args: Arguments) -> None:
    session.reconnect()


@command(
    "close",
    "close the connection (or stop listening) and stay in netrepl",
    group="Connection",
    params=[
        Param("CODE", optional=True, when=_looks_like_a_code),
        Param("REASON", optional=True, rest=True),
    ],
    details="""
On a WebSocket it sends a close frame first, with CODE (default 1000, normal closure) and
REASON, and waits up to 2 s for the peer's; `/close 1008 no token` says why. A listener
sends it to every client. Other transports take no CODE.
""",
)
def _close(session: Session, args: Arguments) -> None:
    if session.transport is None or not session.transport.is_open:
        raise UsageError("not connected: nothing to close")
    code, reason = args.get("CODE"), args.get("REASON")
    if code is None and reason is None:
        session.close()
        return
    number = CLOSE_CODE.parse(code, "/close CODE") if code is not None else 1000
    session.close_with(number, reason or "")


@command(
    "ping",
    "send a WebSocket ping (with DATA); the pong is shown with its round trip",
    group="Connection",
    params=[Param("DATA", optional=True, rest=True)],
    details="""
DATA is text with escapes (`\\x01`), at most 125 bytes. The pong is shown dim with the time
it took; one that does not come within --ping-timeout (20 s) closes the connection. In listen
mode it goes to the current target (/to). `--ping-interval S` pings by itself.
""",
)
def _ping(session: Session, args: Arguments) -> None:
    session.ping(session.control_payload(args.get("DATA") or ""))


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
    return ["all", "last", *SIDES, *(str(peer.conn) for peer in session.peers())]


@command(
    "to",
    "choose where typed data goes in listen mode: all, last, client N or HOST:PORT (UDP);"
    " a relay's client or upstream",
    group="Connection",
    setup=True,
    params=[
        Param("TARGET", suggestions=_target_suggestions, optional=True),
        Param("SIDE", suggestions=SIDES, optional=True),
    ],
    details="""
`all` (TCP listen default) sends to every connected client; `N` (or `#N`) to one client;
`last` (UDP listen default) replies to whoever sent the last datagram; `HOST:PORT` sends UDP
datagrams to any address. In relay mode (`--relay`) typed data goes to the upstream of the
newest flow by default: `/to client` or `/to upstream` picks the side, `/to N` flow N's
upstream, `/to N client` its client, `/to all upstream` every flow's. Without an argument it
tells the current target.
""",
)
def _to(session: Session, args: Arguments) -> None:
    if not args:
        session.note(f"to {describe_target(session.current_target)}")
        return
    session.set_target(parse_target(args[0], args[1] if len(args) > 1 else None))


@command(
    "clients",
    "list the connected clients (or UDP senders): id, address, time, bytes",
    group="Connection",
    setup=True,
    aliases=["peers"],
)
def _clients(session: Session, args: Arguments) -> None:
    peers = session.peers()
    if not peers:
        session.note("no clients" if session.listening else "not connected")
        return
    lines = [f"  {'id':>4}  {'address':<28} {'connected':>10} {'received':>12} {'sent':>12}"]
    for peer in peers:
        age = format_age(peer.connected_for)
        state = f"  {peer.remark}" if peer.remark else ""
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
    setup=True,
    params=[Param("N", optional=True, suggestions=lambda s: [str(p.conn) for p in s.peers()])],
)
def _cert(session: Session, args: Arguments) -> None:
    conn = parse_client_id(args[0], "/cert") if args else None
    session.show_certificates(conn)
