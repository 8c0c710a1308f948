"""Where a send goes (/to): parsing a target as typed and naming one, beside the address
parsing of the transport package. Pure: no socket, no session."""

from __future__ import annotations

from netrepl.codec import quote
from netrepl.errors import UsageError
from netrepl.quantity import looks_like_whole, whole_or_none
from netrepl.transport import Target, format_address, parse_host_port

# Client ids count connections from 1; no session lives to see more than this many.
MAX_CLIENT_ID = 999_999_999


def parse_client_id(text: str, name: str) -> int:
    """`3` or `#3`; `name` (the command) starts the error."""
    number = whole_or_none(text.removeprefix("#"), MAX_CLIENT_ID)
    if number is None:
        raise UsageError(f"{name}: {quote(text)} is not a client id (like 3 or #3; /clients)")
    return number


def parse_target(text: str) -> Target:
    """/to's argument: all, last, N, #N or HOST:PORT."""
    if text in ("all", "last"):
        return text  # type: ignore[return-value]
    if looks_like_whole(text.removeprefix("#")):
        return parse_client_id(text, "/to")
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
