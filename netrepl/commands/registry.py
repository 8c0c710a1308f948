"""The one registry of slash commands: name, arguments, help and handler, declared once.

`/help`, tab completion, argument errors and docs/commands.md are all generated from it;
adding a command is one `@command` entry in the module of its group (`view`, `send`,
`connection`, `script`, `log`, `general`), whose import declares it. Nothing here imports
those groups (importing `netrepl.commands` does) or acts on a session.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

from netrepl.errors import UsageError
from netrepl.records import field, record

if TYPE_CHECKING:
    from netrepl.session import Session

GROUPS = ("View", "Send", "Relay", "Connection", "Script", "Log", "Session")


@record(unsafe_hash=True)
class Param:
    """One parameter of a slash command: how it parses and what completion offers."""

    name: str
    choices: tuple[str, ...] = ()
    """When set, the only accepted values (completion offers them)."""
    suggestions: tuple[str, ...] | Callable[[Session], Iterable[str]] = ()
    """Values completion offers without restricting what is accepted (may depend on the
    session: the ids of connected clients, say)."""
    optional: bool = False
    rest: bool = False
    """Takes the rest of the line verbatim, spaces included."""
    when: Callable[[str], bool] | None = None
    """For an optional word before others: taken only when it looks like this (a number),
    and words remain for the parameters after it; else it is absent and they get the word."""

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


@record(unsafe_hash=True)
class Arguments:
    """A command's checked argument values, with the column where each began in the line,
    in the order given; `get` finds one by its parameter's name (an optional one may be
    absent from the middle)."""

    values: tuple[str, ...] = ()
    columns: tuple[int, ...] = ()
    names: tuple[str, ...] = ()

    def __getitem__(self, index: int) -> str:
        return self.values[index]

    def __len__(self) -> int:
        return len(self.values)

    def column(self, index: int) -> int:
        return self.columns[index]

    def get(self, name: str) -> str | None:
        """The value of the parameter `name`, or None when it was not given."""
        return self.values[self.names.index(name)] if name in self.names else None


Handler = Callable[["Session", Arguments], None]


@record(unsafe_hash=True)
class Command:
    """One slash command: its name, help, parameters and handler."""

    name: str
    summary: str
    group: str
    run: Handler
    params: tuple[Param, ...] = ()
    aliases: tuple[str, ...] = ()
    details: str = ""
    setup: bool = False
    """A setting or a question: it neither sends nor waits, so a script's opening lines of
    this kind run before /expect and /when look at the first received byte."""

    @property
    def usage(self) -> str:
        return " ".join([f"/{self.name}", *(param.usage for param in self.params)])

    def parse_args(self, text: str, column: int) -> Arguments:
        """Split and check the argument text, which starts at `column` of the typed line."""
        values: list[str] = []
        columns: list[int] = []
        names: list[str] = []
        for index, param in enumerate(self.params):
            stripped = text.lstrip()
            column += len(text) - len(stripped)
            text = stripped
            if not text:
                if not param.optional:
                    raise UsageError(f"/{self.name}: missing {param.name} (usage: {self.usage})")
                break
            if param.rest:
                value, rest = text.rstrip(), ""
            else:
                value, _, rest = text.partition(" ")
            if param.when is not None and not (
                param.when(value)
                and (rest.strip() or all(p.optional for p in self.params[index + 1 :]))
            ):
                continue  # absent: the word is the next parameter's
            if param.choices and value not in param.choices:
                raise UsageError(
                    f"/{self.name}: {value!r} is not one of {', '.join(param.choices)}"
                )
            text = rest
            values.append(value)
            columns.append(column)
            names.append(param.name)
            column += len(value) + 1
        if text.strip():
            raise UsageError(f"/{self.name}: unexpected {text.strip()!r} (usage: {self.usage})")
        return Arguments(tuple(values), tuple(columns), tuple(names))


@record
class Registry:
    """Every slash command by name and alias: /help, completion and dispatch read it."""

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
            import difflib  # only for a mistyped command: not worth importing at start

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

    def is_setup(self, line: str) -> bool:
        """`line` is a known setup command (see Command.setup), not data or an action."""
        if not line.startswith("/") or line.startswith("//"):
            return False
        command = self.get(line[1:].partition(" ")[0])
        return command is not None and command.setup


REGISTRY = Registry()


def command(
    name: str,
    summary: str,
    *,
    group: str,
    params: Iterable[Param] = (),
    aliases: Iterable[str] = (),
    details: str = "",
    setup: bool = False,
) -> Callable[[Handler], Handler]:
    """Declare a slash command: the decorated function is its handler."""

    def declare(run: Handler) -> Handler:
        REGISTRY.add(
            Command(
                name, summary, group, run, tuple(params), tuple(aliases), details.strip(), setup
            )
        )
        return run

    return declare


def show_or_set(
    session: Session, args: Arguments, name: str, current: str, apply: Callable[[str], None]
) -> None:
    """A setting's command: with an argument it sets the setting, without one it tells it."""
    if args:
        apply(args[0])
    else:
        session.note(f"{name} {current}")


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
