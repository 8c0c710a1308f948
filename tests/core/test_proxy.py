"""proxy.py, the pure part of --proxy: the URL, the bytes of each handshake, each reply
(whole, split anywhere, or followed by the target's first bytes) and each refusal's words."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from netrepl.errors import UsageError
from netrepl.proxy import (
    SOCKS4_REPLIES,
    SOCKS5_REPLIES,
    ProxyError,
    ProxySettings,
    open_handshake,
    parse_proxy_url,
)

# ---- the URL


@pytest.mark.parametrize(
    ("url", "settings"),
    [
        ("socks5://127.0.0.1", ProxySettings("socks5", "127.0.0.1", 1080)),
        ("socks5h://proxy.lan:9050", ProxySettings("socks5h", "proxy.lan", 9050)),
        ("SOCKS4://10.0.0.1", ProxySettings("socks4", "10.0.0.1", 1080)),
        ("socks4a://bob@h", ProxySettings("socks4a", "h", 1080, "bob")),
        ("http://h", ProxySettings("http", "h", 8080)),
        ("http://[::1]:3128", ProxySettings("http", "::1", 3128)),
        ("socks5://al%40ce:p%3Ass@h:1", ProxySettings("socks5", "h", 1, "al@ce", "p:ss")),
        ("socks5://u:@h", ProxySettings("socks5", "h", 1080, "u", "")),
        ("http://u:p@ss@h", ProxySettings("http", "h", 8080, "u", "p@ss")),
    ],
)
def test_a_url_gives_its_settings(url, settings):
    assert parse_proxy_url(url) == settings


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("ftp://h", "give socks5://, socks5h://, socks4://, socks4a:// or http://"),
        ("127.0.0.1:1080", "give socks5://"),
        ("socks5://", "no host"),
        ("socks5://u:p@", "no host"),
        ("socks5://h:", "no port after the colon"),
        ("socks5://h:0", "port '0' is not a port (1-65535)"),
        ("socks5://h:65536", "port '65536' is not a port"),
        ("socks5://h:inf", "port 'inf' is not a port"),
        ("socks5://h:١٠٨٠", "is not a port"),
        ("socks5://h\0:1", "control character"),
        ("socks5://" + "a" * 64 + ".example:1", "must be 1 to 63 characters"),
        ("socks5://h/path", "no path"),
        ("socks5://[::1:1080", "[ADDRESS]:PORT"),
        ("socks4://u:p@h", "SOCKS4 has no passwords"),
        ("socks4://u%00x@h", "cannot hold a NUL"),
        ("socks5://" + "u" * 256 + "@h", "SOCKS5 user name is at most 255 bytes"),
        ("http://a%3Ab:c@h", "cannot hold a colon"),
        ("socks5://%ff@h", "not UTF-8"),
    ],
)
def test_a_bad_url_is_one_line(url, reason):
    with pytest.raises(UsageError) as error:
        parse_proxy_url(url)
    assert reason in str(error.value)
    assert str(error.value).startswith("bad --proxy URL ")
    assert "\n" not in str(error.value)


def test_settings_name_the_proxy_by_what_it_speaks():
    assert parse_proxy_url("socks5h://h").label == "socks5 proxy h:1080"
    assert parse_proxy_url("socks4a://[::1]").label == "socks4 proxy [::1]:1080"
    assert parse_proxy_url("http://h").label == "http proxy h:8080"
    assert [parse_proxy_url(f"{s}://h").resolves_names for s in ("socks5", "socks5h")] == [
        False,
        True,
    ]


# ---- the handshakes: what is sent

SOCKS5_OK = b"\x05\x00\x00\x01\x7f\x00\x00\x01\x04\x38"


def run(handshake, replies: list[bytes]) -> list[bytes]:
    """Feed each reply in turn; what the handshake sent, its first message included."""
    sent = [handshake.start()]
    for reply in replies:
        out = handshake.receive(reply)
        if out:
            sent.append(out)
    return sent


def test_socks5_without_credentials_sends_an_address_or_a_name():
    settings = ProxySettings("socks5", "p", 1080)
    shake = open_handshake(settings, "10.0.0.2", 80)
    assert run(shake, [b"\x05\x00", SOCKS5_OK]) == [
        b"\x05\x01\x00",
        b"\x05\x01\x00\x01\x0a\x00\x00\x02\x00\x50",
    ]
    assert shake.done and shake.early == b""
    named = open_handshake(ProxySettings("socks5h", "p", 1080), "localhost", 80)
    assert run(named, [b"\x05\x00"])[1] == b"\x05\x01\x00\x03\x09localhost\x00\x50"
    v6 = open_handshake(settings, "::1", 80)
    assert run(v6, [b"\x05\x00"])[1] == b"\x05\x01\x00\x04" + bytes(15) + b"\x01\x00\x50"


def test_socks5_with_credentials_offers_them_and_sends_them_when_asked():
    shake = open_handshake(ProxySettings("socks5", "p", 1080, "al", "pw"), "10.0.0.2", 80)
    assert run(shake, [b"\x05\x02", b"\x01\x00", SOCKS5_OK]) == [
        b"\x05\x02\x00\x02",
        b"\x01\x02al\x02pw",
        b"\x05\x01\x00\x01\x0a\x00\x00\x02\x00\x50",
    ]
    assert shake.done


def test_socks4_and_socks4a():
    shake = open_handshake(ProxySettings("socks4", "p", 1080, "bob"), "10.0.0.2", 80)
    assert run(shake, [b"\x00\x5a" + bytes(6)]) == [b"\x04\x01\x00\x50\x0a\x00\x00\x02bob\x00"]
    assert shake.done
    named = open_handshake(ProxySettings("socks4a", "p", 1080), "localhost", 80)
    assert named.start() == b"\x04\x01\x00\x50\x00\x00\x00\x01\x00localhost\x00"
    with pytest.raises(ProxyError, match="IPv4 addresses only"):
        open_handshake(ProxySettings("socks4", "p", 1080), "::1", 80).start()


def test_http_connect_with_basic_credentials():
    shake = open_handshake(ProxySettings("http", "p", 8080, "al", "p:w"), "::1", 443)
    assert shake.start() == (
        b"CONNECT [::1]:443 HTTP/1.1\r\nHost: [::1]:443\r\n"
        b"Proxy-Authorization: Basic YWw6cDp3\r\n\r\n"
    )
    shake.receive(b"HTTP/1.1 200 Connection established\r\nVia: x\r\n\r\n")
    assert shake.done and shake.early == b""


# ---- replies: any split parses the same, and the target's first bytes are kept


def _replies():
    """(settings, host, the proxy's whole answer, what the target said after it)."""
    greeting = b"220 ready\r\n"
    return [
        (ProxySettings("socks5", "p", 1), "10.0.0.2", b"\x05\x00" + SOCKS5_OK, greeting),
        (
            ProxySettings("socks5h", "p", 1, "u", "p"),
            "some.name",
            b"\x05\x02\x01\x00\x05\x00\x00\x03\x04host\x00\x50",
            greeting,
        ),
        (
            ProxySettings("socks5", "p", 1),
            "::1",
            b"\x05\x00\x05\x00\x00\x04" + bytes(16) + b"\x00\x50",
            b"",
        ),
        (ProxySettings("socks4a", "p", 1), "h", b"\x00\x5a\x00\x50\x00\x00\x00\x00", greeting),
        (ProxySettings("http", "p", 1), "h", b"HTTP/1.0 200 OK\r\nX: y\r\n\r\n", greeting),
    ]


@given(case=st.sampled_from(_replies()), cuts=st.lists(st.integers(0, 80), max_size=6))
def test_any_split_of_a_reply_parses_the_same(case, cuts):
    settings, host, answer, greeting = case
    whole = answer + greeting
    shake = open_handshake(settings, host, 80)
    shake.start()
    edges = sorted({min(cut, len(whole)) for cut in cuts} | {0, len(whole)})
    for start, end in itertools.pairwise(edges):
        shake.receive(whole[start:end])
    assert shake.done
    assert shake.early == greeting


@pytest.mark.parametrize("code", sorted(SOCKS5_REPLIES))
def test_each_socks5_reply_code_is_named(code):
    shake = open_handshake(ProxySettings("socks5", "p", 1), "10.0.0.2", 80)
    shake.start()
    shake.receive(b"\x05\x00")
    with pytest.raises(ProxyError) as error:
        shake.receive(bytes([5, code, 0, 1]))
    assert str(error.value) == f"the proxy says {SOCKS5_REPLIES[code]} (reply {code})"
    assert SOCKS5_REPLIES[5] == "connection refused"


@pytest.mark.parametrize("code", sorted(SOCKS4_REPLIES))
def test_each_socks4_reply_code_is_named(code):
    shake = open_handshake(ProxySettings("socks4", "p", 1), "10.0.0.2", 80)
    shake.start()
    with pytest.raises(ProxyError) as error:
        shake.receive(bytes([0, code]))
    assert str(error.value) == f"the proxy says {SOCKS4_REPLIES[code]} (reply {code})"


@pytest.mark.parametrize(
    ("settings", "replies", "words"),
    [
        (
            ProxySettings("socks5", "p", 1, "u", "x"),
            [b"\x05\x02", b"\x01\x01"],
            "authentication failed",
        ),
        (ProxySettings("socks5", "p", 1), [b"\x05\xff"], "wants a user name and password"),
        (ProxySettings("socks5", "p", 1, "u", "x"), [b"\x05\xff"], "accepts none of our"),
        (ProxySettings("socks5", "p", 1), [b"HTTP/1.1 400 Bad"], "it answers in HTTP"),
        (ProxySettings("socks5", "p", 1), [b"\x04\x5a"], "not a SOCKS5 reply (it began 04 5a)"),
        (ProxySettings("socks4", "p", 1), [b"\x05\x00"], "not a SOCKS4 reply"),
        (
            ProxySettings("http", "p", 1),
            [b"HTTP/1.1 407 Proxy Authentication Required\r\n\r\n"],
            "407 Proxy Authentication Required (give USER:PASSWORD@ in the URL)",
        ),
        (ProxySettings("http", "p", 1), [b"HTTP/1.1 502 Bad Gateway\r\n\r\n"], "502 Bad Gateway"),
        (ProxySettings("http", "p", 1), [b"\x05\x00"], "not an HTTP reply (it began 05 00)"),
        (ProxySettings("http", "p", 1), [b"HTTP/1.1 " + b"x" * 20000], "longer than 16384"),
        (ProxySettings("http", "p", 1), [b"HTTP/2 200\r\n\r\n"], "not an HTTP reply"),
    ],
)
def test_a_refusal_or_a_stranger_is_one_line(settings, replies, words):
    shake = open_handshake(settings, "10.0.0.2", 80)
    shake.start()
    with pytest.raises(ProxyError) as error:
        for reply in replies:
            shake.receive(reply)
    assert words in str(error.value)
    assert "\n" not in str(error.value)


def test_a_hang_up_says_where_the_handshake_was():
    silent = open_handshake(ProxySettings("socks5", "p", 1), "10.0.0.2", 80)
    silent.start()
    assert "without answering (does it want USER:PASSWORD@?)" in silent.closed()
    refused = open_handshake(ProxySettings("socks5", "p", 1, "u", "x"), "10.0.0.2", 80)
    run(refused, [b"\x05\x02"])
    assert refused.closed().startswith("authentication failed")


# ---- the command line: which endpoint gets the proxy


def test_a_client_and_a_relays_upstream_get_the_proxy_a_listener_does_not():
    from netrepl.options import parse_options

    client = parse_options(["h", "1", "--proxy", "http://u:p@p:3128"]).endpoint
    assert client.proxy == ProxySettings("http", "p", 3128, "u", "p")
    assert client.label == "h:1"
    relay = parse_options(["-l", "9", "--relay", "h:1", "--proxy", "socks5h://p"]).endpoint
    assert relay.proxy is None
    assert relay.upstream.proxy == ProxySettings("socks5h", "p", 1080)
    unix = parse_options(["--unix", "s", "-l", "--relay", "h:1", "--proxy", "socks5://p"])
    assert unix.endpoint.upstream.proxy == ProxySettings("socks5", "p", 1080)


@pytest.mark.parametrize("url", ["socks5://h:inf", "nope://h", "socks5://h\0"])
def test_a_bad_url_on_the_command_line_is_a_usage_error(url):
    from netrepl.options import parse_options

    with pytest.raises(UsageError) as error:
        parse_options(["h", "1", "--proxy", url])
    assert str(error.value).startswith("bad --proxy URL")
