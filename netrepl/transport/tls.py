"""TLS for stream transports: contexts from the user's options, and an in-memory TLS layer.

`TlsLayer` wraps `ssl.SSLObject` over memory BIOs: the owning I/O thread feeds it ciphertext
and takes ciphertext out, so the SSL object is only ever used by that one thread (OpenSSL
objects are not safe to read and write from two threads at once). Nothing here renders.
"""

from __future__ import annotations

import contextlib
import datetime
import os
import socket
import ssl
import threading
import time

from netrepl.errors import ConnectError, UsageError
from netrepl.events import CertificateInfo, TlsEstablished
from netrepl.transport import TlsOptions, describe_os_error, wait_ready


def client_context(options: TlsOptions) -> ssl.SSLContext:
    """Verify against the system store (or --cafile) with a hostname check unless --insecure."""
    _check_files(options)
    try:
        context = ssl.create_default_context(cafile=options.cafile)
        if options.insecure:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        _load_identity(context, options)
        if options.alpn:
            context.set_alpn_protocols(list(options.alpn))
    except (OSError, ssl.SSLError, ValueError) as error:
        raise UsageError(f"TLS setup: {_describe_setup_error(error)}") from None
    return context


def server_context(options: TlsOptions) -> ssl.SSLContext:
    """A server needs --cert (and --key unless the key is in the same file)."""
    if not options.cert:
        raise UsageError("a TLS server needs --cert FILE (and --key FILE)")
    _check_files(options)
    try:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=options.cafile)
        # Ask for a client certificate only when the user gave a CA to check it against.
        context.verify_mode = ssl.CERT_OPTIONAL if options.cafile else ssl.CERT_NONE
        _load_identity(context, options)
        if options.alpn:
            context.set_alpn_protocols(list(options.alpn))
    except (OSError, ssl.SSLError, ValueError) as error:
        raise UsageError(f"TLS setup: {_describe_setup_error(error)}") from None
    return context


def _check_files(options: TlsOptions) -> None:
    # ssl reports a missing file without its name: say which one.
    for flag, path in (
        ("--cafile", options.cafile),
        ("--cert", options.cert),
        ("--key", options.key),
    ):
        if path is not None and not os.path.isfile(path):
            raise UsageError(f"TLS setup: {flag} {path}: no such file")


def _load_identity(context: ssl.SSLContext, options: TlsOptions) -> None:
    if options.key and not options.cert:
        raise ValueError("--key needs --cert")
    if options.cert:
        context.load_cert_chain(options.cert, options.key)


def _describe_setup_error(error: BaseException) -> str:
    if isinstance(error, FileNotFoundError):
        return f"no such file: {error.filename}"
    if isinstance(error, ssl.SSLError):
        return describe_ssl_error(error)
    return str(error)


def describe_ssl_error(error: ssl.SSLError) -> str:
    """`certificate verify failed: self-signed certificate`, without OpenSSL's file and line."""
    if isinstance(error, ssl.SSLCertVerificationError) and error.verify_message:
        return f"certificate verify failed: {error.verify_message}"
    reason = error.reason or ""
    text = reason.lower().replace("_", " ") if reason else str(error)
    return text or type(error).__name__


class TlsLayer:
    """One TLS session in memory: ciphertext in, plaintext out, and the reverse."""

    def __init__(
        self, context: ssl.SSLContext, *, server_side: bool, server_hostname: str | None
    ) -> None:
        self._incoming = ssl.MemoryBIO()
        self._outgoing = ssl.MemoryBIO()
        self._object = context.wrap_bio(
            self._incoming,
            self._outgoing,
            server_side=server_side,
            server_hostname=server_hostname,
        )
        self.verified = context.verify_mode != ssl.CERT_NONE
        self.handshake_done = False
        self.peer_closed = False
        """The peer sent close_notify: no more data will come."""

    def handshake(self) -> bool:
        """Advance the handshake; True once it is complete. Raises ssl.SSLError."""
        if not self.handshake_done:
            try:
                self._object.do_handshake()
            except ssl.SSLWantReadError:
                return False
            self.handshake_done = True
        return True

    def feed(self, ciphertext: bytes) -> bytes:
        """Take bytes from the socket; return the plaintext they complete (maybe none)."""
        self._incoming.write(ciphertext)
        if not self.handshake():
            return b""
        chunks: list[bytes] = []
        try:
            while True:
                chunk = self._object.read(262144)
                if not chunk:  # SSLObject.read gives b"" for the peer's close_notify
                    self.peer_closed = True
                    break
                chunks.append(chunk)
        except ssl.SSLWantReadError:
            pass
        except ssl.SSLZeroReturnError:
            self.peer_closed = True
        return b"".join(chunks)

    def encrypt(self, plaintext: bytes) -> None:
        self._object.write(plaintext)

    def close_notify(self) -> None:
        """Say we will send no more (TLS's half-close); reading goes on."""
        # unwrap() sends our close_notify, then wants the peer's, which the reader will see.
        with contextlib.suppress(ssl.SSLError):
            self._object.unwrap()

    def take_outgoing(self) -> bytes:
        return self._outgoing.read()

    def established(self, conn: int) -> TlsEstablished:
        cipher = self._object.cipher()
        chain = self.chain()
        return TlsEstablished(
            conn=conn,
            version=self._object.version() or "?",
            cipher=cipher[0] if cipher else "?",
            alpn=self._object.selected_alpn_protocol(),
            # A server that asks for a client certificate may get none: nothing was verified.
            verified=self.verified and bool(chain),
            chain=chain,
        )

    def chain(self) -> tuple[CertificateInfo, ...]:
        """The peer's certificates, leaf first, verified or not (for --insecure too)."""
        # Python 3.13 made get_unverified_chain public; 3.11 and 3.12 have it on _sslobj.
        source = getattr(self._object, "get_unverified_chain", None) or getattr(
            getattr(self._object, "_sslobj", None), "get_unverified_chain", None
        )
        certificates = source() if source is not None else None
        if certificates:
            return tuple(certificate_info(c.get_info()) for c in certificates)
        leaf = self._object.getpeercert()
        return (certificate_info(leaf),) if leaf else ()


def certificate_info(decoded: dict) -> CertificateInfo:  # type: ignore[type-arg]
    """The facts a person checks in a certificate, from ssl's decoded dict."""

    def name(rdns: tuple) -> str:  # type: ignore[type-arg]
        return ", ".join(f"{_SHORT_NAMES.get(k, k)}={v}" for rdn in rdns for k, v in rdn)

    days_left = None
    with contextlib.suppress(KeyError, ValueError, TypeError):
        days_left = int((ssl.cert_time_to_seconds(decoded["notAfter"]) - time.time()) // 86400)
    return CertificateInfo(
        subject=name(decoded.get("subject", ())),
        issuer=name(decoded.get("issuer", ())),
        not_before=_iso_time(decoded.get("notBefore")),
        not_after=_iso_time(decoded.get("notAfter")),
        alt_names=tuple(f"{kind}:{value}" for kind, value in decoded.get("subjectAltName", ())),
        days_left=days_left,
    )


_SHORT_NAMES = {
    "commonName": "CN",
    "organizationName": "O",
    "organizationalUnitName": "OU",
    "countryName": "C",
    "stateOrProvinceName": "ST",
    "localityName": "L",
    "emailAddress": "emailAddress",
}


def _iso_time(value: str | None) -> str:
    if not value:
        return "?"
    try:
        seconds = ssl.cert_time_to_seconds(value)
    except ValueError:
        return value
    return datetime.datetime.fromtimestamp(seconds, datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")


# What OpenSSL says when the first answer is not a TLS record at all: a plaintext service
# (an HTTP or SMTP banner, a device's prompt) read as a TLS header.
_NOT_TLS_REASONS = frozenset(
    {"WRONG_VERSION_NUMBER", "PACKET_LENGTH_TOO_LONG", "RECORD_LAYER_FAILURE", "UNKNOWN_PROTOCOL"}
)
# Verification failures that mean "this certificate's issuer is not trusted here" (OpenSSL's
# X509_V_ERR_* codes): a private CA or a self-signed certificate.
_UNTRUSTED_ISSUER_CODES = frozenset({2, 18, 19, 20, 21})
_HOSTNAME_MISMATCH_CODE = 62


def describe_client_handshake_error(error: ssl.SSLError) -> str:
    """Why a client handshake failed, and what to do about it when that is clear."""
    reason = describe_ssl_error(error)
    if isinstance(error, ssl.SSLCertVerificationError):
        if error.verify_code in _UNTRUSTED_ISSUER_CODES:
            return f"{reason} (trust its CA with --cafile FILE, or skip the check with --insecure)"
        if error.verify_code == _HOSTNAME_MISMATCH_CODE:
            return f"{reason} (connect by a name it holds, or check another with --sni NAME)"
        return reason
    if error.reason in _NOT_TLS_REASONS:
        hint = "the port does not seem to speak TLS (a plaintext service? try without --tls)"
        return f"{reason}: {hint}"
    return reason


def client_handshake(
    sock: socket.socket,
    layer: TlsLayer,
    deadline: float | None,
    cancel: threading.Event,
    label: str,
    timeout: float | None = None,
    received: bytes = b"",
) -> bytes:
    """Run a client handshake on a blocking socket before the I/O thread takes it over.
    `timeout` is what the deadline came from (--connect-timeout), for the error; `received`
    is what already came from the peer (with a proxy's reply), read before the socket.

    Returns application data that arrived with the server's last handshake message (a
    server that speaks first, like SMTPS, may send both in one segment). Raises
    ConnectError with one line: the verification failure, or the peer hanging up.
    """
    what = f"TLS handshake with {label}"
    early = bytearray()
    started = time.monotonic()
    answered = False
    pending = received
    try:
        while not layer.handshake():
            sock.sendall(layer.take_outgoing())
            if pending:
                data, pending = pending, b""
            else:
                wait_ready(sock, write=False, deadline=deadline, cancel=cancel, what=what)
                data = sock.recv(65536)
            if not data:
                raise ConnectError(f"{what} failed: the peer closed")
            answered = True
            early += layer.feed(data)
        sock.sendall(layer.take_outgoing())
        return bytes(early)
    except ssl.SSLError as error:
        # Send our alert (unknown CA, bad name...) so the server's log says why we left.
        with contextlib.suppress(OSError):
            sock.sendall(layer.take_outgoing())
        raise ConnectError(f"{what} failed: {describe_client_handshake_error(error)}") from None
    except TimeoutError:
        waited = f"{timeout:g} s" if timeout is not None else f"{time.monotonic() - started:.2g} s"
        if answered:
            raise ConnectError(f"{what} failed: the handshake timed out after {waited}") from None
        raise ConnectError(
            f"{what} failed: no TLS answer came (the handshake timed out after {waited}):"
            " does this port speak TLS?"
        ) from None
    except OSError as error:
        raise ConnectError(f"{what} failed: {describe_os_error(error)}") from None
