"""/p presets from the config file, and a config file's mistakes, with the real program."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.net.conftest import Harness, run_netrepl
from tests.net.session_helpers import stderr_of


@pytest.fixture
def harness(make_session) -> Harness:
    return make_session()


# ---- /p presets from the config file ------------------------------------------------------------


def write_config(tmp_path: Path) -> str:
    path = tmp_path / "netrepl.toml"
    path.write_text(
        '[defaults]\neol = "crlf"\n\n[presets]\n'
        'hello = "HELLO {counter}"\n'
        'read = "/x 01 03 00 00 00 0a {crc16-modbus}"\n'
        'both = "/repeat 2 /p hello"\n',
        encoding="utf-8",
    )
    return str(path)


def test_p_sends_presets_from_the_config_file(make_peer, tmp_path):
    peer = make_peer()
    stdin = b"/p hello\n/p read\n/p both\n/p\n"
    result = run_netrepl(
        *peer.args, "--config", write_config(tmp_path), "--linger", "0.2", stdin=stdin
    )
    assert result.returncode == 0, result.stderr
    read = bytes.fromhex("01 03 00 00 00 0a c5 cd")
    assert peer.wait_for_client().wait_closed() == (
        b"HELLO 1\r\n" + read + b"HELLO 3\r\nHELLO 4\r\n"
    )
    listing = stderr_of(result)
    assert "  both   /repeat 2 /p hello\n" in listing
    assert "  hello  HELLO {counter}\n" in listing


def test_p_unknown_preset_exits_2_listing_the_known(make_peer, tmp_path):
    peer = make_peer()
    result = run_netrepl(
        *peer.args, "--config", write_config(tmp_path), stdin=b"/p hello\n/p nope\nlater\n"
    )
    assert result.returncode == 2
    assert "netrepl: stdin line 2: /p: no preset 'nope' (known: both, hello, read)\n" in stderr_of(
        result
    )
    assert peer.wait_for_client().wait_closed() == b"HELLO 1\r\n"


@pytest.mark.parametrize(
    ("config", "message"),
    [(None, "no such file"), ('[defaults]\nview = "raw"\n', "[defaults] view = 'raw'")],
)
def test_a_bad_config_exits_2_before_connecting(make_peer, tmp_path, config, message):
    peer = make_peer()
    path = tmp_path / "c.toml"
    if config is not None:
        path.write_text(config, encoding="utf-8")
    result = run_netrepl(*peer.args, "--config", str(path), stdin=b"hello\n")
    assert result.returncode == 2
    lines = stderr_of(result).splitlines()
    assert len(lines) == 1 and message in lines[0] and str(path) in lines[0], lines
