"""The config file (TOML): defaults for the view and sending, and named presets for /p.

    [defaults]
    view = "hex"          # hex, utf8, gbk, auto, text
    encoding = "gbk"
    eol = "crlf"          # lf, crlf, cr, none
    input = "text"        # or hex
    escapes = true
    time = "off"          # on, delta

    [presets]
    read = "/x 01 03 00 00 00 0A {crc16-modbus}"
    hello = "HELLO\\r\\n"

Read once at start from `--config FILE` or the user's config directory; the command line
wins over it. Parsing is pure (`parse_config`); only `load_config` touches the disk.
"""

from __future__ import annotations

import os
from pathlib import Path

from netrepl.errors import UsageError
from netrepl.files import read_at_most, shown_path
from netrepl.payload import EOLS
from netrepl.records import field, record
from netrepl.view import VIEW_NAMES

_CHOICES: dict[str, tuple[str, ...]] = {
    "view": tuple(name for name in VIEW_NAMES if name != "raw"),
    "eol": tuple(EOLS),
    "input": ("text", "hex"),
    "time": ("off", "on", "delta"),
}
_DEFAULT_KEYS = ("view", "encoding", "eol", "input", "escapes", "time")
CONFIG_LIMIT = 1024 * 1024


@record(unsafe_hash=True)
class Config:
    """What the config file says: option defaults, presets, and where it was read from."""

    defaults: dict[str, str | bool] = field(default_factory=dict)
    presets: dict[str, str] = field(default_factory=dict)
    source: str | None = None


def config_path() -> Path:
    """$XDG_CONFIG_HOME/netrepl/config.toml (~/.config/netrepl/config.toml)."""
    base = os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config"
    return Path(base) / "netrepl" / "config.toml"


def parse_config(text: str, source: str) -> Config:
    """Check and read a config file's text; UsageError names the file and the problem."""
    import tomllib  # only when there is a file: most runs have none (start-up time)

    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise UsageError(f"{source}: {error}") from None
    unknown = set(data) - {"defaults", "presets"}
    if unknown:
        raise UsageError(
            f"{source}: unknown table [{sorted(unknown)[0]}] (use [defaults], [presets])"
        )
    defaults = _table(data, "defaults", source)
    for key, value in defaults.items():
        if key not in _DEFAULT_KEYS:
            raise UsageError(
                f"{source}: unknown key {key!r} in [defaults] (known: {', '.join(_DEFAULT_KEYS)})"
            )
        expected = bool if key == "escapes" else str
        if not isinstance(value, expected):
            raise UsageError(f"{source}: [defaults] {key} must be a {expected.__name__}")
        if key in _CHOICES and value not in _CHOICES[key]:
            raise UsageError(
                f"{source}: [defaults] {key} = {value!r} is not one of {', '.join(_CHOICES[key])}"
            )
    presets = _table(data, "presets", source)
    for name, line in presets.items():
        if not isinstance(line, str):
            raise UsageError(f"{source}: preset {name!r} must be a string (a line as typed)")
        if not name or " " in name:
            raise UsageError(f"{source}: preset name {name!r} must be one word")
    return Config(defaults, presets, source)  # type: ignore[arg-type]


def _table(data: dict, name: str, source: str) -> dict:  # type: ignore[type-arg]
    table = data.get(name, {})
    if not isinstance(table, dict):
        raise UsageError(f"{source}: {name} must be a table, [{name}]")
    return table


def load_config(path: str | None) -> Config:
    """`--config FILE` (which must exist), else the user's file if there is one."""
    file = str(Path(os.path.expanduser(path)) if path is not None else config_path())
    if not os.path.lexists(file) and "\0" not in file:
        if path is not None:
            raise UsageError(f"--config {shown_path(path)}: no such file")
        return Config()
    data = read_at_most(file, CONFIG_LIMIT, "a config file is a few lines of TOML")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise UsageError(f"cannot read {shown_path(file)}: {error}") from None
    return parse_config(text, file)
