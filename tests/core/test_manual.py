"""manual: docs/options.md and the man page docs/netrepl.1 are generated from the command-line
declarations and not stale; the man page is valid roff; and the declarations are the single
source: every registered transport kind's and layer's options, and every other option, appear
in --help, docs/options.md, the man page and each shell's completion script."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from netrepl.manual import MAN_COMMAND, OPTIONS_COMMAND, completion_script, man_page
from netrepl.manual import options_markdown as generate_options
from netrepl.options import SHELLS, build_parser, program
from netrepl.transport import registry

ROOT = Path(__file__).resolve().parents[2]


def test_options_doc_is_not_stale():
    on_disk = (ROOT / "docs" / "options.md").read_text(encoding="utf-8")
    assert on_disk == generate_options(), f"docs/options.md is stale: run `{OPTIONS_COMMAND}`"


def test_man_page_is_not_stale():
    on_disk = (ROOT / "docs" / "netrepl.1").read_text(encoding="utf-8")
    assert on_disk == man_page(), f"docs/netrepl.1 is stale: run `{MAN_COMMAND}`"


@pytest.mark.skipif(shutil.which("groff") is None, reason="groff is not installed")
def test_man_page_is_roff_that_groff_reads_without_a_warning():
    result = subprocess.run(
        ["groff", "-man", "-Tutf8", "-ww", "-z"],
        input=man_page().encode(),
        capture_output=True,
        timeout=30,
    )
    assert result.returncode == 0 and result.stderr == b"", result.stderr.decode()


@pytest.mark.skipif(shutil.which("groff") is None, reason="groff is not installed")
def test_man_page_shows_every_option_with_ascii_dashes():
    shown = subprocess.run(
        ["groff", "-man", "-Tutf8"], input=man_page().encode(), capture_output=True, timeout=30
    ).stdout.decode()
    text = re.sub(".\b", "", shown)  # bold is overstrike (X, backspace, X): keep one X
    for option in program().options:
        for flag in option.flags:
            if not option.positional:
                assert flag in text, flag


def registered_flags() -> list[str]:
    """Every flag a transport kind or layer declares (the selector first)."""
    found = registry.registered()
    options = [o for kind in found.kinds for o in kind.options]
    options += [o for layer in found.layers for o in layer.options]
    options += [o for group in found.shared for o in group.options]
    return [flag for option in options for flag in option.flags]


def test_the_registry_has_options_of_its_own():
    assert {"-u", "--unix", "--tls", "--keepalive", "--broadcast", "-l"} <= set(registered_flags())


def written_in(where: str, flag: str) -> str:
    """How `where` writes a flag: fish's completions say `-l view` for --view, `-s l` for -l."""
    if where != "fish":
        return flag
    return f"-l {flag[2:]}" if flag.startswith("--") else f"-s {flag[1:]}"


@pytest.mark.parametrize("where", ["--help", "docs/options.md", "netrepl.1", *SHELLS])
def test_every_declared_option_appears_everywhere(where):
    text = {
        "--help": build_parser().format_help(),
        "docs/options.md": generate_options(),
        "netrepl.1": man_page().replace("\\-", "-"),
    }.get(where) or completion_script(where)
    main = [f for o in program().options if not o.positional for f in o.flags]
    flags = [*registered_flags(), *main]
    if where != "--help":  # the subcommands have a --help of their own
        subs = [o for sub in program().subcommands for o in sub.options if not o.positional]
        flags += [f for o in subs for f in o.flags]
    missing = [flag for flag in flags if written_in(where, flag) not in text]
    assert not missing, f"{where} lacks {missing}"


def test_every_rule_is_in_the_docs():
    doc, man = generate_options(), man_page().replace("\\-", "-").replace("\\e", "\\")
    for check in program().checks:
        assert check.rule in doc and check.name in doc, check.name
        assert check.rule in man, check.name


def test_subcommands_are_in_the_main_usage_and_the_docs():
    usage = build_parser().format_usage()
    for sub in program().subcommands:
        assert f"{sub.prog} {sub.synopsis[0][0]}" in usage
        assert f"## `{sub.prog}`" in generate_options()
        assert f'.SS "{sub.prog}"' in man_page()


def test_the_entry_point_dispatches_the_declared_subcommands():
    from netrepl.cli import SUBCOMMANDS

    assert sorted(SUBCOMMANDS) == sorted(sub.command for sub in program().subcommands)
