"""General commands: help, statistics, clearing the screen, and leaving."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from netrepl.commands.registry import REGISTRY, Arguments, Param, command, help_text
from netrepl.events import ClearRequested, StatsRequested

if TYPE_CHECKING:
    from netrepl.session import Session


@command(
    "help",
    "list the commands, or explain one",
    group="Session",
    setup=True,
    params=[Param("COMMAND", suggestions=lambda _: sorted(REGISTRY.commands), optional=True)],
)
def _help(session: Session, args: Arguments) -> None:
    session.note(help_text(args[0].lstrip("/")) if args else help_text())


@command("quit", "close the connection and leave (also Ctrl-D)", group="Session", aliases=["exit"])
def _quit(session: Session, args: Arguments) -> None:
    session.request_quit()


@command(
    "stats",
    "bytes, reads and frames each way, rates, and how long each connection is up",
    group="Session",
    setup=True,
)
def _stats(session: Session, args: Arguments) -> None:
    session.post(StatsRequested(time.time()))


@command(
    "clear",
    "clear the screen",
    group="Session",
    setup=True,
    details="""
Ctrl-L at the prompt does the same. The prompt is drawn again at the top; received data is
still counted and logged.
""",
)
def _clear(session: Session, args: Arguments) -> None:
    session.post(ClearRequested())
