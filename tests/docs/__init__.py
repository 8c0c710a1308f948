"""Checked sessions: the netrepl sessions shown in README.md and docs/guide.md, run for real.

`sessions.py` declares each shown session, `runner.py` runs it against the loopback peers of
`peers.py`, `blocks.py` finds and rewrites the marked blocks of the docs, and
`test_doc_sessions.py` fails with a diff when a block differs from what netrepl prints.
`python -m tests.docs.sessions --write` regenerates every block.
"""
