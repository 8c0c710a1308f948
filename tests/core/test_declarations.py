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


def is_dataclass_decorator(node: ast.expr) -> bool:
    target = node.func if isinstance(node, ast.Call) else node
    name = target.attr if isinstance(target, ast.Attribute) else getattr(target, "id", "")
    return name == "dataclass"


def dataclass_declarations(
    sources: dict[str, str] | None = None,
) -> list[tuple[str, ast.ClassDef, ast.expr]]:
    """(file, class, its dataclass decorator) for every dataclass declared in netrepl (or in
    `sources`: file name -> text)."""
    if sources is None:
        sources = {
            str(path.relative_to(PACKAGE)): path.read_text(encoding="utf-8")
            for path in sorted(PACKAGE.rglob("*.py"))
        }
    found = []
    for path, text in sources.items():
        tree = ast.parse(text, path)
        for node in ast.walk(tree):
            if isinstance(node, ast.ClassDef):
                for decorator in node.decorator_list:
                    if is_dataclass_decorator(decorator):
                        found.append((path, node, decorator))
    return found


def undocumented_dataclasses() -> list[tuple[str, str]]:
    return [
        (path, node.name)
        for path, node, _ in dataclass_declarations()
        if ast.get_docstring(node) is None
    ]


def frozen_dataclasses(sources: dict[str, str] | None = None) -> list[tuple[str, str]]:
    return [
        (path, node.name)
        for path, node, decorator in dataclass_declarations(sources)
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
    missing = undocumented_dataclasses()
    assert missing == [], "dataclasses without a docstring (each costs inspect.signature)"


def test_no_dataclass_is_frozen():
    frozen = frozen_dataclasses()
    assert frozen == [], "frozen=True compiles three more methods per class at import"


def test_the_scan_sees_frozen_dataclasses():
    source = "@dataclass(frozen=True, slots=True)\nclass A:\n    x: int\n"
    assert frozen_dataclasses({"a.py": source}) == [("a.py", "A")]
