"""The command line as data: options, the named checks between them, and the programs they
make up (`netrepl`, `netrepl replay`, `netrepl export`).

Each option is declared once, where what it configures lives (the transport kinds declare
theirs); from these declarations come the argparse parsers and `--help` (here), and
docs/options.md, the man page and shell completion (`manual.py`). Only the standard library
and errors.py are imported: `--help` and `--completion` must not pay for more.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Iterator, Sequence
from typing import Any, Literal, TypeVar

from netrepl.errors import UsageError
from netrepl.records import record

_T = TypeVar("_T")


@record(unsafe_hash=True)
class Option:
    """One option (`-l`, `--listen`) or positional (`host`), with argparse's own words for
    what it takes."""

    flags: tuple[str, ...]
    """`("-l", "--listen")`; a positional has one word without dashes: `("host",)`."""
    help: str | Callable[[], str]
    """One line for `--help`; a callable when it depends on what is registered (the
    transport kinds)."""
    details: str = ""
    """More, for docs/options.md and the man page only: why, and what to expect."""
    metavar: str | None = None
    action: str | type[argparse.Action] | None = None
    choices: Sequence[str] | None = None
    type: Callable[[str], Any] | None = None
    default: Any = None
    const: Any = None
    nargs: str | None = None
    dest: str | None = None
    required: bool = False
    version: str | None = None
    """What `action="version"` prints."""
    exclusive: str | None = None
    """Options that name the same group here exclude each other (`-4` and `-6`)."""
    completes: Literal["file", "directory"] | None = None
    """What a shell completes for its value."""

    @property
    def text(self) -> str:
        """The help text."""
        return self.help() if callable(self.help) else self.help

    @property
    def positional(self) -> bool:
        return not self.flags[0].startswith("-")

    @property
    def name(self) -> str:
        """The flag people know it by: the long one (`--listen`), or the only one (`-4`)."""
        return self.flags[-1]

    @property
    def key(self) -> str:
        """Its attribute in the parsed namespace."""
        if self.dest is not None:
            return self.dest
        if self.positional:
            return self.flags[0]
        longest = max(self.flags, key=len)
        return longest.lstrip("-").replace("-", "_")

    @property
    def takes_value(self) -> bool:
        return self.action not in _FLAG_ACTIONS

    @property
    def value_name(self) -> str:
        """`PATH`, `S`, `{hex,text}`: what follows the flag in usage and docs."""
        if self.metavar is not None:
            return self.metavar
        if self.choices is not None:
            return "{" + ",".join(self.choices) + "}"
        return self.key.upper()

    @property
    def usage(self) -> str:
        """`-l, --listen`, `--view {hex,text,...}`, `--reconnect [S]`, `HOST`."""
        if self.positional:
            return self.value_name
        flags = ", ".join(self.flags)
        if not self.takes_value:
            return flags
        value = f"[{self.value_name}]" if self.nargs == "?" else self.value_name
        return f"{flags} {value}"

    def given(self, args: argparse.Namespace) -> bool:
        """Whether the command line set it (a default is not given)."""
        value = getattr(args, self.key, None)
        return value is not None and value is not False and value != self.default

    def add_to(self, container: argparse._ActionsContainer) -> argparse.Action:
        settings: dict[str, Any] = {"help": self.text.replace("%", "%%")}  # argparse formats it
        for name in ("metavar", "action", "type", "const", "nargs", "dest", "version"):
            value = getattr(self, name)
            if value is not None:
                settings[name] = value
        if self.choices is not None:
            settings["choices"] = tuple(self.choices)
        if self.default is not None:
            settings["default"] = self.default
        if self.required:
            settings["required"] = True
        action = container.add_argument(*self.flags, **settings)
        action.completes = self.completes  # type: ignore[attr-defined]  # for manual.py
        return action


_FLAG_ACTIONS = ("store_true", "store_false", "store_const", "count", "help", "version")


def option(*flags: str, help: str | Callable[[], str], **settings: Any) -> Option:
    """An `Option`, written as argparse's `add_argument` is."""
    return Option(tuple(flags), help, **settings)


@record(unsafe_hash=True)
class Group:
    """Options shown together under a title in `--help`, docs/options.md and the man page."""

    title: str
    options: tuple[Option, ...]


Stage = Literal["together", "complete"]


@record(unsafe_hash=True)
class Check:
    """A named check of the parsed options, declared with the options it concerns.

    `run` raises UsageError with one line naming the flag at fault. Checks of the stage
    `together` (options that do not go together) all run before those of `complete` (what a
    valid combination still lacks), so a missing `--cert` is never reported for a command
    line whose real mistake is `-u --tls`.
    """

    run: Callable[[argparse.Namespace], None]
    concerns: tuple[str, ...] | Callable[[], tuple[str, ...]]
    """The flags (and positionals) it reads; a callable when they depend on what is
    registered (the transport kinds' selectors)."""
    stage: Stage = "together"

    @property
    def concerned(self) -> tuple[str, ...]:
        return self.concerns() if callable(self.concerns) else self.concerns

    @property
    def name(self) -> str:
        return self.run.__name__.lstrip("_")

    @property
    def rule(self) -> str:
        """The rule it enforces, in one line (the first paragraph of its docstring)."""
        paragraph = (self.run.__doc__ or self.name).strip().split("\n\n")[0]
        return " ".join(line.strip() for line in paragraph.splitlines())


@record(unsafe_hash=True)
class Program:
    """A command line: `netrepl`, or a subcommand (`netrepl replay`)."""

    prog: str
    summary: str
    """One line: the man page's NAME, the subcommand's line in the main usage."""
    description: str
    groups: tuple[Group, ...]
    synopsis: tuple[tuple[str, str], ...] = ()
    """(form, what it does) lines for the usage; empty: argparse writes the usage."""
    epilog: str = ""
    checks: tuple[Check, ...] = ()
    subcommands: tuple[Program, ...] = ()

    @property
    def command(self) -> str:
        """`replay` for `netrepl replay`: what the first word of the command line is."""
        return self.prog.rpartition(" ")[2]

    @property
    def options(self) -> Iterator[Option]:
        for group in self.groups:
            yield from group.options

    def usage(self) -> str | None:
        """The synopsis lines, aligned, each form after `netrepl` (argparse adds `usage: `)."""
        if not any(what for _, what in self.synopsis):
            return None  # argparse's own usage, from the options
        forms = [(f"{self.prog} {form}".rstrip(), what) for form, what in self.synopsis]
        forms += [(f"{sub.prog} {sub.synopsis[0][0]}", sub.summary) for sub in self.subcommands]
        width = max(len(form) for form, _ in forms) + 2
        lines = [f"{form:<{width}}{what}" for form, what in forms]
        # argparse puts "usage: " before the first line only: indent the others under it.
        return "\n".join([lines[0], *(" " * len("usage: ") + line for line in lines[1:])])

    def parser(self) -> argparse.ArgumentParser:
        """The argparse parser; its errors raise UsageError instead of exiting."""
        parser = _Parser(
            prog=self.prog,
            usage=self.usage(),
            description=self.description,
            epilog=self.epilog or None,
            formatter_class=_Formatter,
            add_help=False,  # -h is declared like any other option
        )
        exclusive: dict[str, argparse._MutuallyExclusiveGroup] = {}
        for group in self.groups:
            container = parser.add_argument_group(group.title) if group.title else parser
            for declared in group.options:
                target: argparse._ActionsContainer = container
                if declared.exclusive is not None:
                    if declared.exclusive not in exclusive:
                        exclusive[declared.exclusive] = container.add_mutually_exclusive_group()
                    target = exclusive[declared.exclusive]
                declared.add_to(target)
        return parser

    def check(self, args: argparse.Namespace, stage: Stage) -> None:
        """Run the checks of `stage`, in the order declared. Raises UsageError."""
        for declared in self.ordered_checks():
            if declared.stage == stage:
                declared.run(args)

    def ordered_checks(self) -> list[Check]:
        """The checks in the order they run: every `together` one, then every `complete`."""
        return sorted(self.checks, key=lambda declared: declared.stage != "together")

    def with_optional_values(self, argv: Sequence[str]) -> list[str]:
        """An option whose value is optional takes the next word only when it is a number:
        `--reconnect HOST PORT` means the default delay, not a delay named HOST (argparse
        would take any next word), so such an option gets its default written out."""
        optional = {flag: o for o in self.options if o.nargs == "?" for flag in o.flags}
        words = list(argv)
        for index, word in enumerate(words):
            if word == "--":
                break
            declared = optional.get(word)
            if declared is not None:
                following = words[index + 1] if index + 1 < len(words) else ""
                try:
                    float(following)
                except ValueError:
                    words[index] = f"{word}={declared.const}"
        return words


def typed(parse: Callable[[str], _T]) -> Callable[[str], _T]:
    """An argparse type from a parse that raises UsageError (a quantity's): its one-line
    error, said by argparse as the option's."""

    def convert(text: str) -> _T:
        try:
            return parse(text)
        except UsageError as error:
            raise argparse.ArgumentTypeError(str(error)) from None

    return convert


class _Formatter(argparse.HelpFormatter):
    """Wraps a one-paragraph description; keeps text laid out in lines (the examples) as is."""

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        if "\n" in text:
            return "".join(indent + line for line in text.splitlines(keepends=True))
        return super()._fill_text(text, width, indent)


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(message)


def check(
    *concerns: str | Callable[[], tuple[str, ...]], stage: Stage = "together"
) -> Callable[[Callable[[argparse.Namespace], None]], Check]:
    """Declare a function as a named check of the options it concerns (flags, or one
    callable that lists them)."""

    def declare(run: Callable[[argparse.Namespace], None]) -> Check:
        if len(concerns) == 1 and callable(concerns[0]):
            return Check(run, concerns[0], stage)
        return Check(run, tuple(str(flag) for flag in concerns), stage)

    return declare
