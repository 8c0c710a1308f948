"""Declarations that are cheap to import, paid at every start (issue 14: the first prompt and
one-shot pipes). On Python 3.11 each dataclass compiles its generated methods one by one:
- `frozen=True` compiles `__setattr__`, `__delattr__` and `__hash__` besides `__init__`,
  `__repr__` and `__eq__`: ~1.6 M instructions more a class (callgrind; 4.3 M against 2.7 M
  with `unsafe_hash=True`). netrepl's records are never changed once made, by convention;
  `unsafe_hash=True` keeps them hashable as frozen ones were.
- A dataclass without a docstring gets one made by `inspect.signature` on the new class.
"""

from __future__ import annotations

import ast
from pathlib import Path

import netrepl

PACKAGE = Path(netrepl.__file__).parent

# Owned by work in flight elsewhere (issue 14's log part): still frozen and undocumented
# there; the lead drops this exemption when that lands.
NOT_YET = {("transcript.py", "Entry")}


def is_dataclass_decorator(node: ast.expr) -> bool:
    target = node.func if isinstance(node, ast.Call) else node
    name = target.attr if isinstance(target, ast.Attribute) else getattr(target, "id", "")
    return name == "dataclass"


def dataclass_declarations() -> list[tuple[str, ast.ClassDef, ast.expr]]:
    """(file, class, its dataclass decorator) for every dataclass declared in netrepl."""
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.ClassDef):
                for decorator in node.decorator_list:
                    if is_dataclass_decorator(decorator):
                        found.append((str(path.relative_to(PACKAGE)), node, decorator))
    return found


def undocumented_dataclasses() -> list[tuple[str, str]]:
    return [
        (path, node.name)
        for path, node, _ in dataclass_declarations()
        if ast.get_docstring(node) is None
    ]


def frozen_dataclasses() -> list[tuple[str, str]]:
    return [
        (path, node.name)
        for path, node, decorator in dataclass_declarations()
        if isinstance(decorator, ast.Call)
        and any(
            k.arg == "frozen" and isinstance(k.value, ast.Constant) and k.value.value
            for k in decorator.keywords
        )
    ]


def test_the_scan_sees_dataclasses():
    tree = ast.parse((PACKAGE / "events.py").read_text(encoding="utf-8"))
    classes = [n for n in tree.body if isinstance(n, ast.ClassDef)]
    assert sum(any(is_dataclass_decorator(d) for d in c.decorator_list) for c in classes) >= 10


def test_every_dataclass_has_a_docstring():
    missing = [found for found in undocumented_dataclasses() if found not in NOT_YET]
    assert missing == [], "dataclasses without a docstring (each costs inspect.signature)"


def test_no_dataclass_is_frozen():
    frozen = [found for found in frozen_dataclasses() if found not in NOT_YET]
    assert frozen == [], "frozen=True compiles three more methods per class at import"


def test_the_scan_sees_frozen_dataclasses():
    assert ("transcript.py", "Entry") in frozen_dataclasses()  # as it stands, see NOT_YET
