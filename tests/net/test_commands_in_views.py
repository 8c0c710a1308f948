"""Commands under every view: /expect, /expect-hex and /when match the same wire bytes whatever
the view (`auto` is no Python codec: everything that encodes or decodes for a view goes through
netrepl.codec, which knows it). Batch mode against a real loopback echo peer."""

from __future__ import annotations

import pytest

from netrepl.view import VIEW_NAMES
from tests.net.conftest import run_netrepl

SCRIPT = "\n".join(
    [
        "PING",
        "/expect PING",
        "PING",
        "/expect-hex 50 49 4e 47 2",
        "/when ^PONG -> ok",
        "PONG",
        "/expect ^ok$ 2",
        "温度 ok",
        "/expect 温度 2",
        "",
    ]
)


@pytest.mark.parametrize("view", VIEW_NAMES)
def test_expect_and_when_work_in_every_view(echo_peer, view):
    result = run_netrepl("--view", view, *echo_peer.args, stdin=SCRIPT.encode())
    stderr = result.stderr.decode("utf-8", "backslashreplace")
    assert "Traceback" not in stderr and result.returncode == 0, stderr
    matched = [line for line in stderr.splitlines() if "expect matched" in line]
    assert matched == [
        "netrepl: expect matched: 'PING'",
        "netrepl: expect matched: 'PING'",
        "netrepl: expect matched: 'ok'",
        "netrepl: expect matched: '温度'",
    ], stderr
    # The text went out in the view's encoding (GBK for gbk; UTF-8 for auto, its seed).
    encoding = "gbk" if view == "gbk" else "utf-8"
    sent = bytes(echo_peer.clients[-1].received)
    assert sent == "PING\nPING\nPONG\nok\n温度 ok\n".encode(encoding)
