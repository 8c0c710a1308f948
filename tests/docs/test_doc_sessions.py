"""The sessions shown in README.md and docs/guide.md are what netrepl prints.

Each checked block is run for real (tests/docs/sessions.py) and compared line by line; a
difference fails with a diff, fixed by `python -m tests.docs.sessions --write`. A block
that shows netrepl's output without a marker fails too, so no shown session goes unchecked,
and a file a doc shows (a script, `<!-- file: NAME -->`) must be the one a session runs.
"""

from __future__ import annotations

import re
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.docs import blocks
from tests.docs.runner import Batch
from tests.docs.sessions import JOBS, SESSIONS, diff, shown


def test_every_marker_names_a_session_and_every_session_is_shown_once():
    marked = [block.session for block in blocks.checked_blocks()]
    assert sorted(marked) == sorted(SESSIONS), (
        f"markers without a session: {sorted(set(marked) - set(SESSIONS))}; "
        f"sessions without a block: {sorted(set(SESSIONS) - set(marked))}; "
        f"shown twice: {sorted({m for m in marked if marked.count(m) > 1})}"
    )


def test_every_file_a_doc_shows_is_one_a_session_runs():
    used: dict[str, bytes] = {}
    for declare in SESSIONS.values():
        session = declare()
        for peer in session.peers:
            peer.stop()  # never started: this closes what its constructor bound
        if isinstance(session, Batch):
            used.update(session.files)
    shown = {block.file: blocks.doc_file(block.file) for block in blocks.file_blocks()}
    assert {name: used.get(name) for name in shown} == shown, (
        "a file block no session runs as it is shown"
    )


# What only netrepl's output looks like: an echoed line, a hexdump row, a status line.
_OUTPUT = re.compile(
    r"^(?:\S*> |[0-9a-f]{8}  [0-9a-f]{2} |connected to |listening on |#\d+ connected |── )"
)


def test_no_block_shows_netrepl_output_without_a_session():
    unchecked = [
        f"{block.where}: {line}"
        for path in blocks.DOCS
        for block in blocks.code_blocks(path)
        if block.session is None
        for line in block.lines
        if _OUTPUT.match(line)
    ]
    assert not unchecked, "output shown with no <!-- session: NAME --> marker:\n" + "\n".join(
        unchecked
    )


@pytest.fixture(scope="module")
def printed(request) -> dict[str, object]:
    """The lines each selected session prints (or the error that stopped it), run a few at
    a time: a session mostly waits, for netrepl to start and for the screen to settle."""
    names = [
        item.callspec.params["name"]
        for item in request.session.items
        if item.originalname == "test_doc_block_is_what_netrepl_prints"
    ]

    def attempt(name: str) -> object:
        try:
            return shown(name)
        except Exception as error:
            return error

    with ThreadPoolExecutor(JOBS) as pool:
        return dict(zip(names, pool.map(attempt, names), strict=True))


@pytest.mark.timeout(240)  # the first of them waits for all of them (~15 s on 2 idle cores)
@pytest.mark.parametrize("name", list(SESSIONS))
def test_doc_block_is_what_netrepl_prints(name, printed):
    block = next(block for block in blocks.checked_blocks() if block.session == name)
    actual = printed[name]
    if isinstance(actual, Exception):
        raise actual
    assert list(block.lines) == actual, (
        "the doc differs from what netrepl prints"
        " (python -m tests.docs.sessions --write rewrites it):\n"
        + diff(name, list(block.lines), actual, block.where)
    )
