"""What starting netrepl imports: --version and --help need neither prompt_toolkit nor rich,
and batch mode never loads prompt_toolkit (scripts start faster, and need no terminal).

`python -X importtime` lists every module a run imports, one per stderr line, whatever the
program prints itself, so the real `python -m netrepl` is measured, not a stand-in.
"""

from __future__ import annotations

import re
import subprocess
import sys

from netrepl import __version__
from tests.net.conftest import run_netrepl

IMPORT_LINE = re.compile(r"import time:\s+\d+ \|\s+\d+ \|(?P<indent>\s*)(?P<module>\S+)\s*$")


def imported(stderr: bytes) -> tuple[set[str], list[str]]:
    """(modules imported, the other stderr lines) of a `-X importtime` run."""
    modules: set[str] = set()
    others: list[str] = []
    for line in stderr.decode().splitlines():
        if line.startswith("import time:"):
            match = IMPORT_LINE.match(line)
            if match:
                modules.add(match["module"])
            else:
                assert "self [us]" in line, f"unexpected importtime line {line!r}"
        else:
            others.append(line)
    return modules, others


def packages(modules: set[str]) -> set[str]:
    return {module.partition(".")[0] for module in modules}


def test_version():
    result = run_netrepl("--version", python_flags=("-X", "importtime"))
    assert result.returncode == 0
    assert result.stdout.decode() == f"netrepl {__version__}\n"
    modules, others = imported(result.stderr)
    assert others == []
    assert "netrepl.cli" in modules, "the import list was not read (format changed?)"
    assert "prompt_toolkit" not in packages(modules)
    assert "rich" not in packages(modules)


def test_help():
    result = run_netrepl("--help", python_flags=("-X", "importtime"))
    assert result.returncode == 0
    help_text = result.stdout.decode()
    assert help_text.startswith("usage: netrepl")
    assert "--demo" in help_text and "--view" in help_text
    modules, others = imported(result.stderr)
    assert others == []
    assert "netrepl.cli" in modules
    assert "prompt_toolkit" not in packages(modules)
    assert "rich" not in packages(modules)


def test_batch_mode_does_not_import_prompt_toolkit(make_peer):
    peer = make_peer(greeting=b"hello\n", close_after_greeting=True)
    result = run_netrepl(*peer.args, "-q", python_flags=("-X", "importtime"), stdin=b"")
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout == b"hello\n"
    modules, others = imported(result.stderr)
    assert others == []
    # The renderer's presence shows the import list is complete.
    assert "netrepl.batch" in modules and "netrepl.render" in modules
    assert "prompt_toolkit" not in packages(modules)
    assert "netrepl.repl" not in modules


# Modules only a relay needs: a plain connection's start (batch or at the prompt) imports none
# of them (issue 14: each is paid at every start).
RELAY_ONLY = {"netrepl.interception", "netrepl.transport.relay", "netrepl.transport.intercepting"}


def test_a_plain_connection_imports_no_relay_machinery(make_peer):
    peer = make_peer(greeting=b"hello\n", close_after_greeting=True)
    result = run_netrepl(*peer.args, "-q", python_flags=("-X", "importtime"), stdin=b"")
    assert result.returncode == 0, result.stderr[-2000:]
    modules, _ = imported(result.stderr)
    assert "netrepl.session" in modules and "netrepl.transport.stream" in modules
    assert modules & RELAY_ONLY == set()


def test_the_interactive_front_end_imports_no_relay_machinery():
    # What the first prompt imports before it connects: the REPL and the parsed options.
    code = (
        "import sys, netrepl.repl; from netrepl.options import parse_options;"
        " parse_options(['127.0.0.1', '9']); print(' '.join(sorted(sys.modules)))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    modules = set(done.stdout.split())
    assert "netrepl.commands.relay" in modules
    assert modules & RELAY_ONLY == set()
