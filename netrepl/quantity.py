"""The numbers a user types: seconds, and whole numbers (milliseconds, counts, bytes).

Every number from the command line and from a slash command is read here, by `Seconds.parse`
or `Whole.parse`, so each is finite and inside the range its setting declares, and the error
says that range. Nothing else may turn typed text into a number that reaches a timer, a sleep
or a buffer size: `inf`, `nan` and `1e300` overflow them. Pure: no I/O.
"""

from __future__ import annotations

import math
import re

from netrepl.codec import quote
from netrepl.errors import UsageError
from netrepl.records import record

DAY_SECONDS = 86_400
"""The longest any wait may be: a sleep, a timeout, a linger, a delay, an interval."""

# Decimal notation only: float() would also take `inf`, `nan`, `1_0` and surrounding spaces.
_DECIMAL = re.compile(r"(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][-+]?[0-9]+)?")
_WHOLE = re.compile(r"[0-9]+")


def looks_like_number(text: str) -> bool:
    """`5`, `2.5`, `.5`, `1e3`: a word that is meant as a number, not as text."""
    return _DECIMAL.fullmatch(text) is not None


def looks_like_whole(text: str) -> bool:
    """`0`, `200`: a word that is meant as a whole number."""
    return _WHOLE.fullmatch(text) is not None


def whole_or_none(text: str, high: int) -> int | None:
    """`text` as a whole number from 0 to `high`, or None when it is no such number (a word,
    or digits too many to mean anything): for a word that may be a number or a name, like
    /to's `3` or `all`. Never int() on thousands of digits, which raises ValueError."""
    if not looks_like_whole(text):
        return None
    digits = text.lstrip("0") or "0"
    if len(digits) > len(str(high)) or int(digits) > high:
        return None
    return int(digits)


def _format(number: float) -> str:
    return f"{int(number):,}" if float(number).is_integer() else f"{number:g}"


def _fail(what: str, text: str, expected: str) -> UsageError:
    prefix = f"{what}: " if what else ""
    # A pasted screenful of digits is named by its start, so the error stays one line.
    shown = (
        quote(text)
        if len(text) <= 24
        else f"{quote(text[:20])[:-1]}...' ({len(text):,} characters)"
    )
    return UsageError(f"{prefix}{shown} is not {expected}")


@record(unsafe_hash=True)
class Seconds:
    """A time in seconds, fractions allowed: `0.5`, `2`, `1e-3`."""

    low: float = 0.0
    high: float = float(DAY_SECONDS)

    @property
    def range(self) -> str:
        """`0 to 86,400`: what --help, /help and the errors say."""
        return f"{_format(self.low)} to {_format(self.high)}"

    def parse(self, text: str, what: str = "") -> float:
        """The number of seconds `text` says, or UsageError naming `what` and the range."""
        value = float(text) if looks_like_number(text) else math.nan
        if not (math.isfinite(value) and self.low <= value <= self.high):
            raise _fail(what, text, f"a number of seconds from {self.range}")
        return value


@record(unsafe_hash=True)
class Whole:
    """A whole number of `unit`: milliseconds, bytes, times, clients."""

    low: int
    high: int
    unit: str

    @property
    def range(self) -> str:
        """`10 to 86,400,000`: what --help, /help and the errors say."""
        return f"{_format(self.low)} to {_format(self.high)}"

    def parse(self, text: str, what: str = "") -> int:
        """The number `text` says, or UsageError naming `what` and the range."""
        # The length check first: int() refuses more than 4,300 digits with a ValueError.
        digits = (text.lstrip("0") or "0") if looks_like_whole(text) else ""
        fits = bool(digits) and len(digits) <= len(str(self.high))
        if not (fits and self.low <= int(digits) <= self.high):
            raise _fail(what, text, f"a whole number of {self.unit} from {self.range}")
        return int(digits)

    def seconds(self, text: str, what: str = "") -> float:
        """For milliseconds: the time `text` says, in seconds."""
        return self.parse(text, what) / 1000


WAIT = Seconds()
"""/sleep, /expect's timeout, --linger, --reconnect: zero to a day."""
CONNECT_TIMEOUT = Seconds(low=0.001)
"""--connect-timeout: zero would give up before any connect could finish."""
MILLISECONDS = Whole(0, DAY_SECONDS * 1000, "milliseconds")
"""/repeat's and /sendfile's pauses: zero to a day."""
