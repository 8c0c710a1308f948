"""What a one-shot pipe imports (issue 14): `printf 'PING\\r\\n' | netrepl HOST PORT` over
plain TCP, against a Redis-like peer that answers and closes, loads nothing it does not use.

Each module left out is start-up time a one-shot pipe pays in full: rich (batch output to a
pipe is plain text), ssl (no TLS was asked for), the slash-command groups (no
line starts with `/`), the WebSocket machinery. The real `python -X importtime -m netrepl`
run is read, not a stand-in.
"""

from __future__ import annotations

from tests.net.conftest import run_netrepl
from tests.net.test_startup import imported

# Each of these, imported on the plain-TCP batch path, is a measured cost at every start.
NOT_ON_THE_BATCH_PATH = {
    "prompt_toolkit": "the interactive front end",
    "rich": "rich: batch output to a pipe is plain text, with no styles to render",
    "ssl": "TLS, which nobody asked for",
    "netrepl.transport.tls": "TLS, which nobody asked for",
    "netrepl.commands": "the slash commands: no line starts with /",
    "netrepl.websocket": "the WebSocket protocol",
    "netrepl.transport.websocket": "the WebSocket transport",
    "dataclasses": "records are netrepl.records: a dataclass compiles its methods at import",
    "inspect": "what dataclasses imported, ~12 ms",
    "json": "the transcript's and the json view's: no --log, no json view here",
    "base64": "a log's and a proxy's credentials: neither here",
    "pybase64": "a log's: none here",
}


def test_a_one_shot_pipe_imports_only_what_it_uses(redis_peer):
    result = run_netrepl(
        "127.0.0.1", str(redis_peer.port), python_flags=("-X", "importtime"), stdin=b"PING\r\n"
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout == b"+PONG\n"  # the text view shows CR LF as a line end
    modules, others = imported(result.stderr)
    assert "connection closed by peer" in others[-1], others
    # The run's own modules are listed: the list is complete.
    assert {"netrepl.batch", "netrepl.session", "netrepl.transport.stream"} <= modules
    loaded = {
        name: why
        for name, why in NOT_ON_THE_BATCH_PATH.items()
        if name in modules or any(module.startswith(name + ".") for module in modules)
    }
    assert loaded == {}, f"imported on a one-shot pipe: {loaded}"
