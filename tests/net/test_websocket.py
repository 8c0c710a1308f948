"""WebSocket client over loopback, as a user drives it in batch mode, against peers written
with `websockets` (tests/ws_peers.py): messages, subprotocols, headers, refusals, closes,
pings, fragments, large messages, TLS, logs, scripts and reconnects.
"""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest
import trustme

from tests.net.conftest import run_netrepl
from tests.transcripts import records as read_records
from tests.ws_peers import (
    SilentWebSocketPeer,
    big_binary,
    close_after_first,
    echo,
    fragments,
    greet_then_echo,
    json_api,
    running,
)


def test_each_typed_line_is_one_text_message_without_an_end_of_line():
    with running(echo) as peer:
        done = run_netrepl(peer.url("/chat"), stdin=b"hello\nsecond line\n")
        assert done.returncode == 0, done.stderr
        peer.seen.wait(lambda s: len(s.messages) == 2, "two messages")
        assert peer.seen.messages == ["hello", "second line"]
        assert peer.seen.paths == ["/chat"]
    assert done.stdout == (
        b"\xe2\x94\x80\xe2\x94\x80 \xe2\x86\x90 text message, 5 bytes\nhello\n"
        b"\xe2\x94\x80\xe2\x94\x80 \xe2\x86\x90 text message, 11 bytes\nsecond line\n"
    )
    assert b"upgraded to WebSocket: /chat" in done.stderr
    assert b"closed: 1000 normal closure" in done.stderr


def test_eol_adds_an_end_of_line_only_when_asked():
    with running(echo) as peer:
        done = run_netrepl(peer.url(), "--eol", "crlf", stdin=b"a\n/eol none\nb\n")
        assert done.returncode == 0, done.stderr
        peer.seen.wait(lambda s: len(s.messages) == 2, "two messages")
        assert peer.seen.messages == ["a\r\n", "b"]


def test_hex_input_and_bytes_that_are_not_utf8_go_as_binary_messages():
    with running(echo) as peer:
        done = run_netrepl(peer.url(), stdin=b"/x 01 02 ff\n\\xff\\xfe\nplain\n")
        assert done.returncode == 0, done.stderr
        peer.seen.wait(lambda s: len(s.messages) == 3, "three messages")
        assert peer.seen.messages == [b"\x01\x02\xff", b"\xff\xfe", "plain"]
    assert b"binary message, 3 bytes\n\\x01\\x02\\xff\n" in done.stdout
    assert b"binary message, 2 bytes" in done.stdout


def test_the_hex_view_shows_a_binary_message_as_a_hexdump():
    with running(echo) as peer:
        done = run_netrepl(peer.url(), "--view", "hex", stdin=b"/x 00 41 42\n")
    assert b"binary message, 3 bytes\n00000000  00 41 42" in done.stdout


def test_the_raw_view_writes_the_messages_bytes_only():
    with running(json_api) as peer:
        done = run_netrepl(peer.url(), "--view", "raw", stdin=b'{"op":"ping"}\n')
    assert done.stdout == b'{"op": "pong", "n": 1}'


def test_batch_prints_the_reply_of_a_json_api_and_exits():
    with running(json_api) as peer:
        done = run_netrepl(peer.url("/ws"), stdin=b'{"op":"ping"}\n')
        peer.seen.wait(lambda s: s.messages == ['{"op":"ping"}'], "the request")
    assert done.returncode == 0, done.stderr
    assert done.stdout.endswith(b'\n{"op": "pong", "n": 1}\n')


def test_a_message_sent_in_fragments_is_shown_once_whole():
    with running(fragments) as peer:
        done = run_netrepl(peer.url(), stdin=b"x\n")
    assert "text message, 6 bytes\nabcdé\n".encode() in done.stdout
    assert done.stdout.count("──".encode()) == 2  # the fragments' message, then the echo


def test_subprotocols_are_offered_and_the_chosen_one_is_shown():
    with running(echo, subprotocols=["v2.chat", "chat"]) as peer:
        done = run_netrepl(
            peer.url(), "--subprotocol", "chat", "--subprotocol", "v2.chat", stdin=b"hi\n"
        )
        peer.seen.wait(lambda s: s.subprotocols, "a subprotocol")
        assert peer.seen.headers[0]["sec-websocket-protocol"] == "chat, v2.chat"
        assert peer.seen.subprotocols == ["v2.chat"]
    assert b"upgraded to WebSocket: /, subprotocol v2.chat" in done.stderr


def test_headers_and_origin_go_in_the_upgrade_request():
    with running(echo) as peer:
        done = run_netrepl(
            peer.url("/a?b=1"),
            "-H",
            "Authorization: Bearer t0k",
            "--header",
            "X-Device:  7 ",
            "--origin",
            "https://example.org",
            stdin=b"hi\n",
        )
        assert done.returncode == 0, done.stderr
        peer.seen.wait(lambda s: s.headers, "the request")
        headers = peer.seen.headers[0]
        assert peer.seen.paths == ["/a?b=1"]
    assert headers["authorization"] == "Bearer t0k"
    assert headers["x-device"] == "7"
    assert headers["origin"] == "https://example.org"
    assert headers["host"] == f"127.0.0.1:{peer.port}"


def test_a_refused_upgrade_shows_the_status_and_headers_and_exits_1():
    refuse = (403, "no token\x1b[31m here\n", {"X-Reason": "token missing"})
    with running(echo, refuse=refuse) as peer:
        done = run_netrepl(peer.url("/private"), stdin=b"hi\n")
    assert done.returncode == 1
    lines = done.stderr.decode().splitlines()
    assert lines[0] == (
        f"netrepl: cannot connect to ws://127.0.0.1:{peer.port}/private:"
        " the server refused the WebSocket upgrade:"
    )
    assert lines[1] == "  HTTP/1.1 403 Forbidden"
    assert "  X-Reason: token missing" in lines
    assert "  | no token\\x1b[31m here" in lines  # escaped, never raw
    assert "\x1b" not in done.stderr.decode()
    assert done.stdout == b""


def test_a_server_that_never_answers_the_upgrade_times_out_in_one_line():
    peer = SilentWebSocketPeer(answer_upgrade=False).start()
    try:
        done = run_netrepl(peer.url(), "--connect-timeout", "0.5", stdin=b"hi\n")
    finally:
        peer.stop()
    assert done.returncode == 1
    assert done.stderr.decode().strip() == (
        f"netrepl: cannot connect to ws://127.0.0.1:{peer.port}/: no answer to the WebSocket"
        " upgrade within 0.5 s (--connect-timeout)"
    )


def test_a_close_from_the_peer_shows_its_code_name_and_reason():
    with running(close_after_first(1008, "no token")) as peer:
        done = run_netrepl(peer.url(), stdin=b"hello\n", timeout=20)
        peer.seen.wait(lambda s: s.closes, "the close")
        assert peer.seen.closes == [(1008, "no token")]
    assert b"closed by peer: 1008 policy violation: 'no token'" in done.stderr
    assert done.returncode == 0


def test_close_with_a_code_and_reason_reaches_the_peer():
    with running(echo) as peer:
        done = run_netrepl(peer.url(), stdin=b"hi\n/close 4001 done for today\n")
        peer.seen.wait(lambda s: s.closes, "the close")
        assert peer.seen.closes == [(4001, "done for today")]
    assert b"closed: 4001 application code: 'done for today'" in done.stderr


@pytest.mark.parametrize(
    ("line", "error"),
    [
        (
            "/close 1005",
            "/close: close code 1005 cannot be sent: use 1000-1003, 1007-1014 or 3000-4999"
            " (1005, 1006 and 1015 are only ever reported, never sent)",
        ),
        (
            "/close 99999",
            "/close CODE: '99999' is not a whole number of a close code from 0 to 65,535",
        ),
        (
            "/close 1e300",
            "/close CODE: '1e300' is not a whole number of a close code from 0 to 65,535",
        ),
        ("/close -1 x", "/close CODE: '-1' is not a whole number of a close code from 0 to 65,535"),
        ("/close 1000 " + "x" * 124, "/close: a close reason is at most 123 bytes of UTF-8"),
        ("/ping " + "x" * 126, "/ping: a ping carries at most 125 bytes, not 126"),
        ("/eof", "/eof: a WebSocket has no half-close; /close [CODE [REASON]] sends a close frame"),
    ],
)
def test_bad_control_commands_are_one_line_and_stop_a_batch_run_with_2(line, error):
    with running(echo) as peer:
        done = run_netrepl(peer.url(), stdin=f"first\n{line}\nafter\n".encode())
        peer.seen.wait(lambda s: s.closes, "the close")
        assert peer.seen.messages == ["first"]  # nothing of the bad line, nothing after it
    assert done.returncode == 2
    assert f"netrepl: stdin line 2: {error}\n".encode() in done.stderr
    assert b"Traceback" not in done.stderr


@pytest.mark.parametrize(
    ("line", "error"),
    [
        ("/ping", "/ping: only a WebSocket (ws://, -l PORT --ws) has pings"),
        (
            "/close 1000 x",
            "/close CODE REASON: only a WebSocket closes with a code; /close alone closes",
        ),
    ],
)
def test_websocket_commands_on_tcp_say_what_they_are_for(redis_peer, line, error):
    done = run_netrepl(*redis_peer.args, stdin=f"{line}\nPING\n".encode())
    assert done.returncode == 2
    assert f"netrepl: stdin line 1: {error}\n".encode() in done.stderr


def test_ping_shows_the_pong_with_its_round_trip():
    with running(echo) as peer:
        done = run_netrepl(peer.url(), stdin=b"/ping hello\\x01\n")
    assert done.returncode == 0, done.stderr
    assert b"netrepl: pong 'hello\\x01' in " in done.stderr
    assert b" ms\n" in done.stderr


def test_ping_interval_pings_by_itself():
    with running(echo) as peer:
        done = run_netrepl(peer.url(), "--ping-interval", "0.05", "--linger", "0.5", stdin=b"hi\n")
    assert done.returncode == 0, done.stderr
    assert done.stderr.count(b"netrepl: pong 'netrepl ") >= 2


def test_an_unanswered_ping_closes_the_connection_after_the_timeout():
    peer = SilentWebSocketPeer().start()
    try:
        done = run_netrepl(
            peer.url(),
            "--ping-interval",
            "0.1",
            "--ping-timeout",
            "0.3",
            "--linger",
            "5",
            stdin=b"hi\n",
        )
    finally:
        peer.stop()
    assert b"no pong within 0.3 s (--ping-timeout): closed" in done.stderr
    assert done.returncode == 1


def test_a_message_larger_than_max_message_is_shown_truncated_and_logged_whole(tmp_path):
    log = tmp_path / "big.jsonl"
    size = 50_000
    with running(big_binary(size)) as peer:
        done = run_netrepl(peer.url(), "--max-message", "8000", "--log", str(log), stdin=b"go\n")
    assert done.returncode == 0, done.stderr
    assert b"binary message larger than --max-message, its first" in done.stdout
    assert b"binary message of 50,000 bytes in all: only its start is shown" in done.stderr
    records = read_records(log)
    pieces = [r for r in records if r["type"] == "received"]
    assert len(pieces) > 1
    assert all(r["message"] == "binary" for r in pieces)
    assert [r.get("more", False) for r in pieces] == [True] * (len(pieces) - 1) + [False]
    import base64

    whole = b"".join(base64.b64decode(r["data"]) for r in pieces)
    assert whole == bytes(range(256)) * (size // 256) + b"\x00" * (size % 256)
    replayed = run_netrepl("replay", str(log))
    assert replayed.returncode == 0
    assert b"binary message of 50,000 bytes in all" in replayed.stderr


def test_the_log_keeps_message_types_the_upgrade_and_control_frames(tmp_path):
    log = tmp_path / "s.jsonl"
    with running(greet_then_echo) as peer:
        done = run_netrepl(peer.url("/x"), "--log", str(log), stdin=b"hi\n/x 00\n/ping p\n")
    assert done.returncode == 0, done.stderr
    records = read_records(log)
    kinds = [(r["type"], r.get("message") or r.get("opcode")) for r in records]
    assert kinds[:2] == [("connected", None), ("upgraded", None)]
    assert ("received", "text") in kinds
    assert ("sent", "text") in kinds
    assert ("sent", "binary") in kinds
    assert ("control", "ping") in kinds
    assert ("control", "pong") in kinds
    assert kinds[-1] == ("closed", None)
    upgraded = next(r for r in records if r["type"] == "upgraded")
    assert upgraded["target"] == "/x"
    replayed = run_netrepl("replay", str(log))
    assert replayed.stdout == done.stdout


def test_expect_and_when_work_on_messages(tmp_path):
    script = tmp_path / "s.nrs"
    script.write_text("/when ^welcome$ -> hello back\n")
    with running(greet_then_echo) as peer:
        done = run_netrepl(
            peer.url(), "--script", str(script), stdin=b"/expect ^hello back$\nlast\n"
        )
        peer.seen.wait(lambda s: s.messages == ["hello back", "last"], "the reply, then last")
    assert done.returncode == 0, done.stderr


def test_expect_that_times_out_exits_3():
    with running(echo) as peer:
        done = run_netrepl(peer.url(), stdin=b"one\n/expect never 0.3\n")
    assert done.returncode == 3


def test_reconnect_upgrades_again_and_runs_on_connect(tmp_path):
    login = tmp_path / "login.nrs"
    login.write_text("login\n")
    connections = []

    def first_closes_then_echo(connection, seen):
        connections.append(connection)
        if len(connections) == 1:
            close_after_first(1001, "restart")(connection, seen)
        else:
            echo(connection, seen)

    with running(first_closes_then_echo) as peer:
        done = run_netrepl(
            peer.url(),
            "--reconnect",
            "0.1",
            "--on-connect",
            str(login),
            stdin=b"/expect ^login$ 10\nafter\n",
            timeout=20,
        )
        peer.seen.wait(lambda s: "after" in s.messages, "the line after the reconnect")
    assert done.returncode == 0, done.stderr
    assert peer.seen.messages[:2] == ["login", "login"]
    assert b"closed by peer: 1001 going away: 'restart'" in done.stderr
    assert done.stderr.count(b"upgraded to WebSocket") == 2


# ---- TLS: wss://


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory):
    folder: Path = tmp_path_factory.mktemp("wss")
    ca = trustme.CA()
    server = ca.issue_cert("localhost", "127.0.0.1")
    ca_path = folder / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_path))
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.configure_cert(context)
    cert = folder / "server.pem"
    key = folder / "server.key"
    server.cert_chain_pems[0].write_to_path(str(cert))
    server.private_key_pem.write_to_path(str(key))
    return str(ca_path), context, str(cert), str(key)


def test_wss_verifies_the_certificate_with_cafile(tls_files):
    ca, context, _, _ = tls_files
    with running(echo, ssl_context=context) as peer:
        done = run_netrepl(peer.url("/s", scheme="wss"), "--cafile", ca, stdin=b"secure\n")
        peer.seen.wait(lambda s: s.messages == ["secure"], "the message")
    assert done.returncode == 0, done.stderr
    assert b"TLS" in done.stderr and b"verified" in done.stderr
    assert b"text message, 6 bytes\nsecure\n" in done.stdout


def test_wss_refuses_an_unknown_certificate(tls_files):
    _, context, _, _ = tls_files
    with running(echo, ssl_context=context) as peer:
        done = run_netrepl(peer.url(scheme="wss"), stdin=b"secure\n")
    assert done.returncode == 1
    assert b"certificate verify failed" in done.stderr
    assert done.stderr.count(b"\n") == 1


def test_wss_with_insecure_is_warned(tls_files):
    _, context, _, _ = tls_files
    with running(echo, ssl_context=context) as peer:
        done = run_netrepl(peer.url(scheme="wss"), "--insecure", stdin=b"x\n")
    assert done.returncode == 0, done.stderr
    assert b"--insecure: the certificate was not verified" in done.stderr


# ---- the address


@pytest.mark.parametrize(
    ("url", "error"),
    [
        ("ws://127.0.0.1:99999/", "bad URL 'ws://127.0.0.1:99999/': Port out of range 0-65535"),
        ("ws://u:p@127.0.0.1/", "credentials go in a header (-H 'Authorization: ...')"),
        ("ws://127.0.0.1/#top", "a WebSocket URL has no #fragment"),
        ("ws:///path", "it names no host"),
        ("ws://a\x7fb/", "it holds a control character"),
        ("ws://" + "a" * 64 + ".example/", "each dot-separated part of a name must be 1 to 63"),
    ],
)
def test_a_bad_url_is_one_line(url, error):
    done = run_netrepl(url, stdin=b"")
    assert done.returncode == 2
    assert error in done.stderr.decode()
    assert done.stderr.count(b"\n") == 1


def test_a_url_with_a_port_after_it_is_refused():
    done = run_netrepl("ws://127.0.0.1:1/", "80", stdin=b"")
    assert done.returncode == 2
    assert b"carries its port: give no PORT after a URL" in done.stderr


def test_a_refused_connection_names_the_url():
    with running(echo) as peer:
        port = peer.port
    done = run_netrepl(f"ws://127.0.0.1:{port}/x", stdin=b"hi\n")
    assert done.returncode == 1
    assert done.stderr.decode().startswith(f"netrepl: cannot connect to ws://127.0.0.1:{port}/x:")


@pytest.mark.parametrize(
    ("frame", "said"),
    [
        (b"\x81\x02\xff\xfe", "1007 invalid payload"),  # a text message that is not UTF-8
        (b"\xf1\x00", "1002 protocol error"),  # reserved bits set
    ],
)
def test_a_peer_that_breaks_the_protocol_is_closed_with_the_reason(frame, said):
    peer = SilentWebSocketPeer(then_send=frame).start()
    try:
        done = run_netrepl(peer.url(), "--linger", "5", stdin=b"")
    finally:
        peer.stop()
    assert done.returncode == 1
    assert f"the peer broke the WebSocket protocol: {said}".encode() in done.stderr
    assert b"Traceback" not in done.stderr
    # netrepl said why in a close frame of its own (masked: the client's).
    assert peer.received[:1] == b"\x88"


# ---- through a proxy


@pytest.mark.parametrize(("schemes", "scheme"), [("socks5", "socks5h"), ("http", "http")])
def test_a_websocket_goes_through_a_real_proxy(schemes, scheme):
    from tests.proxies import real_proxy

    with real_proxy(schemes) as proxy, running(echo) as peer:
        target = peer.url("/via").replace("127.0.0.1", "localhost")
        done = run_netrepl(
            target, "--proxy", proxy.url(scheme), stdin=b"through\n/expect ^through$\n"
        )
        peer.seen.wait(lambda s: s.messages == ["through"], "the message")
        assert peer.seen.headers[0]["host"] == f"localhost:{peer.port}"
    assert done.returncode == 0, done.stderr
    assert f"via {scheme.rstrip('h')} proxy 127.0.0.1:{proxy.port}".encode() in done.stderr
    assert b"upgraded to WebSocket: /via" in done.stderr


def test_wss_through_a_proxy_checks_the_targets_name(tls_files):
    from tests.proxies import real_proxy

    ca, context, _, _ = tls_files
    with real_proxy("socks5") as proxy, running(echo, ssl_context=context) as peer:
        done = run_netrepl(
            peer.url(scheme="wss").replace("127.0.0.1", "localhost"),
            "--proxy",
            proxy.url("socks5h"),
            "--cafile",
            ca,
            stdin=b"tls\n/expect ^tls$\n",
        )
    assert done.returncode == 0, done.stderr
    assert b"verified" in done.stderr


# ---- a file is one message


def test_sendfile_sends_the_file_as_one_binary_message_in_frames(tmp_path):
    import hashlib
    import os

    data = os.urandom(300_000)
    path = tmp_path / "firmware.bin"
    path.write_bytes(data)
    log = tmp_path / "s.jsonl"
    with running(echo) as peer:
        done = run_netrepl(
            peer.url(),
            "--view",
            "raw",
            "--log",
            str(log),
            stdin=f"before\n/sendfile {path} --chunk 100000\nafter\n".encode(),
        )
        peer.seen.wait(lambda s: len(s.messages) == 3, "three messages")
        before, whole, after = peer.seen.messages
    assert done.returncode == 0, done.stderr
    assert (before, after) == ("before", "after")
    assert hashlib.sha256(whole).digest() == hashlib.sha256(data).digest()
    assert b"sendfile firmware.bin: sent, 300,000 bytes of 300,000" in done.stderr
    sent = read_records(log)
    sent = [r for r in sent if r["type"] == "sent"]
    assert [(r["message"], r.get("more", False)) for r in sent] == [
        ("text", False),
        ("binary", True),
        ("binary", True),
        ("binary", True),
        ("binary", False),  # the message's end: its last, empty, frame
        ("text", False),
    ]


def test_an_empty_file_is_an_empty_message(tmp_path):
    path = tmp_path / "empty.bin"
    path.write_bytes(b"")
    with running(echo) as peer:
        done = run_netrepl(peer.url(), stdin=f"/sendfile {path}\nafter\n".encode())
        peer.seen.wait(lambda s: len(s.messages) == 2, "two messages")
        assert peer.seen.messages == [b"", "after"]
    assert done.returncode == 0, done.stderr


def test_raw_stdin_is_one_binary_message():
    payload = bytes(range(256)) * 1000
    with running(echo) as peer:
        done = run_netrepl(peer.url(), "--stdin", "raw", "-q", stdin=payload)
        peer.seen.wait(lambda s: s.messages, "the message")
        assert peer.seen.messages == [payload]
    assert done.returncode == 0, done.stderr


def test_a_peer_pinging_every_5_ms_during_a_large_wss_send_and_our_close(tls_files, tmp_path):
    """Pongs made while TLS records of the file wait to be written go after them (records
    carry their sequence numbers); a ping that comes after our close gets no pong (nothing
    may follow a close) and is no error."""
    import hashlib
    import os

    ca, context, _, _ = tls_files
    data = os.urandom(8_000_000)
    path = tmp_path / "big.bin"
    path.write_bytes(data)

    def count(connection, seen):
        for message in connection:
            digest = isinstance(message, bytes)
            seen.note(messages=hashlib.sha256(message).hexdigest() if digest else message)

    with running(count, ssl_context=context, ping_interval=0.005) as peer:
        done = run_netrepl(
            peer.url(scheme="wss"),
            "--cafile",
            ca,
            stdin=f"/sendfile {path} --chunk 65536\nlast\n".encode(),
            timeout=60,
        )
        peer.seen.wait(lambda s: len(s.messages) == 2, "the file and the last line", 30)
        assert peer.seen.messages == [hashlib.sha256(data).hexdigest(), "last"]
    assert done.returncode == 0, done.stderr
    ending = b"closed: 1000 normal closure (0 bytes received, 8,000,004 sent)\n"
    assert done.stderr.endswith(ending)


# ---- /connect to a URL


def test_connect_to_a_websocket_url_from_a_tcp_session(redis_peer):
    with running(echo) as peer:
        done = run_netrepl(
            *redis_peer.args,
            stdin=f"PING\n/expect PONG\n/connect {peer.url('/other')}\nhello\n".encode(),
        )
        # The session's end of line goes on (the toolbar says which): /eol none drops it.
        peer.seen.wait(lambda s: s.messages == ["hello\n"], "hello, as a message")
        assert peer.seen.paths == ["/other"]
    assert done.returncode == 0, done.stderr
    assert b"upgraded to WebSocket: /other" in done.stderr


def test_connect_to_another_path_keeps_the_handshakes_headers():
    with running(echo) as first, running(echo) as second:
        done = run_netrepl(
            first.url("/a"),
            "-H",
            "X-Token: 7",
            stdin=f"one\n/connect {second.url('/b?x=1')}\ntwo\n".encode(),
        )
        second.seen.wait(lambda s: s.messages == ["two"], "two")
        assert second.seen.paths == ["/b?x=1"]
        assert second.seen.headers[0]["x-token"] == "7"
    assert done.returncode == 0, done.stderr


def test_connect_with_a_host_alone_says_what_it_takes(redis_peer):
    done = run_netrepl(*redis_peer.args, stdin=b"/connect example.org\n")
    assert done.returncode == 2
    assert (
        b"/connect: give HOST PORT, or an address such as ws[s]://HOST[:PORT]/PATH\n" in done.stderr
    )
