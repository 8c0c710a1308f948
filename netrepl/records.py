"""Records: classes of named fields, declared as with `dataclasses`, that cost next to nothing
to import.

Why not `dataclasses`: on Python 3.11 each dataclass compiles its `__init__`, `__repr__`,
`__eq__` and `__hash__` from source, one by one, when its module is imported (~0.6 ms a class
on a 2-core machine). netrepl declares ~55 records on its way to the first prompt and ~35 on a
one-shot pipe's, and importing `dataclasses` brings `inspect` (~12 ms): together a sixth of a
one-shot pipe's run (issue 14, docs/performance.md). A record compiles nothing at import:

- equality, hashing and `repr` are shared functions that read the fields with one
  `operator.attrgetter`;
- the first few instances of a record are made by a shared `__init__` that walks its fields;
  a record made more often than that gets its own `__init__`, compiled from source then,
  as fast as a dataclass's. A one-shot pipe compiles none, a flood's events are compiled.

The declarations read as dataclasses do (type checkers see them so too: `dataclass_transform`):
annotated fields, defaults, `field(default=..., default_factory=..., compare=False)`,
inheritance of fields, `__match_args__` for `match`, and `replace`. What is declared in the
class body (`__repr__`, `__eq__`, `__hash__`, `__init__`) is kept.

What this module must never do: grow into `dataclasses`. No `frozen`, ordering, `InitVar`,
`ClassVar`, keyword-only fields or `__post_init__`: a record that needs one is a class.
"""

from __future__ import annotations

from collections.abc import Callable
from operator import attrgetter
from typing import Any, TypeVar, dataclass_transform

RecordType = TypeVar("RecordType", bound=type)

_MISSING: Any = object()


class Field:
    """How one field is declared: its default (or the factory that makes a fresh one for each
    record) and whether it takes part in equality and hashing."""

    __slots__ = ("compare", "default", "default_factory", "name")

    def __init__(self, default: Any, default_factory: Any, compare: bool) -> None:
        self.name = ""
        self.default = default
        self.default_factory = default_factory
        self.compare = compare

    @property
    def required(self) -> bool:
        return self.default is _MISSING and self.default_factory is _MISSING

    def __repr__(self) -> str:
        return f"Field({self.name!r})"


def field(
    *,
    default: Any = _MISSING,
    default_factory: Callable[[], Any] | Any = _MISSING,
    compare: bool = True,
) -> Any:
    """A field's declaration where a bare default does not say enough: a mutable default made
    fresh for each record (`default_factory`), or a field left out of equality and hashing."""
    if default is not _MISSING and default_factory is not _MISSING:
        raise ValueError("a field has a default or a default_factory, not both")
    return Field(default, default_factory, compare)


def _equal(self: Any, other: Any) -> Any:
    if other.__class__ is self.__class__:
        key = self.__record_key__
        return key(self) == key(other)
    return NotImplemented


def _hash(self: Any) -> int:
    return hash(self.__record_key__(self))


def _repr(self: Any) -> str:
    shown = ", ".join(f"{f.name}={getattr(self, f.name)!r}" for f in self.__record_fields__)
    return f"{self.__class__.__qualname__}({shown})"


def _no_fields(_record: Any) -> tuple[()]:
    return ()


def _key_of(names: list[str]) -> Callable[[Any], Any]:
    # attrgetter of one name returns the value itself, not a 1-tuple: either is a fine key.
    return attrgetter(*names) if names else _no_fields


def _init_source(fields: tuple[Field, ...]) -> tuple[str, dict[str, Any]]:
    """The source of a record's `__init__`, and the names it refers to."""
    names: dict[str, Any] = {"_MISSING": _MISSING}
    parameters = []
    body = []
    for spec in fields:
        name = spec.name
        if spec.default_factory is not _MISSING:
            names[f"_factory_{name}"] = spec.default_factory
            parameters.append(f"{name}=_MISSING")
            body.append(f"    self.{name} = _factory_{name}() if {name} is _MISSING else {name}")
            continue
        if spec.default is _MISSING:
            parameters.append(name)
        else:
            names[f"_default_{name}"] = spec.default
            parameters.append(f"{name}=_default_{name}")
        body.append(f"    self.{name} = {name}")
    source = "\n".join([f"def __init__(self, {', '.join(parameters)}):", *body, "    pass"])
    return source, names


def _compiled_init(cls: type) -> Callable[..., None]:
    fields = cls.__dict__["__record_fields__"]
    source, names = _init_source(fields)
    made: dict[str, Any] = {}
    exec(compile(source, f"<record {cls.__qualname__}>", "exec"), names, made)
    init = made["__init__"]
    init.__qualname__ = f"{cls.__qualname__}.__init__"
    return init  # type: ignore[no-any-return]


# A record's first instances are made by `_bind`, which walks its fields; the next one
# compiles the record's own `__init__` (~0.2 ms). A one-shot pipe makes 32 kinds of record,
# most of them once or twice: compiling each at its first instance cost 7 ms of a 60 ms run.
# The events of a flood are made thousands of times, by the compiled one.
COMPILE_AFTER = 8


def _bind(cls: type, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    """Set the fields of `instance` from the arguments, as the compiled `__init__` would."""
    fields = cls.__dict__["__record_fields__"]
    if len(args) > len(fields):
        raise TypeError(
            f"{cls.__qualname__}() takes {len(fields)} arguments but {len(args)} were given"
        )
    for spec, value in zip(fields, args, strict=False):
        setattr(instance, spec.name, value)
    for spec in fields[len(args) :]:
        name = spec.name
        if name in kwargs:
            value = kwargs.pop(name)
        elif spec.default_factory is not _MISSING:
            value = spec.default_factory()
        elif spec.default is not _MISSING:
            value = spec.default
        else:
            raise TypeError(f"{cls.__qualname__}() missing required argument {name!r}")
        setattr(instance, name, value)
    for name in kwargs:
        given = any(spec.name == name for spec in fields)
        why = "got multiple values for" if given else "got an unexpected keyword"
        raise TypeError(f"{cls.__qualname__}() {why} argument {name!r}")


def _first_init(holder: list[type]) -> Callable[..., None]:
    """The `__init__` a record starts with: `_bind` for its first COMPILE_AFTER instances,
    then the record's own compiled in its place. Threads making instances at once may count
    past the limit, or compile it twice, to the same function."""
    made = 0

    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        nonlocal made
        cls = holder[0]
        made += 1
        if made <= COMPILE_AFTER:
            _bind(cls, self, args, kwargs)
            return
        init = _compiled_init(cls)
        cls.__init__ = init  # type: ignore[misc]
        init(self, *args, **kwargs)

    return __init__


@dataclass_transform(field_specifiers=(field,))
def record(
    cls: RecordType | None = None,
    /,
    *,
    eq: bool = True,
    unsafe_hash: bool = False,
    slots: bool = False,
) -> Any:
    """Make `cls` a record, as `@dataclass` with the same arguments would: fields from its
    annotations (after its record bases' fields), an `__init__` taking them in that order,
    `__repr__`, `__eq__` over the compared fields unless `eq=False`, `__hash__` over them with
    `unsafe_hash=True` (unhashable otherwise, as a dataclass is), and `__slots__` with
    `slots=True`."""

    def make(cls: RecordType) -> RecordType:
        return _make_record(cls, eq=eq, unsafe_hash=unsafe_hash, slots=slots)

    return make if cls is None else make(cls)


def _make_record(cls: RecordType, *, eq: bool, unsafe_hash: bool, slots: bool) -> RecordType:
    body = cls.__dict__
    inherited: list[Field] = []
    for base in reversed(cls.__mro__[1:-1]):
        inherited.extend(base.__dict__.get("__record_fields__", ()))
    own: list[Field] = []
    for name in body.get("__annotations__", {}):
        declared = body.get(name, _MISSING)
        spec = declared if isinstance(declared, Field) else Field(declared, _MISSING, True)
        spec.name = name
        own.append(spec)
    by_name = {spec.name: spec for spec in inherited} | {spec.name: spec for spec in own}
    fields = tuple(by_name.values())
    defaults_seen = False
    for spec in fields:
        if not spec.required:
            defaults_seen = True
        elif defaults_seen:
            raise TypeError(f"{cls.__qualname__}: required field {spec.name!r} after a default")

    added: dict[str, Any] = {
        "__record_fields__": fields,
        "__record_key__": staticmethod(_key_of([f.name for f in fields if f.compare])),
        "__match_args__": tuple(by_name),
    }
    holder: list[type] = []
    for name, value in (
        ("__init__", _first_init(holder)),
        ("__repr__", _repr),
        ("__eq__", _equal if eq else None),
    ):
        if value is not None and name not in body:
            added[name] = value
    if "__hash__" not in body or body["__hash__"] is None:
        if unsafe_hash:
            added["__hash__"] = _hash
        elif eq:
            added["__hash__"] = None

    if slots:
        namespace = {k: v for k, v in body.items() if k not in ("__dict__", "__weakref__")}
        for spec in own:
            namespace.pop(spec.name, None)
        namespace.update(added)
        namespace["__slots__"] = tuple(spec.name for spec in own)
        made = type(cls)(cls.__name__, cls.__bases__, namespace)
        made.__qualname__ = cls.__qualname__
    else:
        made = cls
        for spec in own:
            if spec.default is not _MISSING:
                setattr(made, spec.name, spec.default)
            elif spec.name in body:
                delattr(made, spec.name)
        for name, value in added.items():
            setattr(made, name, value)
    holder.append(made)
    return made


def replace(record: Any, /, **changes: Any) -> Any:
    """A copy of `record` with the named fields changed, as `dataclasses.replace`."""
    values = {spec.name: getattr(record, spec.name) for spec in record.__record_fields__}
    unknown = changes.keys() - values.keys()
    if unknown:
        raise TypeError(f"{type(record).__qualname__} has no field {min(unknown)!r}")
    return type(record)(**(values | changes))
