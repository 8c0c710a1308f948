"""Batch mode: a byte that could start a character, last of what a peer echoed, reaches stdout
(as an escape) once the peer is quiet, not only when more data or the end comes."""

from __future__ import annotations


def test_echoed_trailing_lead_byte_is_shown_while_the_connection_stays_open(
    echo_peer, start_netrepl
):
    run = start_netrepl(*echo_peer.args, "--linger", "600")
    run.wait_stderr(b"connected to")
    run.write(b"/x 41 42 e1\n")  # stdin stays open: nothing else would flush the byte
    assert run.wait_stdout(b"AB\\xe1") == b"AB\\xe1"
    run.write(b"/x 0a\n")
    assert run.wait_stdout(b"AB\\xe1\n") == b"AB\\xe1\n"
