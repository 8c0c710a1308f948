"""`netrepl --completion SHELL`: the real program prints a script that the shell accepts, and
bash's completion function completes options, their choices and the subcommands' options from
it; zsh and fish scripts are checked by their shells where installed. Printing one imports
neither prompt_toolkit nor rich."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from tests.net.conftest import run_netrepl
from tests.net.test_startup import imported, packages

SHELL_CHECK = {"bash": ["bash", "-n"], "zsh": ["zsh", "-n"], "fish": ["fish", "--no-execute"]}


def script(shell: str) -> bytes:
    result = run_netrepl("--completion", shell)
    assert result.returncode == 0, result.stderr
    assert result.stderr == b""
    return result.stdout


@pytest.mark.parametrize("shell", ["bash", "zsh", "fish"])
def test_the_script_is_generated_for_netrepl(shell):
    text = script(shell).decode()
    assert "netrepl" in text and "--view" in text and "replay" in text and "--pcap" in text


@pytest.mark.parametrize("shell", ["bash", "zsh", "fish"])
def test_the_shell_reads_the_script(shell, tmp_path):
    if shutil.which(shell) is None:
        pytest.skip(f"{shell} is not installed")
    path = tmp_path / f"netrepl.{shell}"
    path.write_bytes(script(shell))
    result = subprocess.run(
        [*SHELL_CHECK[shell], str(path)], capture_output=True, timeout=30, check=False
    )
    assert result.returncode == 0, result.stderr.decode()


def complete(words: list[str], tmp_path) -> list[str]:
    """What bash offers for the last of `words` (the cursor at its end), through the function
    the script registers with `complete -F`, as bash calls it on Tab."""
    path = tmp_path / "netrepl.bash"
    path.write_bytes(script("bash"))
    line = " ".join(words)
    program = f"""
source {path}
COMP_WORDS=({" ".join(f"'{word}'" for word in words)})
COMP_CWORD={len(words) - 1}
COMP_LINE='{line}'
COMP_POINT={len(line)}
function=$(complete -p netrepl | sed -E 's/.* -F ([^ ]+) .*/\\1/')
"$function" netrepl '{words[-1]}' '{words[-2]}'
printf '%s\\n' "${{COMPREPLY[@]}}"
"""
    result = subprocess.run(["bash", "-c", program], capture_output=True, timeout=30, check=False)
    assert result.returncode == 0, result.stderr.decode()
    return result.stdout.decode().split()


def test_bash_completes_an_option(tmp_path):
    assert complete(["netrepl", "--vi"], tmp_path) == ["--view"]


def test_bash_completes_a_transport_kinds_option(tmp_path):
    assert complete(["netrepl", "--keep"], tmp_path) == ["--keepalive"]
    assert complete(["netrepl", "-u", "--bro"], tmp_path) == ["--broadcast"]


def test_bash_completes_an_options_choices(tmp_path):
    assert complete(["netrepl", "--view", ""], tmp_path) == [
        "hex",
        "text",
        "utf8",
        "gbk",
        "auto",
        "json",
        "raw",
    ]
    assert complete(["netrepl", "--completion", "f"], tmp_path) == ["fish"]


def test_bash_completes_the_subcommands_and_their_options(tmp_path):
    assert complete(["netrepl", "rep"], tmp_path) == ["replay"]
    assert complete(["netrepl", "replay", "s.jsonl", "--sp"], tmp_path) == ["--speed"]
    assert complete(["netrepl", "export", "s.jsonl", "--pc"], tmp_path) == ["--pcap"]


def test_printing_a_script_imports_neither_prompt_toolkit_nor_rich():
    result = run_netrepl("--completion", "bash", python_flags=("-X", "importtime"))
    assert result.returncode == 0
    modules, others = imported(result.stderr)
    assert others == []
    assert "shtab" in modules, "the import list was not read (format changed?)"
    assert "prompt_toolkit" not in packages(modules)
    assert "rich" not in packages(modules)


@pytest.mark.parametrize("args", [["--completion", "tcsh"], ["--completion"]])
def test_an_unknown_or_missing_shell_is_a_usage_error(args):
    result = run_netrepl(*args)
    assert result.returncode == 2
    lines = result.stderr.decode().splitlines()
    assert len(lines) == 1 and lines[0].startswith("netrepl: ") and "--completion" in lines[0]
