"""Where a send goes (/to): parsing a target as typed and naming one, beside the address
parsing of the transport package. Pure: no socket, no session."""

from __future__ import annotations

from netrepl.codec import quote
from netrepl.errors import UsageError
from netrepl.quantity import looks_like_whole, whole_or_none
from netrepl.transport import FlowSide, Target, format_address, parse_host_port

# Client ids count connections from 1; no session lives to see more than this many.
MAX_CLIENT_ID = 999_999_999


def parse_client_id(text: str, name: str) -> int:
    """`3` or `#3`; `name` (the command) starts the error."""
    number = whole_or_none(text.removeprefix("#"), MAX_CLIENT_ID)
    if number is None:
        raise UsageError(f"{name}: {quote(text)} is not a client id (like 3 or #3; /clients)")
    return number


SIDES = ("client", "upstream")


def parse_target(text: str, side: str | None = None) -> Target:
    """/to's arguments: all, last, N, #N or HOST:PORT; in relay mode a side (client,
    upstream), or a flow and a side (`2 client`, `all upstream`)."""
    if text in SIDES and side is None:
        return FlowSide("newest", text)  # type: ignore[arg-type]
    if side is not None:
        if side not in SIDES:
            raise UsageError(f"/to: {quote(side)} is not a side (client or upstream)")
        if text == "all":
            return FlowSide("all", side)  # type: ignore[arg-type]
        return FlowSide(parse_client_id(text, "/to"), side)  # type: ignore[arg-type]
    if text in ("all", "last"):
        return text  # type: ignore[return-value]
    if looks_like_whole(text.removeprefix("#")):
        return parse_client_id(text, "/to")
    if text.isalpha():  # not an address (that has a port): a misspelt word
        raise UsageError(
            f"/to: {quote(text)} is not a target: all, last, N or HOST:PORT;"
            " in relay mode client, upstream or N client|upstream"
        )
    return parse_host_port(text)


def describe_target(target: Target, *, short: bool = False) -> str:
    """`#2`, `10.0.0.5:502`, `all clients` (`all` when short), `the last sender` (`last`),
    `#2 client`, `the newest flow's upstream` (`upstream`)."""
    if isinstance(target, int):
        return f"#{target}"
    if isinstance(target, tuple):
        return format_address(*target)
    if isinstance(target, FlowSide):
        if target.flow == "newest":
            return target.side if short else f"the newest flow's {target.side}"
        if target.flow == "all":
            return f"all {target.side}" if short else f"every flow's {target.side}"
        return f"#{target.flow} {target.side}"
    if short:
        return target
    return {"all": "all clients", "last": "the last sender"}[target]
