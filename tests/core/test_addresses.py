"""The transport package's address functions (HOST:PORT as typed, socket addresses as shown)
and transport/target.py (/to's targets, client ids)."""

from __future__ import annotations

import re

import pytest

from netrepl.errors import UsageError
from netrepl.transport import FlowSide, format_sockaddr, parse_host_port
from netrepl.transport.target import describe_target, parse_client_id, parse_target

# ---- Addresses ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "optional", "expected"),
    [
        ("10.0.0.1:502", False, ("10.0.0.1", 502)),
        ("[::1]:502", False, ("::1", 502)),
        ("[fe80::1%eth0]:7", False, ("fe80::1%eth0", 7)),
        ("host:http", False, ("host", 80)),
        ("10.0.0.1", True, ("10.0.0.1", 0)),
        ("::1", True, ("::1", 0)),
        ("[::1]", True, ("::1", 0)),
        ("name.local", True, ("name.local", 0)),
    ],
)
def test_parse_host_port(text, optional, expected):
    assert parse_host_port(text, port_optional=optional) == expected


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("10.0.0.1", "give HOST:PORT"),
        ("::1", "give HOST:PORT"),
        ("host:", "give HOST:PORT"),
        (":502", "no host"),
        ("[]:502", "no host"),
        ("", "no host"),
        ("[::1", "write [IPv6]:PORT"),
        ("[::1]502", "write [IPv6]:PORT"),
        ("h:0", "out of range"),
        ("h:nosuchservice", "unknown port"),
    ],
)
def test_parse_host_port_errors(text, words):
    with pytest.raises(UsageError, match=r".") as error:
        parse_host_port(text)
    assert words in str(error.value) and "\n" not in str(error.value)


@pytest.mark.parametrize(
    ("address", "text"),
    [
        (("127.0.0.1", 80), "127.0.0.1:80"),
        (("::1", 80, 0, 0), "[::1]:80"),
        (("::ffff:192.168.1.5", 40000, 0, 0), "192.168.1.5:40000"),
        ("/tmp/dev.sock", "unix:/tmp/dev.sock"),
        (b"/tmp/dev.sock", "unix:/tmp/dev.sock"),
        (b"/tmp/\xff", "unix:/tmp/\\xff"),
        ("", "unix:(unnamed)"),
        (b"", "unix:(unnamed)"),
    ],
)
def test_format_sockaddr(address, text):
    assert format_sockaddr(address) == text


# ---- /to, /kick and /clients helpers ------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "target"),
    [
        ("all", "all"),
        ("last", "last"),
        ("2", 2),
        ("#2", 2),
        ("#17", 17),
        ("10.0.0.5:502", ("10.0.0.5", 502)),
        ("[::1]:502", ("::1", 502)),
        ("host:http", ("host", 80)),
    ],
)
def test_parse_target(text, target):
    assert parse_target(text) == target


@pytest.mark.parametrize("text", ["", "#", "#x", "ALL", "10.0.0.5", "10.0.0.5:0", "-1", "٣"])
def test_parse_target_errors_are_usage_errors(text):
    with pytest.raises(UsageError) as error:
        parse_target(text)
    assert "\n" not in str(error.value)


@pytest.mark.parametrize(
    ("target", "long", "short"),
    [
        (2, "#2", "#2"),
        (("10.0.0.5", 502), "10.0.0.5:502", "10.0.0.5:502"),
        (("::1", 7), "[::1]:7", "[::1]:7"),
        ("all", "all clients", "all"),
        ("last", "the last sender", "last"),
    ],
)
def test_describe_target(target, long, short):
    assert describe_target(target) == long
    assert describe_target(target, short=True) == short


@pytest.mark.parametrize("text", ["#2", "10.0.0.5:502", "[::1]:7", "all", "last"])
def test_describe_target_round_trips_through_parse(text):
    assert describe_target(parse_target(text), short=True) == text


@pytest.mark.parametrize(
    ("words", "target", "long"),
    [
        (["client"], FlowSide("newest", "client"), "the newest flow's client"),
        (["upstream"], FlowSide("newest", "upstream"), "the newest flow's upstream"),
        (["2", "client"], FlowSide(2, "client"), "#2 client"),
        (["#2", "upstream"], FlowSide(2, "upstream"), "#2 upstream"),
        (["all", "client"], FlowSide("all", "client"), "every flow's client"),
    ],
)
def test_a_relays_targets_name_a_flow_and_a_side(words, target, long):
    assert parse_target(*words) == target
    assert describe_target(target) == long


@pytest.mark.parametrize(
    ("words", "message"),
    [
        (["upstrem"], "/to: 'upstrem' is not a target: all, last, N or HOST:PORT;"),
        (["2", "middle"], "/to: 'middle' is not a side (client or upstream)"),
        (["x", "client"], "/to: 'x' is not a client id"),
        (["10.0.0.5"], "bad address '10.0.0.5': give HOST:PORT"),
    ],
)
def test_a_misspelt_target_says_what_targets_there_are(words, message):
    with pytest.raises(UsageError, match=re.escape(message)):
        parse_target(*words)


@pytest.mark.parametrize(("text", "conn"), [("3", 3), ("#3", 3), ("007", 7), ("#0", 0)])
def test_parse_client_id(text, conn):
    assert parse_client_id(text, "/kick") == conn


@pytest.mark.parametrize("text", ["", "#", "x", "##3", "-1", "+3", "3.0", " 3", "٣", "３"])
def test_parse_client_id_errors_name_the_command(text):
    with pytest.raises(UsageError) as error:
        parse_client_id(text, "/kick")
    assert str(error.value) == f"/kick: {text!r} is not a client id (like 3 or #3; /clients)"
