"""Messages that say what to do: a failure the user can fix names the fix (the flag, the
escape), not only what OpenSSL or the parser called it.

The real program in batch mode against real loopback peers: a plaintext server, a silent one,
TLS servers whose certificates the client cannot trust.
"""

from __future__ import annotations

import contextlib
import datetime
import ipaddress
import socket
import ssl
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import trustme
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.net.conftest import WAIT, ScriptedServer, run_netrepl


def error_lines(result) -> list[str]:
    lines = result.stderr.decode("utf-8", "backslashreplace").splitlines()
    return [line for line in lines if not line.startswith("netrepl: connected to ")]


# ---- TLS to a port that does not speak it ---------------------------------------------------


def http_script(server: ScriptedServer, sock: socket.socket) -> None:
    """A plaintext server: whatever comes, an HTTP error, then hang up (nginx on port 80)."""
    sock.recv(4096)
    sock.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")


def test_tls_to_a_plaintext_server_says_the_port_does_not_speak_tls(make_server):
    server = make_server(http_script)
    result = run_netrepl("--tls", *server.args)
    assert result.returncode == 1
    assert error_lines(result) == [
        f"netrepl: TLS handshake with 127.0.0.1:{server.port} failed: wrong version number:"
        " the port does not seem to speak TLS (a plaintext service? try without --tls)"
    ]


@pytest.fixture
def silent_listener() -> Iterator[int]:
    """Accepts (the kernel does) and never says a word."""
    with socket.create_server(("127.0.0.1", 0)) as listener:
        yield listener.getsockname()[1]


def test_tls_to_a_silent_server_says_no_tls_answer_came(silent_listener):
    result = run_netrepl("--tls", "--connect-timeout", "0.5", "127.0.0.1", str(silent_listener))
    assert result.returncode == 1
    assert error_lines(result) == [
        f"netrepl: TLS handshake with 127.0.0.1:{silent_listener} failed: no TLS answer came"
        " (the handshake timed out after 0.5 s): does this port speak TLS?"
    ]


# ---- certificates the client cannot trust ----------------------------------------------------


class OneShotTlsServer:
    """Serves TLS handshakes with a given certificate chain until closed; what the client
    makes of the certificate is the test's business."""

    def __init__(self, chain: str, key: str) -> None:
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.context.load_cert_chain(chain, key)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(WAIT)
        self.port = self.listener.getsockname()[1]
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        with contextlib.suppress(OSError):
            sock, _ = self.listener.accept()
            sock.settimeout(WAIT)
            with contextlib.suppress(OSError), self.context.wrap_socket(sock, server_side=True):
                pass  # the client gives up during the handshake

    def close(self) -> None:
        self.listener.close()
        self.thread.join(WAIT)


def self_signed(folder: Path) -> tuple[str, str]:
    """A self-signed certificate for 127.0.0.1 (no CA anywhere), and its key."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "device.local")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = folder / "self.pem", folder / "self.key"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return str(cert_path), str(key_path)


def private_ca(folder: Path) -> tuple[str, str, str]:
    """A certificate for 127.0.0.1 from a private CA: (chain, key, the CA's certificate)."""
    ca = trustme.CA()
    issued = ca.issue_cert("127.0.0.1")
    chain, key, ca_path = folder / "chain.pem", folder / "key.pem", folder / "ca.pem"
    issued.cert_chain_pems[0].write_to_path(str(chain))
    issued.private_key_pem.write_to_path(str(key))
    ca.cert_pem.write_to_path(str(ca_path))
    return str(chain), str(key), str(ca_path)


HINT = "(trust its CA with --cafile FILE, or skip the check with --insecure)"


@pytest.mark.parametrize(
    ("kind", "reason"),
    [
        ("private CA", "unable to get local issuer certificate"),
        ("self-signed", "self-signed certificate"),
    ],
)
def test_an_untrusted_certificate_names_cafile_and_insecure(tmp_path, kind, reason):
    if kind == "self-signed":
        chain, key = self_signed(tmp_path)
    else:
        chain, key, _ = private_ca(tmp_path)
    server = OneShotTlsServer(chain, key)
    try:
        result = run_netrepl("--tls", "127.0.0.1", str(server.port))
    finally:
        server.close()
    assert result.returncode == 1
    assert error_lines(result) == [
        f"netrepl: TLS handshake with 127.0.0.1:{server.port} failed:"
        f" certificate verify failed: {reason} {HINT}"
    ]


def test_the_hint_works_cafile_then_connects(tmp_path):
    chain, key, ca = private_ca(tmp_path)
    server = OneShotTlsServer(chain, key)
    try:
        result = run_netrepl("--tls", "--cafile", ca, "127.0.0.1", str(server.port), "-q")
    finally:
        server.close()
    assert b"certificate verify failed" not in result.stderr, result.stderr


# ---- placeholders ----------------------------------------------------------------------------


def test_an_unknown_placeholder_says_how_to_send_a_brace(echo_peer):
    result = run_netrepl(*echo_peer.args, stdin=b"GET /{id}\n")
    assert result.returncode == 2
    [line] = error_lines(result)[:1]
    assert line.startswith(
        "netrepl: stdin line 1: unknown placeholder {id} at column 6:"
        " write \\{id} to send it as typed (known: crc16-modbus,"
    ), line
    # And doing what it says sends the braces.
    done = run_netrepl(*echo_peer.args, stdin=b"GET /\\{id}\n")
    assert done.returncode == 0 and done.stdout == b"GET /{id}\n"


def test_an_unknown_placeholder_in_hex_gives_no_text_advice(echo_peer):
    result = run_netrepl(*echo_peer.args, stdin=b"/x 01 {id}\n")
    assert result.returncode == 2
    [line] = error_lines(result)[:1]
    assert "unknown placeholder {id} at column 7 (known: " in line and "\\{" not in line


# ---- --help ----------------------------------------------------------------------------------


def test_help_names_the_offline_subcommands_and_they_answer():
    text = run_netrepl("--help").stdout.decode()
    usage = text.split("\n\n")[0]
    assert "netrepl replay FILE" in usage and "netrepl export FILE --pcap OUT" in usage
    assert "netrepl replay --help" in text and "netrepl export --help" in text
    for name in ("replay", "export"):
        answered = run_netrepl(name, "--help")
        assert answered.returncode == 0 and f"netrepl {name}" in answered.stdout.decode()
