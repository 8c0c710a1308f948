"""netrepl as a WebSocket server (`-l [HOST] PORT --ws`), driven over stdin, with clients
written with `websockets`: ids, /to, /clients, /kick, subprotocols, --max-clients, pings,
a client that is not a WebSocket, wss."""

from __future__ import annotations

import socket
import ssl

import pytest
import trustme
from websockets.exceptions import ConnectionClosed, InvalidMessage, InvalidStatus
from websockets.sync.client import connect

from tests.net.conftest import WAIT

LISTEN = ("-l", "127.0.0.1", "0", "--ws", "--linger", "600")


def url(port: int, path: str = "/", scheme: str = "ws") -> str:
    return f"{scheme}://127.0.0.1:{port}{path}"


def test_a_client_message_is_shown_and_a_typed_line_reaches_it(start_netrepl):
    run = start_netrepl(*LISTEN)
    port = run.listening_port("WebSocket")
    with connect(url(port, "/feed"), open_timeout=WAIT) as client:
        run.wait_stderr(b"#1 connected from 127.0.0.1:")
        run.wait_stderr(b"upgraded to WebSocket: /feed")
        client.send("hi there")
        run.wait_stdout(b"text message, 8 bytes\nhi there\n")
        run.write(b"hello client\n")
        assert client.recv(WAIT) == "hello client"
        run.write(b"/x 00 ff\n")
        assert client.recv(WAIT) == b"\x00\xff"
        client.send(b"\x01\x02")
        run.wait_stdout(b"binary message, 2 bytes\n\\x01\\x02\n")
    run.wait_stderr(b"closed by peer: 1000 normal closure")
    run.kill()


def test_to_clients_and_kick_choose_among_several(start_netrepl):
    run = start_netrepl(*LISTEN)
    port = run.listening_port("WebSocket")
    with (
        connect(url(port, "/a"), open_timeout=WAIT) as first,
        connect(url(port, "/b"), open_timeout=WAIT) as second,
    ):
        run.wait_stderr(b"upgraded to WebSocket: /a")
        run.wait_stderr(b"upgraded to WebSocket: /b")
        run.write(b"to all\n")
        assert first.recv(WAIT) == "to all"
        assert second.recv(WAIT) == "to all"
        run.write(b"/to 2\nonly two\n/clients\n")
        assert second.recv(WAIT) == "only two"
        run.wait_stderr(b"#2 ")
        run.write(b"/kick 1\n")
        with pytest.raises(ConnectionClosed):
            first.recv(WAIT)
        assert first.close_code == 1000
        run.wait_stderr_match(rb"#1 127\.0\.0\.1:\d+ closed: 1000 normal closure")
    run.kill()


def test_the_server_chooses_its_first_subprotocol_the_client_offers(start_netrepl):
    run = start_netrepl(*LISTEN, "--subprotocol", "v2", "--subprotocol", "v1")
    port = run.listening_port("WebSocket")
    with connect(url(port), subprotocols=["v1", "v2"], open_timeout=WAIT) as client:
        assert client.subprotocol == "v2"
        run.wait_stderr(b"upgraded to WebSocket: /, subprotocol v2")
    run.kill()


def test_max_clients_refuses_one_more(start_netrepl):
    run = start_netrepl(*LISTEN, "--max-clients", "1")
    port = run.listening_port("WebSocket")
    with connect(url(port), open_timeout=WAIT):
        run.wait_stderr(b"upgraded to WebSocket")
        refused = (
            ConnectionError,
            OSError,
            InvalidStatus,
            InvalidMessage,
            EOFError,
            ConnectionClosed,
        )
        with pytest.raises(refused):
            connect(url(port), open_timeout=WAIT)
        run.wait_stderr(b"(--max-clients 1)")
    run.kill()


def test_a_client_that_is_not_a_websocket_gets_400_and_the_listener_goes_on(start_netrepl):
    run = start_netrepl(*LISTEN)
    port = run.listening_port("WebSocket")
    with socket.create_connection(("127.0.0.1", port), timeout=WAIT) as plain:
        plain.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        answer = b""
        while chunk := plain.recv(4096):
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 400 ")
    run.wait_stderr(b"not a WebSocket upgrade: ")
    with connect(url(port), open_timeout=WAIT) as client:
        client.send("still here")
        run.wait_stdout(b"still here\n")
    run.kill()


def test_a_client_gone_without_a_close_frame_is_said(start_netrepl):
    run = start_netrepl(*LISTEN)
    port = run.listening_port("WebSocket")
    client = connect(url(port), open_timeout=WAIT)
    run.wait_stderr(b"upgraded to WebSocket")
    client.socket.shutdown(socket.SHUT_RDWR)
    client.socket.close()
    run.wait_stderr(b"connection closed by peer without a close frame (1006 abnormal closure)")
    run.kill()


def test_a_clients_ping_is_answered_and_shown(start_netrepl):
    run = start_netrepl(*LISTEN)
    port = run.listening_port("WebSocket")
    with connect(url(port), open_timeout=WAIT) as client:
        assert client.ping(b"are you there").wait(WAIT)
        run.wait_stderr(b"ping 'are you there' from the peer (answered)")
        run.write(b"/ping back\n")
        run.wait_stderr_match(rb"#1 127\.0\.0\.1:\d+ pong 'back' in [\d.]+ ms")
    run.kill()


def test_close_with_a_code_closes_every_client_and_stops_listening(start_netrepl):
    run = start_netrepl(*LISTEN)
    port = run.listening_port("WebSocket")
    with connect(url(port), open_timeout=WAIT) as client:
        run.wait_stderr(b"upgraded to WebSocket")
        run.write(b"/close 1001 maintenance\n")
        with pytest.raises(ConnectionClosed):
            client.recv(WAIT)
        assert (client.close_code, client.close_reason) == (1001, "maintenance")
    run.wait_stderr(b"stopped listening on")
    run.kill()


def test_once_ends_batch_mode_when_the_websocket_client_leaves(start_netrepl):
    run = start_netrepl("-l", "127.0.0.1", "0", "--ws", "--once")
    port = run.listening_port("WebSocket")
    run.close_stdin()
    with connect(url(port), open_timeout=WAIT) as client:
        client.send("bye")
        run.wait_stdout(b"bye\n")
    run.process.wait(WAIT)
    assert run.process.returncode == 0


def test_wss_server_with_a_certificate(start_netrepl, tmp_path):
    ca = trustme.CA()
    server = ca.issue_cert("127.0.0.1")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    server.cert_chain_pems[0].write_to_path(str(cert))
    server.private_key_pem.write_to_path(str(key))
    run = start_netrepl(*LISTEN, "--tls", "--cert", str(cert), "--key", str(key))
    port = run.listening_port("WebSocket+TLS")
    context = ssl.create_default_context()
    ca.configure_trust(context)
    with connect(url(port, "/s", "wss"), ssl=context, open_timeout=WAIT) as client:
        client.send("over tls")
        run.wait_stdout(b"over tls\n")
        run.write(b"back\n")
        assert client.recv(WAIT) == "back"
    run.kill()


def test_sendfile_reaches_every_client_as_one_message(start_netrepl, tmp_path):
    import os

    data = os.urandom(200_000)
    path = tmp_path / "blob.bin"
    path.write_bytes(data)
    run = start_netrepl(*LISTEN)
    port = run.listening_port("WebSocket")
    with (
        connect(url(port), open_timeout=WAIT, max_size=None) as first,
        connect(url(port), open_timeout=WAIT, max_size=None) as second,
    ):
        run.wait_stderr(b"#2 ")
        run.wait_stderr_match(rb"(?s)upgraded to WebSocket.*upgraded to WebSocket")
        run.write(f"/sendfile {path} --chunk 50000\nnext\n".encode())
        for client in (first, second):
            assert client.recv(WAIT) == data
            assert client.recv(WAIT) == "next"
    run.kill()
