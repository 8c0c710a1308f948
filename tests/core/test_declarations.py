"""Declarations that are cheap to import, paid at every start (issue 14: the first prompt and
one-shot pipes). netrepl declares its records with `netrepl.records`, never `dataclasses`: on
Python 3.11 each dataclass compiles four methods from source at import (~0.6 ms a class), and
the module brings `inspect` (~12 ms). Moving ~80 classes off it took a one-shot pipe from 441 M
to 294 M instructions (callgrind).
"""

from __future__ import annotations

import ast
from pathlib import Path

import netrepl

PACKAGE = Path(netrepl.__file__).parent


def modules_importing(module: str, sources: dict[str, str] | None = None) -> list[str]:
    """The files of netrepl (or of `sources`: file name -> text) that import `module`."""
    if sources is None:
        sources = {
            str(path.relative_to(PACKAGE)): path.read_text(encoding="utf-8")
            for path in sorted(PACKAGE.rglob("*.py"))
        }
    found = []
    for path, text in sources.items():
        for node in ast.walk(ast.parse(text, path)):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                names = [node.module or ""]
            else:
                continue
            if any(name == module or name.startswith(module + ".") for name in names):
                found.append(path)
                break
    return found


def records_declared_in(path: Path) -> int:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    decorators = [
        d for node in tree.body if isinstance(node, ast.ClassDef) for d in node.decorator_list
    ]
    return sum(
        1
        for d in decorators
        if getattr(d.func if isinstance(d, ast.Call) else d, "id", "") == "record"
    )


def test_no_module_of_netrepl_imports_dataclasses():
    assert modules_importing("dataclasses") == []


def test_the_scan_sees_each_way_of_importing():
    sources = {
        "a.py": "from dataclasses import dataclass\n",
        "b.py": "import dataclasses\n",
        "c.py": "def f():\n    from dataclasses import replace\n",
        "d.py": "from netrepl.records import record\nimport dataclasses_json\n",
    }
    assert modules_importing("dataclasses", sources) == ["a.py", "b.py", "c.py"]


def test_the_events_are_records():
    assert records_declared_in(PACKAGE / "events.py") >= 15
