"""General commands: help and leaving."""

from __future__ import annotations

from typing import TYPE_CHECKING

from netrepl.commands import REGISTRY, Arguments, Param, command, help_text

if TYPE_CHECKING:
    from netrepl.session import Session


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
