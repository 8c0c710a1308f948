"""cli.py: main() answers --version and --help, and turns a usage error into exit status 2
with one line on stderr."""

from __future__ import annotations

import pytest

from netrepl import __version__
from netrepl.cli import main

# ---- main() -----------------------------------------------------------------------------


def test_main_version(capsys):
    assert main(["--version"]) == 0
    captured = capsys.readouterr()
    assert captured.out == f"netrepl {__version__}\n"
    assert captured.err == ""


def test_main_help_lists_the_examples(capsys):
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: netrepl [options] HOST PORT")
    assert "netrepl -u -l 5000 --view hex" in out


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["--cafile", "x", "h", "1"],
        ["-4", "-6", "h", "1"],
        ["-l", "1", "--max-clients", "0"],
        ["-l", "1", "--reconnect"],
        ["--demo", "-l"],
        ["--view", "nope", "h", "1"],
        ["--bogus"],
        ["h", "0"],
    ],
)
def test_main_usage_error_is_status_2_and_one_stderr_line(argv, capsys):
    assert main(argv) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.splitlines()
    assert len(lines) == 1 and captured.err.endswith("\n")
    assert lines[0].startswith("netrepl: ")
    assert lines[0].endswith("(see netrepl --help)")
