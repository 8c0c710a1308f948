"""Watching what arrives: /expect waits for a pattern, /when answers one automatically.

Patterns are regular expressions over bytes (a text pattern is encoded in the session's
encoding first, so `中文` and `\\xff` both match what the wire carries), or hex with `??` for
any byte. The watchers see every received byte through the session's tap, on the thread
that received it; they never print and never touch a socket themselves.
"""

from __future__ import annotations

import re
import threading
import time
from collections import deque
from collections.abc import Callable

from netrepl.codec import encode_for_sending, quote
from netrepl.errors import ExitStatus, NetreplError, UsageError
from netrepl.events import Event, Received, Sent
from netrepl.payload import parse_hex
from netrepl.records import field, record

# What a watcher keeps of a stream it has not matched yet; older bytes are dropped.
WINDOW = 1024 * 1024
# A rule that fires more often than this per second is stopped: two netrepls answering each
# other's answers would otherwise loop as fast as the network allows.
WHEN_LIMIT_PER_SECOND = 20


class ExpectTimeout(NetreplError):
    """An /expect that did not match in time (exit status 3 in batch mode and scripts)."""

    status = ExitStatus.EXPECT


def compile_text_pattern(text: str, encoding: str) -> re.Pattern[bytes]:
    """A regular expression typed as text, matched against received bytes, with the text
    encoded as typed lines are sent in `encoding` (a view's encoding, `auto` too). `^` and
    `$` match at line starts and ends, as people read a device's output."""
    try:
        source = encode_for_sending(_dollar_before_line_end(text), encoding)
    except (UnicodeEncodeError, LookupError) as error:
        raise UsageError(f"bad pattern {quote(text)}: {error}") from None
    return _compile(source, re.MULTILINE, text)


def _compile(source: bytes, flags: int, shown: str) -> re.Pattern[bytes]:
    try:
        return re.compile(source, flags)
    except re.error as error:
        raise UsageError(f"bad pattern {quote(shown)}: {error}") from None
    except (OverflowError, RecursionError) as error:
        # `a{99999999999}`: the repeat count is past what the regex engine can hold (and
        # nesting too deep exhausts the parser's stack): still a mistake in the pattern.
        reason = str(error) if isinstance(error, OverflowError) else "nested too deeply"
        raise UsageError(f"bad pattern {quote(shown)}: {reason}") from None


def _dollar_before_line_end(pattern: str) -> str:
    """`$` also before a CR LF (Python's `$` is only before an LF). Together with
    `Unmatched.search`, which does not take a `$` at the end of what has arrived so far
    unless a line end is there, `^PING (\\d+)$` waits for the whole number."""
    out: list[str] = []
    escaped = in_class = False
    for index, char in enumerate(pattern):
        if escaped:
            escaped = False
        elif char == "\\":
            escaped = True
        elif in_class:
            # `]` first in a class (`[]x]`, `[^]x]`) is a literal, not the class's end.
            opened = pattern.rfind("[", 0, index)
            first = opened + (2 if pattern[opened + 1 : opened + 2] == "^" else 1)
            in_class = not (char == "]" and index > first)
        elif char == "[":
            in_class = True
        elif char == "$":
            out.append(LINE_END)
            continue
        out.append(char)
    return "".join(out)


LINE_END = "\\r?$"


def compile_hex_pattern(text: str, column: int = 1) -> re.Pattern[bytes]:
    """`01 03 ?? 0a`: bytes in hex, `??` for any one byte. `column` is where `text` starts in
    the typed line, so an error names the column the user sees."""
    pieces: list[bytes] = []
    for word in re.finditer(r"[^\s,]+", text):
        if word.group() == "??":
            pieces.append(b".")
        else:
            pieces.append(re.escape(parse_hex(word.group(), column + word.start())))
    if not pieces:
        raise UsageError("no hex bytes given")
    return _compile(b"".join(pieces), re.DOTALL, text)


class Unmatched:
    """Bytes not yet matched, with the one byte before them kept as context, so `^` after a
    match that ended a line still means a line start (and nowhere else).

    Reads are kept as they came and joined only to search: while nothing waits for a match,
    a flood costs no copying here.
    """

    def __init__(self) -> None:
        self._chunks: deque[bytes] = deque()
        self._size = 0
        self._context = b""
        # Whole datagrams and messages, each searched on its own: a pattern never spans
        # two of them, `^` is a unit's start and `$` its end (no line end needed).
        self._units: deque[bytes] = deque()
        self._units_size = 0

    def add(self, data: bytes, *, whole: bool = False) -> None:
        if whole:
            self._units.append(data)
            self._units_size += len(data)
            while len(self._units) > 1 and self._units_size - len(self._units[0]) >= WINDOW:
                self._units_size -= len(self._units.popleft())
            return
        self._chunks.append(data)
        self._size += len(data)
        while len(self._chunks) > 1 and self._size - len(self._chunks[0]) >= WINDOW:
            dropped = self._chunks.popleft()
            self._size -= len(dropped)
            self._context = dropped[-1:]

    def clear(self) -> None:
        self._chunks.clear()
        self._size = 0
        self._context = b""
        self._units.clear()
        self._units_size = 0

    def search(self, pattern: re.Pattern[bytes]) -> re.Match[bytes] | None:
        """The first match in the unmatched bytes; they are used up to its end (a whole
        unit's match uses up that unit and those before it)."""
        for index, unit in enumerate(self._units):
            found = pattern.search(unit)
            if found is not None:
                for _ in range(index + 1):
                    self._units_size -= len(self._units.popleft())
                return found
        start = len(self._context)
        snapshot = self._context + b"".join(self._chunks)
        match = pattern.search(snapshot, start)
        if (
            match is not None
            and match.end() == len(snapshot)
            and not snapshot.endswith(b"\n")
            and LINE_END.encode() in pattern.pattern
        ):
            return None  # its `$` met the end of what has arrived, not the end of a line
        if match is not None:
            end = min(max(match.end(), start + 1), len(snapshot))  # an empty match moves on
            rest = snapshot[end:]
            self._context = snapshot[end - 1 : end] if end else b""
            self._chunks = deque([rest]) if rest else deque()
            self._size = len(rest)
        return match


def is_whole(event: Received) -> bool:
    """A datagram or a WebSocket message: a unit patterns match within, not a stream's
    piece."""
    return event.datagram or bool(event.message)


class ExpectBuffer:
    """What arrived since the last send (all connections), for /expect to wait on."""

    def __init__(self) -> None:
        self._unmatched = Unmatched()
        self._changed = threading.Condition()
        self._waiters = 0  # an /expect waiting: only then does a read notify

    def observe(self, event: Event) -> None:
        if isinstance(event, Received):
            with self._changed:
                self._unmatched.add(event.data, whole=is_whole(event))
                if self._waiters:
                    self._changed.notify_all()
        elif isinstance(event, Sent) and event.echo:
            with self._changed:
                self._unmatched.clear()

    def wait(
        self, pattern: re.Pattern[bytes], timeout: float, cancel: threading.Event, shown: str
    ) -> re.Match[bytes]:
        """Wait until `pattern` matches; what it matched (and before) is used up."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                match = self._unmatched.search(pattern)
                if match is not None:
                    return match
                if cancel.is_set():
                    raise NetreplError(f"expect {shown}: interrupted")
                left = deadline - time.monotonic()
                if left <= 0:
                    raise ExpectTimeout(f"expect timed out after {timeout:g} s: {shown}")
                # Short slices, so Ctrl-C (the cancel flag) is noticed at once.
                self._waiters += 1
                try:
                    self._changed.wait(min(left, 0.05))
                finally:
                    self._waiters -= 1


@record
class Rule:
    """One /when: a pattern, and the line that answers it."""

    number: int
    pattern: re.Pattern[bytes]
    reply: str
    hex: bool
    shown: str
    fired: int = 0
    stopped: str | None = None
    _recent: deque[float] = field(default_factory=deque)
    _buffers: dict[int, Unmatched] = field(default_factory=dict)

    def describe(self) -> str:
        kind = "/when-hex" if self.hex else "/when"
        state = f" (stopped: {self.stopped})" if self.stopped else f" (fired {self.fired}x)"
        return f"{self.number}: {kind} {self.shown} -> {self.reply}{state}"


Answer = Callable[[int, str, bool], None]
"""answer(conn, line, hex): send `line` (text, or hex) to connection `conn`."""


class AutoReplies:
    """The /when rules, each matched against each connection's stream as it arrives."""

    def __init__(self, answer: Answer, report: Callable[[str], None]) -> None:
        self._answer = answer
        self._report = report
        self._rules: list[Rule] = []
        self._numbers = 0
        self._lock = threading.Lock()

    def add(self, pattern: re.Pattern[bytes], reply: str, *, hex: bool, shown: str) -> Rule:
        if pattern.fullmatch(b"") is not None:
            # It would match between any two bytes: an answer to everything, endlessly.
            raise UsageError(f"pattern {shown!r} matches the empty string: make it match bytes")
        with self._lock:
            self._numbers += 1
            rule = Rule(self._numbers, pattern, reply, hex, shown)
            self._rules.append(rule)
            return rule

    def remove(self, which: str) -> list[Rule]:
        """`N` or `all`; the rules removed."""
        with self._lock:
            if which == "all":
                removed, self._rules = self._rules, []
                return removed
            kept = [rule for rule in self._rules if str(rule.number) != which.lstrip("#")]
            removed = [rule for rule in self._rules if rule not in kept]
            self._rules = kept
        if not removed:
            raise UsageError(f"/unwhen: no rule {which} (/when lists them)")
        return removed

    def rules(self) -> list[Rule]:
        with self._lock:
            return list(self._rules)

    def observe(self, event: Event) -> None:
        if not isinstance(event, Received) or not self._rules:
            return
        for rule in self.rules():
            if rule.stopped is None:
                self._feed(rule, event.conn, event.data, is_whole(event))

    def _feed(self, rule: Rule, conn: int, data: bytes, whole: bool) -> None:
        unmatched = rule._buffers.setdefault(conn, Unmatched())
        unmatched.add(data, whole=whole)
        while (match := unmatched.search(rule.pattern)) is not None:
            if not self._allowed(rule):
                return
            try:
                self._answer(conn, expand_reply(rule.reply, match, hex=rule.hex), rule.hex)
            except NetreplError as error:
                self._report(f"/when {rule.number}: {error}")

    def _allowed(self, rule: Rule) -> bool:
        now = time.monotonic()
        recent = rule._recent
        recent.append(now)
        while recent and now - recent[0] > 1.0:
            recent.popleft()
        if len(recent) > WHEN_LIMIT_PER_SECOND:
            rule.stopped = f"fired more than {WHEN_LIMIT_PER_SECOND} times in a second"
            self._report(
                f"/when {rule.number} stopped: {rule.stopped} (a loop?); /unwhen removes it"
            )
            return False
        rule.fired += 1
        return True


_GROUP = re.compile(r"\\([1-9])")


def expand_reply(reply: str, match: re.Match[bytes], *, hex: bool) -> str:
    """The reply line with `\\1`..`\\9` replaced by what those groups matched: as hex digits
    in a hex reply, as text (escaped, so it is sent as it came) in a text reply."""

    def group(found: re.Match[str]) -> str:
        index = int(found.group(1))
        if index > (match.re.groups or 0):
            raise UsageError(
                f"\\{index} in the reply, but the pattern has {match.re.groups} groups"
            )
        value = match.group(index) or b""
        if hex:
            return value.hex(" ")
        return "".join(
            chr(byte) if 0x20 <= byte < 0x7F and chr(byte) not in "\\{}" else f"\\x{byte:02x}"
            for byte in value
        )

    return _GROUP.sub(group, reply)


Watcher = Callable[[Event], None]


class Watchers:
    """Everything that watches wire events before the display: /expect's buffer, /when's
    rules, the --on-connect trigger. Each sees every event, in order.

    While a script sets up (its rules must be in place before the first byte of any
    connection is examined), `hold` keeps the events back; when the last hold is released
    they are handed over in order, and events posted meanwhile queue behind them.
    """

    def __init__(self, watchers: list[Watcher]) -> None:
        self._watchers = list(watchers)
        self._lock = threading.Lock()
        self._holds = 0
        self._held: deque[Event] = deque()
        self._replaying = False

    def add(self, watcher: Watcher) -> None:
        self._watchers.append(watcher)

    def observe(self, event: Event) -> None:
        """Called with every wire event, on the thread that posts it."""
        with self._lock:
            held = self._holds or self._replaying
            if held:
                self._held.append(event)
        if not held:
            self._hand(event)

    def hold(self) -> Callable[[], None]:
        """Keep events back until the returned function is called (once is enough)."""
        released = threading.Event()
        with self._lock:
            self._holds += 1

        def release() -> None:
            with self._lock:
                if released.is_set():
                    return
                released.set()
                self._holds -= 1
                if self._holds or self._replaying:
                    return
                self._replaying = True
            # Outside the lock: a watcher may send (a /when reply), which waits on the I/O
            # thread, which may be posting. What is posted meanwhile queues behind.
            while True:
                with self._lock:
                    # Empty, or a held Connected started an --on-connect script: stop here.
                    if not self._held or self._holds:
                        self._replaying = False
                        return
                    event = self._held.popleft()
                self._hand(event)

        return release

    def _hand(self, event: Event) -> None:
        for watcher in self._watchers:
            watcher(event)
