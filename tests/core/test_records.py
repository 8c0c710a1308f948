"""netrepl.records behaves as the `dataclasses` declarations it replaced: each test declares
the same class both ways where it can and compares what they do."""

from __future__ import annotations

import dataclasses
import threading

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from netrepl.records import COMPILE_AFTER, _bind, _compiled_init, field, record, replace


def both(**options):
    """The same class body made a record and a dataclass, with the same options."""

    def declare(make, field_of):
        @make(**options)
        class Reading:
            """A reading."""

            conn: int
            data: bytes
            label: str = "x"
            at: float = field_of(default=0.0, compare=False)
            tags: list = field_of(default_factory=list)

        return Reading

    return declare(record, field), declare(dataclasses.dataclass, dataclasses.field)


@pytest.mark.parametrize(
    "options",
    [{}, {"slots": True}, {"unsafe_hash": True}, {"slots": True, "unsafe_hash": True}],
)
def test_init_repr_and_equality_match_a_dataclass(options):
    ours, theirs = both(**options)
    for args, kwargs in [((1, b"a"), {}), ((2, b"b", "y"), {"at": 5.0}), ((3,), {"data": b""})]:
        a, b = ours(*args, **kwargs), theirs(*args, **kwargs)
        assert repr(a) == repr(b)
        assert vars_of(a) == vars_of(b)
    assert ours(1, b"a", at=1.0) == ours(1, b"a", at=2.0)  # `at` is not compared
    assert ours(1, b"a") != ours(1, b"b")
    assert ours(1, b"a", tags=[1]) != ours(1, b"a")
    assert ours.__match_args__ == theirs.__match_args__


def vars_of(instance):
    return {name: getattr(instance, name) for name in type(instance).__match_args__}


@pytest.mark.parametrize("slots", [False, True])
def test_hashing_follows_the_dataclass_rules(slots):
    plain, _ = both(slots=slots)
    hashable, _ = both(slots=slots, unsafe_hash=True)
    with pytest.raises(TypeError):
        hash(plain(1, b"a"))
    assert hash(hashable(1, b"a", at=1.0, tags=())) == hash(hashable(1, b"a", at=2.0, tags=()))
    assert len({hashable(1, b"a", tags=()), hashable(1, b"a", tags=())}) == 1


def test_equality_is_between_records_of_one_class_only():
    first, _ = both(unsafe_hash=True)
    second, _ = both(unsafe_hash=True)
    assert first(1, b"a") != second(1, b"a")
    assert first(1, b"a") != (1, b"a", "x", [])


def test_eq_false_keeps_identity():
    @record(eq=False)
    class Leg:
        """A leg."""

        conn: int

    leg = Leg(1)
    assert leg != Leg(1)
    assert leg == leg
    assert len({leg, Leg(1)}) == 2


def test_a_default_factory_makes_a_fresh_value_each_time():
    ours, _ = both()
    a, b = ours(1, b""), ours(2, b"")
    a.tags.append(1)
    assert b.tags == []


def test_slots_leave_no_dict_and_refuse_unknown_attributes():
    ours, _ = both(slots=True)
    reading = ours(1, b"")
    assert not hasattr(reading, "__dict__")
    with pytest.raises(AttributeError):
        reading.unknown = 1  # type: ignore[attr-defined]
    assert ours.__slots__ == ("conn", "data", "label", "at", "tags")
    assert ours.__qualname__.endswith("Reading")
    assert ours.__doc__ == "A reading."


def test_a_record_subclass_adds_its_fields_after_its_bases():
    @record
    class Base:
        """A base."""

        conn: int
        sent: int = 0

    @record(eq=False)
    class Leg(Base):
        """A leg."""

        local: str = ""

    leg = Leg(1, 2, "here")
    assert (leg.conn, leg.sent, leg.local) == (1, 2, "here")
    assert Leg.__match_args__ == ("conn", "sent", "local")
    assert repr(Leg(1)).endswith(".<locals>.Leg(conn=1, sent=0, local='')")


def test_match_reads_fields_by_position():
    ours, _ = both(slots=True)
    match ours(7, b"abc"):
        case ours(conn, data, label):  # type: ignore[misc]
            assert (conn, data, label) == (7, b"abc", "x")
        case _:
            pytest.fail("no match")


def test_replace_copies_with_changes_and_refuses_unknown_fields():
    ours, theirs = both(slots=True)
    changed = replace(ours(1, b"a", at=3.0), data=b"b")
    assert vars_of(changed) == vars_of(dataclasses.replace(theirs(1, b"a", at=3.0), data=b"b"))
    with pytest.raises(TypeError, match="no field 'nope'"):
        replace(ours(1, b"a"), nope=1)


def test_wrong_arguments_fail_as_a_dataclass_init_does():
    ours, theirs = both()
    for args, kwargs in [
        ((), {}),
        ((1,), {}),
        ((1, b"", "x", 0.0, [], 9), {}),
        ((1, b""), {"x": 1}),
    ]:
        with pytest.raises(TypeError):
            theirs(*args, **kwargs)
        with pytest.raises(TypeError):
            ours(*args, **kwargs)


def test_what_the_class_body_declares_is_kept():
    @record(unsafe_hash=True)
    class Named:
        """A name."""

        name: str

        def __repr__(self) -> str:
            return f"<{self.name}>"

    assert repr(Named("a")) == "<a>"
    assert Named("a") == Named("a")


def test_a_required_field_after_a_default_is_refused():
    with pytest.raises(TypeError, match="required field 'b' after a default"):

        @record
        class Wrong:
            """Wrong."""

            a: int = 0
            b: int


def test_a_field_has_a_default_or_a_factory_not_both():
    with pytest.raises(ValueError):
        field(default=1, default_factory=list)


def test_init_is_compiled_after_the_first_few_instances_once_and_shared():
    ours, _ = both(slots=True)
    first_init = ours.__init__
    for n in range(COMPILE_AFTER):
        assert ours(n, b"").conn == n
        assert ours.__init__ is first_init
    assert ours(99, b"x", tags=[1]).tags == [1]
    compiled = ours.__init__
    assert compiled is not first_init
    assert compiled.__qualname__.endswith("Reading.__init__")
    ours(2, b"")
    assert ours.__init__ is compiled


CALLS = st.tuples(
    st.lists(st.sampled_from([1, b"d", "label", 2.5, ["t"]]), max_size=7).map(tuple),
    st.dictionaries(
        st.sampled_from(["conn", "data", "label", "at", "tags", "nope"]),
        st.sampled_from([3, b"e", "other"]),
        max_size=4,
    ),
)


@settings(max_examples=300, deadline=None)
@given(CALLS)
def test_the_shared_init_binds_as_the_compiled_one_does(call):
    args, kwargs = call
    ours, _ = both(slots=True)

    def outcome(init):
        instance = object.__new__(ours)
        try:
            init(instance, *args, **dict(kwargs))
        except TypeError:
            return "TypeError"
        return vars_of(instance)

    def shared(instance, *args, **kwargs):
        _bind(ours, instance, args, kwargs)

    assert outcome(shared) == outcome(_compiled_init(ours))


def test_first_instances_made_by_many_threads_at_once_are_all_whole():
    ours, _ = both(slots=True)
    made = []
    count = 3 * COMPILE_AFTER  # across the switch to the compiled __init__
    start = threading.Barrier(count)

    def make(n):
        start.wait(timeout=10)
        made.append(ours(n, bytes([n])))

    threads = [threading.Thread(target=make, args=(n,)) for n in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)
    assert sorted((r.conn, r.data, r.label, r.tags) for r in made) == [
        (n, bytes([n]), "x", []) for n in range(count)
    ]
