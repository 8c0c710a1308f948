"""render with several peers: label lines once two accepted clients have been seen, datagrams as
blocks of their own in every view, status lines for connections, listeners, TLS and closes, and
/cert's lines. Addresses are outside text too: they come out escaped, like peer bytes."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from netrepl.events import (
    CertificateInfo,
    Closed,
    Connected,
    HalfClosed,
    Listening,
    Received,
    Sent,
    TlsEstablished,
    ViewChanged,
)
from netrepl.render import Output, Renderer, certificate_lines
from netrepl.view import View
from tests.core.renderers import ReadByRead

HEX = View("hex")
RAW = View("raw")
UTF8 = View("text", "utf-8")
LOCAL = "0.0.0.0:9000"
PEERS = {1: "10.0.0.1:4001", 2: "10.0.0.2:4002", 3: "10.0.0.3:4003"}


def hexline(offset: int, hexes: str, gutter: str) -> str:
    """One `hexdump -C` line, hexes given as typed in the 48-column field."""
    return f"{offset:08x}  {hexes:<48}  |{gutter}|"


def shown(outputs: list[Output]) -> list[tuple[str, str]]:
    """(channel, plain text) of each output; fails on a raw one."""
    assert all(out.text is not None for out in outputs)
    return [(out.channel, out.text.plain) for out in outputs]


def data_text(outputs: list[Output]) -> str:
    return "".join(out.text.plain for out in outputs if out.channel == "data")


def label(conn: int, suffix: str = "") -> str:
    """A label line: a datagram's (with its size as `suffix`, after the arrow of a received
    block), or the line naming a client when stream data changes source."""
    arrow = "← " if suffix else ""
    return f"── {arrow}#{conn} {PEERS[conn]}{suffix}\n"


def server(view: View = UTF8, conns: tuple[int, ...] = (1, 2), protocol: str = "tcp") -> Renderer:
    """A renderer that has seen clients `conns` accepted by a listener."""
    renderer = ReadByRead(view)
    for conn in conns:
        renderer.render(Connected(conn, PEERS[conn], LOCAL, protocol, accepted=True))  # type: ignore[arg-type]
    return renderer


def by_source(transcript: str) -> list[tuple[str | None, str]]:
    """Each non-empty line of a data transcript with the label last shown above it."""
    current, lines = None, []
    for line in transcript.split("\n"):
        if line.startswith("── "):
            current = line[3:]
        elif line:
            lines.append((current, line))
    return lines


# ---- Labels on stream data ----------------------------------------------------------------


@pytest.mark.parametrize("view", [UTF8, HEX])
def test_one_accepted_client_gets_no_label(view):
    renderer = server(view, conns=(1,))
    outputs = renderer.render(Received(1, b"a\n")) + renderer.render(Received(1, b"b\n"))
    assert "──" not in data_text(outputs)


def test_client_mode_gets_no_labels_across_reconnects():
    renderer = ReadByRead(UTF8)
    outputs = []
    for conn in (1, 2, 3):
        renderer.render(Connected(conn, "10.0.0.9:80", f"10.0.0.1:{5000 + conn}"))
        outputs += renderer.render(Received(conn, b"hello\n"))
        outputs += renderer.render(Closed(conn, "closed by peer", 6, 0))
    assert data_text(outputs) == "hello\n" * 3


@pytest.mark.parametrize("protocol", ["tcp", "unix"])
def test_a_label_on_every_change_of_source_and_none_in_between(protocol):
    renderer = server(conns=(1,), protocol=protocol)
    assert shown(renderer.render(Received(1, b"alone\n"))) == [("data", "alone\n")]
    renderer.render(Connected(2, PEERS[2], LOCAL, protocol, accepted=True))
    steps = [
        (2, b"b1\n", [label(2), "b1\n"]),
        (2, b"b2\n", ["b2\n"]),
        (1, b"a1\n", [label(1), "a1\n"]),
        (2, b"b3\n", [label(2), "b3\n"]),
        (2, b"b4\n", ["b4\n"]),
    ]
    for conn, data, expected in steps:
        assert shown(renderer.render(Received(conn, data))) == [("data", e) for e in expected]


def test_labels_in_hex_view_with_offsets_per_client():
    renderer = server(HEX, conns=(1,))
    frame = bytes.fromhex("68010012345616")
    assert data_text(renderer.render(Received(1, frame))) == (
        hexline(0, "68 01 00 12 34 56 16", "h...4V.") + "\n"
    )
    renderer.render(Connected(2, PEERS[2], LOCAL, accepted=True))
    assert data_text(renderer.render(Received(2, frame))) == (
        label(2) + hexline(0, "68 01 00 12 34 56 16", "h...4V.") + "\n"
    )
    assert data_text(renderer.render(Received(1, frame))) == (
        label(1) + hexline(7, "68 01 00 12 34 56 16", "h...4V.") + "\n"
    )


def test_two_clients_seen_one_after_the_other_still_bring_labels():
    renderer = server(conns=(1,))
    renderer.render(Received(1, b"first\n"))
    renderer.render(Closed(1, "closed by peer", 6, 0))
    renderer.render(Connected(2, PEERS[2], LOCAL, accepted=True))
    assert data_text(renderer.render(Received(2, b"second\n"))) == label(2) + "second\n"


def test_the_source_closing_makes_the_next_data_labelled():
    renderer = server()
    renderer.render(Received(1, b"one\n"))
    renderer.render(Closed(1, "closed by peer", 4, 0))
    assert data_text(renderer.render(Received(2, b"two\n"))) == label(2) + "two\n"


def test_another_client_closing_does_not_relabel_the_source():
    renderer = server(conns=(1, 2, 3))
    renderer.render(Received(1, b"one\n"))
    renderer.render(Closed(2, "closed by peer", 0, 0))
    assert data_text(renderer.render(Received(1, b"more\n"))) == "more\n"


def test_a_label_ends_another_streams_open_line_first():
    renderer = server()
    assert data_text(renderer.render(Received(1, b"login: "))) == label(1) + "login: "
    assert shown(renderer.render(Received(2, b"ok"))) == [
        ("data", "\n"),
        ("data", label(2)),
        ("data", "ok"),
    ]
    # The same source goes on: its line continues, no label.
    assert shown(renderer.render(Received(2, b" then\n"))) == [("data", " then\n")]


def test_a_label_ends_a_text_line_left_open_before_a_switch_to_hex():
    renderer = server()
    renderer.render(Received(1, b"prompt> "))
    renderer.render(ViewChanged(HEX))
    assert data_text(renderer.render(Received(2, b"Z"))) == (
        "\n" + label(2) + hexline(0, "5a", "Z") + "\n"
    )


def test_labels_are_styled_as_labels():
    renderer = server()
    outputs = renderer.render(Received(2, b"x"))
    assert outputs[0].text.plain == label(2)
    assert outputs[0].text.style == "netrepl.label"


def test_raw_view_has_no_labels():
    renderer = server(RAW)
    outputs = renderer.render(Received(1, b"a")) + renderer.render(Received(2, b"b"))
    assert outputs == [Output("data", raw=b"a"), Output("data", raw=b"b")]


def test_held_back_bytes_flushed_by_a_view_switch_keep_their_source():
    renderer = server()
    before = renderer.render(Received(1, b"a\xe4")) + renderer.render(Received(2, b"b\xe4\xb8"))
    after = renderer.render(ViewChanged(HEX))
    lines = by_source(data_text(before + after))
    assert (f"#1 {PEERS[1]}", hexline(1, "e4", ".")) in lines
    assert (f"#2 {PEERS[2]}", hexline(1, "e4 b8", "..")) in lines
    assert {line for _, line in lines} == {
        "a",
        "b",
        hexline(1, "e4", "."),
        hexline(1, "e4 b8", ".."),
    }


def test_held_back_bytes_flushed_by_a_close_keep_their_source():
    renderer = server()
    before = renderer.render(Received(1, b"a\xe4")) + renderer.render(Received(2, b"b"))
    after = renderer.render(Closed(1, "closed by peer", 2, 0))
    assert by_source(data_text(before + after)) == [
        (f"#1 {PEERS[1]}", "a"),
        (f"#2 {PEERS[2]}", "b"),
        (f"#1 {PEERS[1]}", "\\xe4"),
    ]


# ---- Datagrams ----------------------------------------------------------------------------


def udp_server(view: View = UTF8) -> Renderer:
    return server(view, conns=(1, 2), protocol="udp")


@pytest.mark.parametrize(
    ("data", "body"),
    [
        (b"abc", "abc\n"),
        (b"abc\n", "abc\n"),
        (b"a\r\n", "a\n"),
        (b"x\n\n", "x\n\n"),
        (b"\x1b[2J", "\\x1b[2J\n"),
        (b"\xe4\xb8\xad\xe6\x96\x87", "中文\n"),
    ],
)
def test_datagram_in_text_view_is_a_label_and_its_text(data, body):
    outputs = udp_server().render(Received(1, data, datagram=True))
    assert shown(outputs) == [("data", label(1, f" · {len(data)} bytes")), ("data", body)]


def test_each_datagram_is_decoded_on_its_own():
    renderer = udp_server()
    first = renderer.render(Received(1, b"ok\xe4\xb8", datagram=True))
    second = renderer.render(Received(1, b"\xad", datagram=True))
    assert data_text(first) == label(1, " · 4 bytes") + "ok\\xe4\\xb8\n"
    assert data_text(second) == label(1, " · 1 byte") + "\\xad\n"


def test_datagram_in_gbk_view_uses_the_views_encoding():
    outputs = udp_server(View("text", "gbk")).render(Received(2, b"\xd6\xd0", datagram=True))
    assert data_text(outputs) == label(2, " · 2 bytes") + "中\n"


def test_datagram_in_hex_view_starts_at_offset_zero_every_time():
    renderer = udp_server(HEX)
    first = renderer.render(Received(1, b"A" * 17, datagram=True))
    assert data_text(first) == (
        label(1, " · 17 bytes")
        + hexline(0, "41 41 41 41 41 41 41 41  41 41 41 41 41 41 41 41", "A" * 16)
        + "\n"
        + hexline(0x10, "41", "A")
        + "\n"
    )
    second = renderer.render(Received(1, b"BC", datagram=True))
    assert data_text(second) == label(1, " · 2 bytes") + hexline(0, "42 43", "BC") + "\n"


def test_datagram_hex_offsets_are_dimmed():
    outputs = udp_server(HEX).render(Received(1, b"x", datagram=True))
    assert [(s.start, s.end, s.style) for s in outputs[1].text.spans] == [(0, 8, "netrepl.offset")]


@pytest.mark.parametrize("view", [UTF8, HEX, View("text", "auto")])
def test_an_empty_datagram_still_shows_its_label(view):
    outputs = udp_server(view).render(Received(2, b"", datagram=True))
    assert data_text(outputs) == label(2, " · 0 bytes")


def test_datagram_sizes_are_counted_with_separators():
    renderer = udp_server(HEX)
    assert data_text(renderer.render(Received(1, bytes(1500), datagram=True))).startswith(
        label(1, " · 1,500 bytes")
    )


def test_raw_view_datagram_is_its_bytes_only():
    data = b"\x1b[2J\xff\r\n"
    assert udp_server(RAW).render(Received(1, data, datagram=True)) == [Output("data", raw=data)]


def test_consecutive_datagrams_from_one_sender_each_get_a_label():
    renderer = udp_server()
    outputs = renderer.render(Received(1, b"a", datagram=True))
    outputs += renderer.render(Received(1, b"b", datagram=True))
    assert data_text(outputs) == label(1, " · 1 byte") + "a\n" + label(1, " · 1 byte") + "b\n"


def test_udp_client_datagrams_are_labelled_with_the_peer_alone():
    renderer = ReadByRead(UTF8)
    renderer.render(Connected(1, "192.168.1.60:5000", "192.168.1.10:40000", "udp"))
    outputs = renderer.render(Received(1, b"pong", datagram=True))
    assert data_text(outputs) == "── ← 192.168.1.60:5000 · 4 bytes\npong\n"


def test_a_datagram_label_ends_an_open_text_line_first():
    renderer = server(conns=(1,))
    renderer.render(Connected(2, PEERS[2], LOCAL, "udp", accepted=True))
    renderer.render(Received(1, b"login: "))
    assert shown(renderer.render(Received(2, b"hi", datagram=True))) == [
        ("data", "\n"),
        ("data", label(2, " · 2 bytes")),
        ("data", "hi\n"),
    ]


def test_datagrams_leave_stream_offsets_alone():
    renderer = server(HEX, conns=(1,))
    renderer.render(Received(1, b"ab"))
    renderer.render(Received(1, b"dgram", datagram=True))
    assert data_text(renderer.render(Received(1, b"c"))) == hexline(2, "63", "c") + "\n"


def test_accepted_udp_senders_are_not_counted_as_stream_clients():
    renderer = server(conns=(1,))
    renderer.render(Connected(2, PEERS[2], LOCAL, "udp", accepted=True))
    renderer.render(Connected(3, PEERS[3], LOCAL, "udp", accepted=True))
    assert data_text(renderer.render(Received(1, b"a\n"))) == "a\n"


# ---- Escaping of addresses ----------------------------------------------------------------

EVIL = "evil\x1b]0;pwn\x07"
EVIL_SHOWN = "evil\\x1b]0;pwn\\x07"


def evil_server() -> Renderer:
    renderer = ReadByRead(UTF8)
    renderer.render(Connected(1, EVIL, LOCAL, accepted=True))
    renderer.render(Connected(2, PEERS[2], LOCAL, accepted=True))
    return renderer


def test_a_stream_label_escapes_the_peer():
    outputs = evil_server().render(Received(1, b"x"))
    assert outputs[0].text.plain == f"── #1 {EVIL_SHOWN}\n"
    styles = [(s.start, s.end, s.style) for s in outputs[0].text.spans]
    assert (10, 14, "netrepl.control") in styles


def test_a_datagram_label_escapes_the_peer():
    renderer = ReadByRead(UTF8)
    renderer.render(Connected(1, EVIL, LOCAL, "udp", accepted=True))
    outputs = renderer.render(Received(1, b"x", datagram=True))
    assert data_text(outputs) == f"── ← #1 {EVIL_SHOWN} · 1 byte\nx\n"


def test_status_lines_escape_the_peer():
    renderer = ReadByRead(UTF8)
    assert shown(renderer.render(Connected(1, EVIL, LOCAL, accepted=True))) == [
        ("status", f"#1 connected from {EVIL_SHOWN}")
    ]
    assert shown(renderer.render(HalfClosed(1))) == [
        (
            "status",
            f"sent end of stream to #1 {EVIL_SHOWN}: half-closed, still reading until it closes",
        )
    ]
    tls = TlsEstablished(1, "TLSv1.3", "TLS_AES_128_GCM_SHA256", None, False)
    assert shown(renderer.render(tls)) == [
        ("status", f"#1 {EVIL_SHOWN}: TLSv1.3 TLS_AES_128_GCM_SHA256; no certificate from the peer")
    ]
    assert shown(renderer.render(Closed(1, "closed by peer", 0, 0))) == [
        ("status", f"#1 {EVIL_SHOWN} closed by peer (0 bytes received, 0 sent)")
    ]


def test_listening_address_is_escaped():
    outputs = ReadByRead(UTF8).render(Listening("unix:/tmp/\x1bx", "unix"))
    assert shown(outputs) == [("status", "listening on unix:/tmp/\\x1bx (unix)")]


# ---- Status lines -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("event", "text"),
    [
        (
            Connected(1, "10.0.0.9:80", "10.0.0.1:5000"),
            "connected to 10.0.0.9:80 from 10.0.0.1:5000",
        ),
        (Connected(3, "10.0.0.3:4003", LOCAL, accepted=True), "#3 connected from 10.0.0.3:4003"),
        (
            Connected(2, "unix:(unnamed)", "unix:/tmp/d.sock", "unix", accepted=True),
            "#2 connected from unix:(unnamed)",
        ),
        (
            Connected(1, "unix:/tmp/d.sock", "unix:(unnamed)", "unix"),
            "connected to unix:/tmp/d.sock from unix:(unnamed)",
        ),
        (
            Connected(1, "192.168.1.60:5000", "192.168.1.10:40000", "udp"),
            "sending datagrams to 192.168.1.60:5000 from 192.168.1.10:40000",
        ),
        (
            Connected(4, "192.168.1.60:40000", LOCAL, "udp", accepted=True),
            "#4 datagrams from 192.168.1.60:40000",
        ),
        (Listening("*:9000"), "listening on *:9000 (TCP)"),
        (Listening("*:8443", "tcp", tls=True), "listening on *:8443 (TCP+TLS)"),
        (Listening("*:5000", "udp"), "listening on *:5000 (UDP)"),
        (Listening("unix:/tmp/d.sock", "unix"), "listening on unix:/tmp/d.sock (unix)"),
        (
            Listening("unix:/tmp/d.sock", "unix", tls=True),
            "listening on unix:/tmp/d.sock (unix+TLS)",
        ),
    ],
)
def test_connection_and_listener_status_lines(event, text):
    assert shown(ReadByRead(UTF8).render(event)) == [("status", text)]


LEAF = CertificateInfo(
    subject="CN=www.example.org",
    issuer="CN=Example CA",
    not_before="2025-03-01 00:00 UTC",
    not_after="2026-03-01 00:00 UTC",
    alt_names=("www.example.org", "example.org"),
    days_left=96,
)
CA = CertificateInfo(
    subject="CN=Example CA",
    issuer="CN=Example Root",
    not_before="2020-01-01 00:00 UTC",
    not_after="2030-01-01 00:00 UTC",
)


def one_cert(cert: CertificateInfo) -> TlsEstablished:
    """A client's unverified handshake whose peer sent just `cert`."""
    return TlsEstablished(1, "TLSv1.3", "C", None, False, (cert,))


def client_with_tls(event: TlsEstablished) -> list[tuple[str, str]]:
    renderer = ReadByRead(UTF8)
    renderer.render(Connected(1, "93.184.215.14:443", "192.168.1.10:51234"))
    return shown(renderer.render(event))


@pytest.mark.parametrize(
    ("event", "text"),
    [
        (
            TlsEstablished(1, "TLSv1.3", "TLS_AES_256_GCM_SHA384", None, True, (LEAF, CA)),
            "TLSv1.3 TLS_AES_256_GCM_SHA384; certificate CN=www.example.org,"
            " expires 2026-03-01 00:00 UTC (96 days left); verified",
        ),
        (
            TlsEstablished(1, "TLSv1.2", "ECDHE-RSA-AES128-GCM-SHA256", "h2", False, (LEAF,)),
            "TLSv1.2 ECDHE-RSA-AES128-GCM-SHA256; ALPN h2; certificate CN=www.example.org,"
            " expires 2026-03-01 00:00 UTC (96 days left); NOT verified",
        ),
        (
            TlsEstablished(1, "TLSv1.3", "C", None, True, (CA,)),
            "TLSv1.3 C; certificate CN=Example CA, expires 2030-01-01 00:00 UTC; verified",
        ),
        (
            one_cert(CertificateInfo("", "", "b", "e", ("dev.local",), 0)),
            "TLSv1.3 C; certificate dev.local, expires e (0 days left); NOT verified",
        ),
        (
            one_cert(CertificateInfo("", "", "b", "e")),
            "TLSv1.3 C; certificate (no subject), expires e; NOT verified",
        ),
        (
            one_cert(CertificateInfo("CN=old", "", "b", "e", (), -30)),
            "TLSv1.3 C; certificate CN=old, expires e (EXPIRED 30 days ago); NOT verified",
        ),
        (
            TlsEstablished(1, "TLSv1.3", "C", "http/1.1", False),
            "TLSv1.3 C; ALPN http/1.1; no certificate from the peer",
        ),
    ],
)
def test_tls_status_line_of_a_client(event, text):
    assert client_with_tls(event) == [("status", text)]


def test_tls_status_line_of_an_accepted_client_names_it():
    renderer = server()
    event = TlsEstablished(2, "TLSv1.3", "C", None, True, (LEAF,))
    assert shown(renderer.render(event)) == [
        (
            "status",
            f"#2 {PEERS[2]}: TLSv1.3 C; certificate CN=www.example.org,"
            " expires 2026-03-01 00:00 UTC (96 days left); verified",
        )
    ]


@pytest.mark.parametrize(("days", "shown_as"), [(1, "(1 day left)"), (-1, "(EXPIRED 1 day ago)")])
def test_one_day_is_singular(days, shown_as):
    cert = CertificateInfo("CN=x", "CN=x", "b", "e", (), days)
    assert certificate_lines((cert,))[2] == f"   valid   b .. e {shown_as}"


@pytest.mark.parametrize(
    ("conn", "text"),
    [
        (1, "sent end of stream to 10.0.0.9:80: half-closed, still reading until it closes"),
        (2, f"sent end of stream to #2 {PEERS[2]}: half-closed, still reading until it closes"),
        (7, "sent end of stream to #7: half-closed, still reading until it closes"),
    ],
)
def test_half_closed_status_line(conn, text):
    renderer = ReadByRead(UTF8)
    renderer.render(Connected(1, "10.0.0.9:80", "10.0.0.1:5000"))
    renderer.render(Connected(2, PEERS[2], LOCAL, accepted=True))
    assert shown(renderer.render(HalfClosed(conn))) == [("status", text)]


def test_closed_of_an_accepted_client_is_prefixed_with_its_id_and_address():
    renderer = server()
    assert shown(renderer.render(Closed(2, "closed by peer", 1, 2048))) == [
        ("status", f"#2 {PEERS[2]} closed by peer (1 byte received, 2,048 sent)")
    ]
    assert shown(renderer.render(Closed(1, "connection reset by peer", 0, 0, failed=True))) == [
        ("error", f"#1 {PEERS[1]} connection reset by peer (0 bytes received, 0 sent)")
    ]


def test_closed_of_an_accepted_udp_sender_is_prefixed_too():
    renderer = udp_server()
    assert shown(renderer.render(Closed(1, "forgotten", 3, 0))) == [
        ("status", f"#1 {PEERS[1]} forgotten (3 bytes received, 0 sent)")
    ]


def test_closed_of_an_unknown_connection_has_no_prefix():
    assert shown(ReadByRead(UTF8).render(Closed(9, "closed", 0, 0))) == [
        ("status", "closed (0 bytes received, 0 sent)")
    ]


# ---- Echo of sends ------------------------------------------------------------------------


def test_sent_without_echo_shows_nothing_but_advances_the_offset():
    renderer = server()
    assert renderer.render(Sent(1, b"abc", as_hex=True, echo=False)) == []
    assert renderer.render(Sent(2, b"abcdef", as_hex=False, echo=False)) == []
    assert shown(renderer.render(Sent(1, b"\x01", as_hex=True))) == [
        ("echo", hexline(3, "01", ".") + "\n")
    ]
    assert shown(renderer.render(Sent(2, b"\x02", as_hex=True))) == [
        ("echo", hexline(6, "02", ".") + "\n")
    ]


def test_one_send_to_all_echoes_once_and_each_client_keeps_its_offset():
    renderer = server(conns=(1, 2, 3))
    renderer.render(Sent(1, b"xy", as_hex=True))
    outputs = []
    for conn in (1, 2, 3):
        outputs += renderer.render(Sent(conn, b"\xaa", as_hex=True, echo=conn == 1))
    assert shown(outputs) == [("echo", hexline(2, "aa", ".") + "\n")]
    assert shown(renderer.render(Sent(3, b"\xbb", as_hex=True))) == [
        ("echo", hexline(1, "bb", ".") + "\n")
    ]


# ---- /cert --------------------------------------------------------------------------------


def test_certificate_lines_for_a_chain_of_two():
    assert certificate_lines((LEAF, CA)) == [
        "0: subject CN=www.example.org",
        "   issuer  CN=Example CA",
        "   valid   2025-03-01 00:00 UTC .. 2026-03-01 00:00 UTC (96 days left)",
        "   names   www.example.org, example.org",
        "1: subject CN=Example CA",
        "   issuer  CN=Example Root",
        "   valid   2020-01-01 00:00 UTC .. 2030-01-01 00:00 UTC",
    ]


def test_certificate_lines_for_empty_names_and_an_expired_leaf():
    leaf = CertificateInfo("", "", "2020-01-01", "2021-01-01", (), -400)
    ca = CertificateInfo("CN=CA", "CN=CA", "2019-01-01", "2039-01-01", ("ca.local",), 5000)
    assert certificate_lines((leaf, ca)) == [
        "0: subject (empty)",
        "   issuer  (empty)",
        "   valid   2020-01-01 .. 2021-01-01 (EXPIRED 400 days ago)",
        "1: subject CN=CA",
        "   issuer  CN=CA",
        "   valid   2019-01-01 .. 2039-01-01 (5,000 days left)",
        "   names   ca.local",
    ]


def test_certificate_lines_for_no_chain():
    assert certificate_lines(()) == []


# ---- Property: nothing unsafe reaches the terminal ----------------------------------------


def is_unsafe(char: str) -> bool:
    code = ord(char)
    return (code < 0x20 and char not in "\t\n") or 0x7F <= code <= 0x9F


NON_RAW_VIEWS = st.sampled_from(
    [UTF8, HEX, View("text", "gbk"), View("text", "auto"), View("text", "iso8859-1")]
)
CHUNKS = st.one_of(
    st.binary(max_size=20),
    st.sampled_from([b"\x1b[2J", b"\r", b"\n", b"\xe4", b"\xb8\xad", b"\xc2\x9b", b"\x7f", b""]),
)
PEER_NAMES = st.text(st.one_of(st.characters(), st.integers(0, 0x9F).map(chr)), max_size=12)
RECEIVED = st.builds(Received, st.integers(1, 3), CHUNKS, st.booleans())


@given(
    view=NON_RAW_VIEWS,
    names=st.lists(PEER_NAMES, min_size=3, max_size=3),
    steps=st.lists(st.one_of(RECEIVED, NON_RAW_VIEWS.map(ViewChanged)), max_size=30),
)
def test_no_output_from_three_clients_holds_a_raw_control_character(view, names, steps):
    renderer = ReadByRead(view)
    events = [Connected(conn, name, LOCAL, accepted=True) for conn, name in enumerate(names, 1)]
    events += steps
    events += [Closed(conn, "closed by peer", 0, 0) for conn in (1, 2, 3)]
    for event in events:
        for out in renderer.render(event):
            assert out.text is not None and out.raw == b""
            assert not [char for char in out.text.plain if is_unsafe(char)], out.text.plain


@given(view=NON_RAW_VIEWS, steps=st.lists(RECEIVED, max_size=30))
def test_every_label_starts_a_line(view, steps):
    renderer = server(view, conns=(1, 2, 3))
    transcript = ""
    for event in steps:
        for out in renderer.render(event):
            if out.text.style == "netrepl.label":
                assert transcript == "" or transcript.endswith("\n"), transcript
            transcript += out.text.plain


# ---- a kind the renderer has never heard of --------------------------------------------------


def test_a_new_listening_kind_is_named_by_its_own_title():
    outputs = Renderer(UTF8).render(Listening("/dev/ttyUSB0", "serial", False, "serial"))
    assert data_text(outputs) == "" and outputs[0].text.plain == (
        "listening on /dev/ttyUSB0 (serial)"
    )
    old = Renderer(UTF8).render(Listening("*:9", "multicast"))  # an old transcript: no title
    assert old[0].text.plain == "listening on *:9 (multicast)"


def test_a_datagram_kind_other_than_udp_is_shown_as_datagrams():
    renderer = server(conns=(1,))
    renderer.render(Connected(2, PEERS[2], LOCAL, "multicast", accepted=True, datagram=True))
    renderer.render(Connected(3, PEERS[3], LOCAL, "multicast", accepted=True, datagram=True))
    assert data_text(renderer.render(Received(1, b"a\n"))) == "a\n"  # senders, not clients
