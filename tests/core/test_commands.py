"""commands: the registry is the one source of /help and docs/commands.md (the doc is not stale),
every command is documented and grouped, and parse errors are one-line UsageErrors with hints."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from netrepl.commands import REGISTRY
from netrepl.commands.registry import GROUPS, Command, Param, Registry, help_text
from netrepl.commands.registry import reference_markdown as generate_reference
from netrepl.errors import UsageError
from netrepl.payload import parse_hex

ROOT = Path(__file__).resolve().parents[2]
COMMANDS = sorted(REGISTRY.commands.values(), key=lambda c: c.name)
EXPECTED_NAMES = {
    "hex", "utf8", "gbk", "auto", "json", "view", "encoding", "x", "input", "eol", "escapes",
    "placeholders", "connect", "reconnect", "close", "eof", "to", "clients", "flows", "kick",
    "cert", "ping",
    "help", "quit", "time", "frame", "pause", "resume", "stats", "clear", "log", "capture",
    "save", "sleep", "expect", "expect-hex", "run", "when", "when-hex", "unwhen", "record",
    "sendfile", "every", "stop", "repeat", "p", "hold", "forward", "drop", "rewrite",
    "rewrite-hex", "unrewrite",
}  # fmt: skip


def parse_error(line: str) -> str:
    with pytest.raises(UsageError) as error:
        REGISTRY.parse(line)
    message = str(error.value)
    assert "\n" not in message
    return message


# ---- The generated reference --------------------------------------------------------------


def test_commands_doc_is_not_stale():
    on_disk = (ROOT / "docs" / "commands.md").read_text(encoding="utf-8")
    assert on_disk == generate_reference(), (
        "docs/commands.md is stale: run `python -m netrepl.commands > docs/commands.md`"
    )


def test_the_regeneration_command_prints_the_reference():
    result = subprocess.run(
        [sys.executable, "-m", "netrepl.commands"],
        cwd=ROOT,
        capture_output=True,
        check=True,
        timeout=30,
    )
    assert result.stdout.decode("utf-8") == generate_reference()


def test_reference_has_a_section_per_group_and_a_heading_per_command():
    reference = generate_reference()
    for group in GROUPS:
        assert f"\n## {group}\n" in reference
    for command in COMMANDS:
        assert f"\n### `{command.usage}`\n" in reference
    assert "Also: `/exit`." in reference


# ---- Every command is declared fully ------------------------------------------------------


def test_the_registry_holds_the_known_commands():
    assert set(REGISTRY.commands) == EXPECTED_NAMES


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: c.name)
def test_every_command_has_a_summary_and_a_known_group(command):
    assert command.summary.strip()
    assert command.summary[0].islower() and not command.summary.endswith(".")
    assert "\n" not in command.summary
    assert command.group in GROUPS


@pytest.mark.parametrize("group", GROUPS)
def test_every_group_has_commands(group):
    assert [c for c in COMMANDS if c.group == group]


def test_help_lists_every_command_under_its_group():
    listed = {}
    group = None
    for line in help_text().splitlines()[1:]:
        if line in GROUPS:
            group = line
        else:
            name = line.split()[0].removeprefix("/")
            assert name not in listed, f"/{name} listed twice"
            listed[name] = (group, line.strip())
    assert set(listed) == EXPECTED_NAMES
    for command in COMMANDS:
        group, line = listed[command.name]
        assert group == command.group
        assert line.startswith(command.usage + "  ")
        assert line.endswith(command.summary)


@pytest.mark.parametrize(
    ("name", "first_lines"),
    [
        ("x", ["usage: /x HEX...", "send bytes given in hex, once"]),
        (
            "view",
            [
                "usage: /view [hex|text|utf8|gbk|auto|json|raw]",
                "switch view, or show the current one",
            ],
        ),
        ("connect", ["usage: /connect HOST [PORT]"]),
        ("eol", ["usage: /eol [lf|crlf|cr|none]"]),
        ("exit", ["usage: /quit", "close the connection and leave (also Ctrl-D)", "also: /exit"]),
    ],
)
def test_help_for_one_command_shows_its_usage(name, first_lines):
    lines = help_text(name).splitlines()
    assert lines[: len(first_lines)] == first_lines


def test_help_details_drop_markdown_backticks():
    assert "`" not in help_text("x")
    assert "0x01,0x03" in help_text("x")


def test_help_for_an_unknown_command_is_a_usage_error():
    with pytest.raises(UsageError, match="unknown command /nope"):
        help_text("nope")


# ---- Parsing ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "name", "values"),
    [
        ("/exit", "quit", ()),
        ("/quit", "quit", ()),
        ("/hex", "hex", ()),
        ("/view", "view", ()),
        ("/view gbk", "view", ("gbk",)),
        ("/eol   crlf  ", "eol", ("crlf",)),
        ("/connect example.com 6379", "connect", ("example.com", "6379")),
        ("/encoding gb18030", "encoding", ("gb18030",)),
        ("/encoding anything-goes", "encoding", ("anything-goes",)),
    ],
)
def test_parse_resolves_names_and_aliases(line, name, values):
    command, args = REGISTRY.parse(line)
    assert command.name == name
    assert args.values == values
    assert len(args) == len(values)


@pytest.mark.parametrize(
    ("line", "value"),
    [
        ("/x 01  02   03", "01  02   03"),
        ("/x    de ad\tbe ef   ", "de ad\tbe ef"),
        ("/help x", "x"),
    ],
)
def test_rest_param_keeps_internal_spaces(line, value):
    _, args = REGISTRY.parse(line)
    assert args.values == (value,)


@pytest.mark.parametrize(
    ("line", "columns"),
    [
        ("/connect h 1", (10, 12)),
        ("/connect  host   80", (11, 18)),
        ("/x 01", (4,)),
        ("/x   01", (6,)),
        ("/view hex", (7,)),
    ],
)
def test_argument_columns_point_into_the_typed_line(line, columns):
    _, args = REGISTRY.parse(line)
    assert args.columns == columns
    for index, column in enumerate(columns):
        assert line[column - 1 :].startswith(args[index])
        assert args.column(index) == column


def test_hex_errors_in_x_name_the_column_of_the_typed_line():
    line = "/x  01 0g"
    _, args = REGISTRY.parse(line)
    with pytest.raises(UsageError, match=r"not a hex digit 'g' at column 9$"):
        parse_hex(args[0], column=args.column(0))
    assert line[8] == "g"


@pytest.mark.parametrize(
    ("line", "hint"),
    [
        ("/vew hex", "unknown command /vew; did you mean /view?"),
        ("/conect a 1", "unknown command /conect; did you mean /connect?"),
        ("/exti", "unknown command /exti; did you mean /exit?"),
        ("/hlep", "unknown command /hlep; did you mean /help?"),
        ("/zzzzzz", "unknown command /zzzzzz (/help lists the commands)"),
    ],
)
def test_unknown_command_gives_a_hint(line, hint):
    assert parse_error(line) == hint


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("/view foo", "/view: 'foo' is not one of hex, text, utf8, gbk, auto, json, raw"),
        ("/eol crlf2", "/eol: 'crlf2' is not one of lf, crlf, cr, none"),
        ("/input bin", "/input: 'bin' is not one of text, hex"),
        ("/escapes ON", "/escapes: 'ON' is not one of on, off"),
    ],
)
def test_bad_choice_is_one_line(line, message):
    assert parse_error(line) == message


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("/connect", "/connect: missing HOST (usage: /connect HOST [PORT])"),
        ("/rewrite-hex client", "/rewrite-hex: missing RULE (usage: /rewrite-hex SIDE RULE...)"),
        ("/kick   ", "/kick: missing N (usage: /kick N)"),
        ("/x", "/x: missing HEX (usage: /x HEX...)"),
        ("/x    ", "/x: missing HEX (usage: /x HEX...)"),
    ],
)
def test_missing_argument_is_one_line(line, message):
    assert parse_error(line) == message


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("/eof now", "/eof: unexpected 'now' (usage: /eof)"),
        ("/quit  now please ", "/quit: unexpected 'now please' (usage: /quit)"),
        (
            "/view hex extra",
            "/view: unexpected 'extra' (usage: /view [hex|text|utf8|gbk|auto|json|raw])",
        ),
        ("/connect h 1 2", "/connect: unexpected '2' (usage: /connect HOST [PORT])"),
    ],
)
def test_unexpected_extra_argument_is_one_line(line, message):
    assert parse_error(line) == message


# ---- The registry itself ------------------------------------------------------------------


def _noop(session, args):
    return None


def test_a_name_or_alias_declared_twice_is_refused():
    registry = Registry()
    registry.add(Command("go", "go somewhere", "Session", _noop, aliases=("g",)))
    with pytest.raises(ValueError, match="declared twice"):
        registry.add(Command("g", "another", "Session", _noop))
    assert registry.get("g").name == "go"
    assert registry.get("nope") is None


def test_param_usage_shows_choices_optional_and_rest():
    assert Param("NAME").usage == "NAME"
    assert Param("NAME", optional=True).usage == "[NAME]"
    assert Param("MODE", choices=("a", "b"), optional=True).usage == "[a|b]"
    assert Param("HEX", rest=True).usage == "HEX..."


def test_completions_offer_choices_or_suggestions():
    session = object()  # completions may depend on the session; these do not
    assert Param("M", choices=("a", "b"), suggestions=("z",)).completions(session) == ("a", "b")
    assert Param("E", suggestions=("utf-8", "gbk")).completions(session) == ("utf-8", "gbk")
    seen = []
    param = Param("C", suggestions=lambda s: seen.append(s) or iter(["x", "y"]))
    assert param.completions(session) == ("x", "y")
    assert seen == [session], "suggestions are computed from the session given"
    help_param = REGISTRY.get("help").params[0]
    assert set(help_param.completions(session)) == EXPECTED_NAMES


# ---- An optional word taken only when it looks like it (/repeat COUNT [MS] LINE) -----------


def test_repeat_shows_its_optional_interval_everywhere():
    assert REGISTRY.commands["repeat"].usage == "/repeat COUNT [MS] LINE..."
    assert "  /repeat COUNT [MS] LINE..." in help_text()
    assert help_text("repeat").startswith("usage: /repeat COUNT [MS] LINE...\n")
    assert "### `/repeat COUNT [MS] LINE...`" in generate_reference()


@pytest.mark.parametrize(
    ("line", "values", "names", "columns"),
    [
        ("/repeat 5 200 PING", ("5", "200", "PING"), ("COUNT", "MS", "LINE"), (9, 11, 15)),
        ("/repeat 5 PING", ("5", "PING"), ("COUNT", "LINE"), (9, 11)),
        # A number with nothing after it is the LINE: MS would leave LINE missing.
        ("/repeat 3 42", ("3", "42"), ("COUNT", "LINE"), (9, 11)),
        ("/repeat 3 4x2 y", ("3", "4x2 y"), ("COUNT", "LINE"), (9, 11)),
        ("/repeat 2  10   a b ", ("2", "10", "a b"), ("COUNT", "MS", "LINE"), (9, 12, 17)),
    ],
)
def test_an_optional_word_is_taken_only_when_it_looks_like_it(line, values, names, columns):
    _, args = REGISTRY.parse(line)
    assert (args.values, args.names, args.columns) == (values, names, columns)
    assert args.get("MS") == (values[1] if "MS" in names else None)
    assert args.get("LINE") == values[-1]


def test_an_optional_word_with_a_shape_in_a_registry_of_its_own():
    registry = Registry()
    registry.add(
        Command(
            "go",
            "go",
            "Send",
            lambda session, args: None,
            (Param("N", optional=True, when=str.isdigit), Param("WHAT", optional=True)),
        )
    )
    assert registry.commands["go"].usage == "/go [N] [WHAT]"
    assert registry.parse("/go 3")[1].names == ("N",)  # nothing required after it
    assert registry.parse("/go x")[1].names == ("WHAT",)
    assert registry.parse("/go 3 x")[1].names == ("N", "WHAT")
    assert registry.parse("/go")[1].names == ()
