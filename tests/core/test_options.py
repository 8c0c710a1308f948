"""options.py: every form of the command line maps to the right Endpoint and view, every
conflict is a one-line UsageError naming the flag at fault, and a parsed endpoint names
itself as the toolbar and status lines do."""

from __future__ import annotations

import socket

import pytest

from netrepl.errors import UsageError
from netrepl.options import parse_options
from netrepl.transport import Endpoint, TlsOptions
from netrepl.view import View


def endpoint(line: str) -> Endpoint:
    return parse_options(line.split()).endpoint


def usage_error(argv: list[str]) -> str:
    with pytest.raises(UsageError) as error:
        parse_options(argv)
    message = str(error.value)
    assert message and "\n" not in message
    return message


# ---- Forms that parse -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("127.0.0.1 6379", Endpoint(host="127.0.0.1", port=6379)),
        ("example.com http", Endpoint(host="example.com", port=80)),
        ("::1 7", Endpoint(host="::1", port=7)),
        ("[::1] 7", Endpoint(host="::1", port=7)),
        ("-l 9000", Endpoint(host=None, port=9000, listen=True)),
        ("-l 0", Endpoint(host=None, port=0, listen=True)),
        ("-l 127.0.0.1 0", Endpoint(host="127.0.0.1", port=0, listen=True)),
        ("-l [::1] 9000", Endpoint(host="::1", port=9000, listen=True)),
        ("-u 192.168.1.60 5000", Endpoint(protocol="udp", host="192.168.1.60", port=5000)),
        ("-u -l 5000", Endpoint(protocol="udp", host=None, port=5000, listen=True)),
        ("-u --broadcast 255.255.255.255 9", Endpoint("udp", "255.255.255.255", 9, broadcast=True)),
        ("--unix /run/dev.sock", Endpoint(protocol="unix", path="/run/dev.sock")),
        ("-l --unix /run/dev.sock", Endpoint(protocol="unix", path="/run/dev.sock", listen=True)),
        (
            "-l --unix /tmp/s --max-clients 3",
            Endpoint("unix", path="/tmp/s", listen=True, max_clients=3),
        ),
        ("-l 9000 --max-clients 1", Endpoint(port=9000, listen=True, max_clients=1)),
        ("-4 h 1", Endpoint(host="h", port=1, family=socket.AF_INET)),
        ("-6 h 1", Endpoint(host="h", port=1, family=socket.AF_INET6)),
        ("-l -6 9000", Endpoint(port=9000, listen=True, family=socket.AF_INET6)),
        ("--source 127.0.0.1:5000 h 1", Endpoint(host="h", port=1, source=("127.0.0.1", 5000))),
        ("--source 127.0.0.1 h 1", Endpoint(host="h", port=1, source=("127.0.0.1", 0))),
        ("--source [::1]:7 h 1", Endpoint(host="h", port=1, source=("::1", 7))),
        ("--source ::1 h 1", Endpoint(host="h", port=1, source=("::1", 0))),
        ("h 1 --reconnect", Endpoint(host="h", port=1, reconnect=1.0)),
        ("--reconnect 2.5 h 1", Endpoint(host="h", port=1, reconnect=2.5)),
        ("--reconnect 0 h 1", Endpoint(host="h", port=1, reconnect=0.0)),
        ("--connect-timeout 3 h 1", Endpoint(host="h", port=1, connect_timeout=3.0)),
        ("--connect-timeout 0.25 h 1", Endpoint(host="h", port=1, connect_timeout=0.25)),
        ("--keepalive --nodelay h 1", Endpoint(host="h", port=1, keepalive=True, nodelay=True)),
    ],
)
def test_command_line_forms(line, expected):
    assert endpoint(line) == expected


def test_defaults():
    options = parse_options(["h", "1"])
    assert options.endpoint == Endpoint(host="h", port=1)
    assert options.endpoint.family == socket.AF_UNSPEC
    assert options.endpoint.connect_timeout == 10.0
    assert options.endpoint.reconnect is None and options.endpoint.tls is None
    assert (options.view, options.eol, options.linger) == (View(), "lf", 1.0)
    assert not (options.demo or options.quiet or options.once)


def test_once_in_listen_mode():
    options = parse_options(["-l", "9000", "--once"])
    assert options.once and options.endpoint.listen


@pytest.mark.parametrize(
    ("argv", "tls"),
    [
        (["h", "443", "--tls"], TlsOptions()),
        (
            ["h", "443", "--tls", "--cafile", "ca.pem", "--sni", "dev.local", "--insecure"],
            TlsOptions(cafile="ca.pem", sni="dev.local", insecure=True),
        ),
        (
            ["h", "443", "--tls", "--cert", "c.pem", "--key", "c.key", "--alpn", "h2,http/1.1"],
            TlsOptions(cert="c.pem", key="c.key", alpn=("h2", "http/1.1")),
        ),
        (
            ["h", "443", "--tls", "--alpn", " h2 , http/1.1 ,, "],
            TlsOptions(alpn=("h2", "http/1.1")),
        ),
        (["h", "443", "--tls", "--alpn", "h2"], TlsOptions(alpn=("h2",))),
        (["-l", "8443", "--tls", "--cert", "s.pem"], TlsOptions(cert="s.pem")),
        (["--unix", "/tmp/s", "--tls"], TlsOptions()),
    ],
)
def test_tls_options_map_into_the_endpoint(argv, tls):
    assert parse_options(argv).endpoint.tls == tls


def test_demo_connects_to_a_local_peer_with_the_timeout_and_reconnect_given():
    options = parse_options(["--demo", "--reconnect", "--connect-timeout", "2"])
    assert options.demo
    assert options.endpoint == Endpoint(
        host="127.0.0.1", port=0, reconnect=1.0, connect_timeout=2.0
    )


@pytest.mark.parametrize(
    ("argv", "view"),
    [
        (["--view", "hex", "h", "1"], View("hex", "utf-8")),
        (["--view", "gbk", "h", "1"], View("text", "gbk")),
        (["--encoding", "gbk", "--view", "hex", "h", "1"], View("hex", "gbk")),
        (["--encoding", "latin-1", "h", "1"], View("text", "iso8859-1")),
        (["--view", "raw", "h", "1"], View("raw", "utf-8")),
    ],
)
def test_view_and_encoding(argv, view):
    assert parse_options(argv).view == view


# ---- Usage errors -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "flags"),
    [
        ("--cafile ca.pem h 443", ["--cafile", "--tls"]),
        ("--insecure h 443", ["--insecure", "--tls"]),
        ("--sni x h 443", ["--sni", "--tls"]),
        ("--cert c.pem h 443", ["--cert", "--tls"]),
        ("--key k.pem h 443", ["--key", "--tls"]),
        ("--alpn h2 h 443", ["--alpn", "--tls"]),
        ("-l 8443 --cert s.pem", ["--cert", "--tls"]),
        ("-u --tls h 1", ["-u", "--tls"]),
        ("-u --unix /tmp/s", ["-u", "--unix"]),
        ("--broadcast h 1", ["--broadcast", "-u"]),
        ("--broadcast -l 1", ["--broadcast", "-u"]),
        ("--max-clients 2 h 1", ["--max-clients", "-l"]),
        ("--once h 1", ["--once", "-l"]),
        ("-l 1 --reconnect", ["--reconnect", "-l"]),
        ("-l 1 --reconnect 5", ["--reconnect", "-l"]),
        ("-u -l 1 --max-clients 2", ["--max-clients"]),
        ("-l 8443 --tls", ["--cert"]),
        ("-l --unix /tmp/s --tls", ["--cert"]),
        ("--unix /tmp/s h", ["--unix"]),
        ("--unix /tmp/s h 1", ["--unix"]),
        ("--unix /tmp/s --source 127.0.0.1", ["--source", "--unix"]),
        ("--unix /tmp/s -4", ["-4", "--unix"]),
        ("--unix /tmp/s -6", ["-6", "--unix"]),
        ("-4 -6 h 1", ["-4", "-6"]),
        ("-l 1 --max-clients 0", ["--max-clients", "'0'"]),
        ("-l 1 --max-clients -1", ["--max-clients"]),
        ("-l 1 --max-clients=-1", ["--max-clients", "'-1'"]),
        ("-l 1 --max-clients x", ["--max-clients", "'x'"]),
        ("-l 1 --max-clients 2.5", ["--max-clients"]),
        ("--reconnect=-1 h 1", ["--reconnect"]),
        ("--connect-timeout nan h 1", ["--connect-timeout"]),
        ("--connect-timeout=-0.5 h 1", ["--connect-timeout"]),
        ("--linger x h 1", ["--linger"]),
        ("--demo -l", ["--demo", "-l"]),
        ("--demo h 1", ["--demo"]),
        ("--demo -u", ["--demo", "-u"]),
        ("--demo --unix /tmp/s", ["--demo", "--unix"]),
        ("--demo --tls", ["--demo", "--tls"]),
        ("--view nope h 1", ["--view", "'nope'"]),
        ("--view gbk --encoding utf-8 h 1", ["--view", "--encoding"]),
        ("--encoding nope h 1", ["'nope'"]),
        ("--encoding hex h 1", ["'hex'"]),
        ("--eol cr-lf h 1", ["--eol"]),
        ("--source :5000 h 1", ["':5000'"]),
        ("--source [::1 h 1", ["'[::1'"]),
        ("--source 1.2.3.4:99999 h 1", ["99999"]),
        ("--bogus h 1", ["--bogus"]),
    ],
)
def test_usage_error_is_one_line_naming_the_flag(line, flags):
    message = usage_error(line.split())
    for flag in flags:
        assert flag in message


@pytest.mark.parametrize(
    ("line", "words"),
    [
        ("", "HOST and PORT"),
        ("h", "HOST and PORT"),
        ("-l", "PORT to listen on"),
        ("-u -l", "PORT to listen on"),
        ("h 0", "out of range"),
        ("h 65536", "out of range"),
        ("h nosuchservice", "unknown port 'nosuchservice'"),
        ("-l 127.0.0.1", "unknown port '127.0.0.1'"),
        ("h 1 extra", "unrecognized arguments: extra"),
    ],
)
def test_missing_or_bad_positionals(line, words):
    assert words in usage_error(line.split())


@pytest.mark.parametrize(
    ("line", "flag"),
    [
        ("--demo --cafile ca.pem", "--cafile"),
        ("--demo --max-clients 2", "--max-clients"),
        ("--demo --once", "--once"),
    ],
)
def test_demo_refuses_options_it_would_ignore(line, flag):
    assert flag in usage_error(line.split())


@pytest.mark.parametrize("line", ["-l 9000 --source 127.0.0.1", "-u -l 5000 --source 127.0.0.1"])
def test_listen_mode_refuses_source(line):
    assert "--source" in usage_error(line.split())


@pytest.mark.parametrize(
    ("line", "delay", "host"),
    [
        ("--reconnect 127.0.0.1 80", 1.0, "127.0.0.1"),
        ("--reconnect 2.5 127.0.0.1 80", 2.5, "127.0.0.1"),
        ("127.0.0.1 80 --reconnect", 1.0, "127.0.0.1"),
        ("--reconnect example.com 80", 1.0, "example.com"),
    ],
)
def test_reconnect_takes_its_delay_only_when_one_is_given(line, delay, host):
    endpoint = parse_options(line.split()).endpoint
    assert (endpoint.reconnect, endpoint.host, endpoint.port) == (delay, host, 80)


@pytest.mark.parametrize("line", ["-u h 1 --keepalive", "-u h 1 --nodelay", "--unix p --nodelay"])
def test_tcp_options_are_refused_elsewhere(line):
    flag = line.split()[-1]
    assert flag in usage_error(line.split())


# ---- How an endpoint names itself ---------------------------------------------------------

TLS = TlsOptions()


@pytest.mark.parametrize(
    ("ep", "label", "kind"),
    [
        (Endpoint(host="127.0.0.1", port=80), "127.0.0.1:80", "TCP"),
        (Endpoint(host="::1", port=80), "[::1]:80", "TCP"),
        (Endpoint(host="example.com", port=443, tls=TLS), "example.com:443", "TLS"),
        (Endpoint(port=9000, listen=True), "*:9000", "TCP"),
        (Endpoint(port=8443, listen=True, tls=TLS), "*:8443", "TLS"),
        (Endpoint(protocol="udp", host="10.0.0.5", port=5000), "10.0.0.5:5000", "UDP"),
        (Endpoint(protocol="udp", port=5000, listen=True), "*:5000", "UDP"),
        (Endpoint(protocol="udp", host="h", port=1, tls=TLS), "h:1", "UDP+TLS"),
        (Endpoint(protocol="unix", path="/tmp/dev.sock"), "unix:/tmp/dev.sock", "unix"),
        (Endpoint(protocol="unix", path="/tmp/d.sock", tls=TLS), "unix:/tmp/d.sock", "unix+TLS"),
    ],
)
def test_endpoint_label_and_kind(ep, label, kind):
    assert (ep.label, ep.kind) == (label, kind)


@pytest.mark.parametrize(
    ("line", "label", "kind"),
    [
        ("-l 9000", "*:9000", "TCP"),
        ("-l 127.0.0.1 0", "127.0.0.1:0", "TCP"),
        ("-u -l 5000", "*:5000", "UDP"),
        ("--unix /run/x.sock", "unix:/run/x.sock", "unix"),
        ("-l --unix /run/x.sock --tls --cert s.pem", "unix:/run/x.sock", "unix+TLS"),
        ("[::1] 443 --tls", "[::1]:443", "TLS"),
    ],
)
def test_parsed_endpoint_label_and_kind(line, label, kind):
    ep = endpoint(line)
    assert (ep.label, ep.kind) == (label, kind)
