"""The README's promises: the two commands a newcomer runs, and that CI runs the same tests."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _code_lines(markdown: str) -> list[str]:
    blocks = re.findall(r"```\n(.*?)```", markdown, flags=re.DOTALL)
    return [line for block in blocks for line in block.splitlines()]


def test_ci_runs_the_readme_test_command():
    ci = (ROOT / ".ci" / "run").read_text()
    readme_lines = _code_lines((ROOT / "README.md").read_text())
    test_commands = [line for line in readme_lines if "pytest" in line]
    assert len(test_commands) == 1, test_commands
    assert test_commands[0] in ci.splitlines(), "README's test command is not what .ci/run runs"


def test_readme_has_one_command_that_installs_and_starts_the_demo():
    readme_lines = _code_lines((ROOT / "README.md").read_text())
    demo = [line for line in readme_lines if "--demo" in line]
    assert len(demo) == 1, demo
    assert "pip install" in demo[0] and demo[0].startswith("python3 -m venv")


def test_design_doc_names_every_module():
    design = (ROOT / "docs" / "design.md").read_text()
    package = ROOT / "netrepl"
    modules = sorted(p.name for p in package.glob("*.py") if p.name[0] != "_")
    # Modules of the subpackages by their path: `commands/registry.py`, `transport/udp.py`.
    modules += sorted(str(p.relative_to(package)) for p in package.glob("*/*.py"))
    missing = [name for name in modules if f"`{name}`" not in design]
    assert not missing, f"docs/design.md does not describe {missing}"
