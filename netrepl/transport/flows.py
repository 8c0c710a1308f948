"""What every relay means by `/to` (stream or datagram alike): which flows and which side a
target names, the target a leg's automatic reply goes to, and when a chosen flow has left.

Pure rules over flow numbers: no socket, no thread, no state. Each relay keeps its own flows
and legs and asks here what a target means, so `/to 2 client` reads the same whatever carries
the flow.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Protocol, TypeVar

from netrepl.errors import SendError, UsageError
from netrepl.events import Side
from netrepl.transport import FlowSide, Target

TO_HELP = "/to client, /to upstream, or /to N [client|upstream] (/flows lists them)"


class Numbered(Protocol):
    @property
    def id(self) -> int:
        """The flow's number (#1, #2), as the user sees it."""


FlowT = TypeVar("FlowT", bound=Numbered)


def default_flow_target() -> Target:
    """Typed data goes to the newest flow's upstream: the client is what is being watched."""
    return FlowSide("newest", "upstream")


def flow_number(target: Target) -> int | str | None:
    """The flow `target` names: a number, `newest` or `all`; None for a target that names
    no flow (`last`, an address)."""
    if isinstance(target, FlowSide):
        return target.flow
    if isinstance(target, int) or target == "all":
        return target
    return None


def check_flow_target(target: Target, open_flows: Collection[int]) -> None:
    """Raise UsageError for a /to target a relay cannot send to: an address, `last`, or a
    flow that is not open."""
    if isinstance(target, tuple) or target == "last":
        raise UsageError(f"/to: a relay sends to a side of a flow: {TO_HELP}")
    number = flow_number(target)
    if isinstance(number, int) and number not in open_flows:
        raise UsageError(f"/to: no flow #{number} (/flows lists them)")


def chosen_flows(
    target: Target, flows: Sequence[FlowT], nothing_yet: str
) -> list[tuple[FlowT, Side]]:
    """The open `flows` (oldest first) that `target` names, each with the side to send on: a
    bare number or `all` means the upstream. Raises SendError when there is none
    (`nothing_yet` says what the relay waits for), UsageError for a target of no flow."""
    if isinstance(target, int):
        target = FlowSide(target, "upstream")
    elif target == "all":
        target = FlowSide("all", "upstream")
    if not isinstance(target, FlowSide):
        raise UsageError(f"/to: a relay sends to a side of a flow: {TO_HELP}")
    if not flows:
        raise SendError(f"no flow yet ({nothing_yet})")
    chosen = list(flows)
    if target.flow == "newest":
        chosen = chosen[-1:]
    elif target.flow != "all":
        chosen = [flow for flow in chosen if flow.id == target.flow]
        if not chosen:
            raise SendError(f"no flow #{target.flow} (/flows lists them)")
    return [(flow, target.side) for flow in chosen]


def leg_reply_target(flow: int | None, side: Side | None, conn: int) -> Target:
    """Where an automatic reply to what leg `conn` (of `flow`, on `side`) sent goes: back to
    that side of that flow; a connection of no flow is answered as itself."""
    if flow is None or side is None:
        return conn
    return FlowSide(flow, side)


def flow_has_left(target: Target, flow: int | None, side: Side | None) -> bool:
    """A leg of `flow` on `side` has closed: has the flow `target` chose by number ended?
    A flow ends with its client; `newest` and `all` never leave."""
    return flow is not None and side == "client" and flow_number(target) == flow
