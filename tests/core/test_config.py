"""The config file: parsing (pure), finding and reading it, and how the command line wins.

Every error is a UsageError naming the file and what is wrong in it, so `netrepl` can print it
as one line and exit 2.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from netrepl.config import Config, config_path, load_config, parse_config
from netrepl.errors import UsageError
from netrepl.options import parse_options
from netrepl.view import View

SOURCE = "/home/me/.config/netrepl/config.toml"


def fails(text: str, message: str) -> None:
    """`text` is refused with exactly `message` after the file's name."""
    with pytest.raises(UsageError) as info:
        parse_config(text, SOURCE)
    assert str(info.value) == f"{SOURCE}: {message}"


# ---- parse_config: what is accepted --------------------------------------------------------


def test_empty_file_is_an_empty_config():
    assert parse_config("", SOURCE) == Config({}, {}, SOURCE)
    assert parse_config("# only a comment\n\n[defaults]\n[presets]\n", SOURCE) == Config(
        {}, {}, SOURCE
    )


def test_every_default_key():
    config = parse_config(
        """
        [defaults]
        view = "hex"
        encoding = "gbk"
        eol = "crlf"
        input = "hex"
        escapes = false
        time = "delta"
        """,
        SOURCE,
    )
    assert config.defaults == {
        "view": "hex",
        "encoding": "gbk",
        "eol": "crlf",
        "input": "hex",
        "escapes": False,
        "time": "delta",
    }
    assert config.presets == {} and config.source == SOURCE


@pytest.mark.parametrize(
    ("key", "values"),
    [
        ("view", ["hex", "text", "utf8", "gbk", "auto"]),
        ("eol", ["lf", "crlf", "cr", "none"]),
        ("input", ["text", "hex"]),
        ("time", ["off", "on", "delta"]),
    ],
)
def test_every_choice_of_each_key(key, values):
    for value in values:
        assert parse_config(f'[defaults]\n{key} = "{value}"\n', SOURCE).defaults == {key: value}


@pytest.mark.parametrize("value", [True, False])
def test_escapes_is_a_boolean(value):
    text = f"[defaults]\nescapes = {str(value).lower()}\n"
    assert parse_config(text, SOURCE).defaults == {"escapes": value}


def test_encoding_is_any_name_here_and_checked_when_applied():
    # The codec is looked up by parse_options, which names the file (see below).
    assert parse_config('[defaults]\nencoding = "shift_jis"\n', SOURCE).defaults == {
        "encoding": "shift_jis"
    }


def test_presets():
    config = parse_config(
        r"""
        [presets]
        read = "/x 01 03 00 00 00 0A {crc16-modbus}"
        hello = "HELLO\\r\\n"
        "dotted.name" = ""
        "中文" = "你好"
        """,
        SOURCE,
    )
    assert config.presets == {
        "read": "/x 01 03 00 00 00 0A {crc16-modbus}",
        "hello": "HELLO\\r\\n",  # kept as typed: the escapes are the line's, sent by /p
        "dotted.name": "",
        "中文": "你好",
    }
    assert config.defaults == {}


# ---- parse_config: every error -------------------------------------------------------------


def test_toml_syntax_error_names_the_file_and_line():
    with pytest.raises(UsageError) as info:
        parse_config('[defaults]\nview = "hex\n', SOURCE)
    message = str(info.value)
    assert message.startswith(f"{SOURCE}: ") and "line 2" in message
    assert "\n" not in message


@pytest.mark.parametrize(
    ("text", "table"), [("[colours]\nx = 1\n", "colours"), ("verbose = true\n", "verbose")]
)
def test_unknown_table(text, table):
    fails(text, f"unknown table [{table}] (use [defaults], [presets])")


def test_the_first_unknown_table_in_order_of_name_is_named():
    fails("[zeta]\n[alpha]\n[defaults]\n", "unknown table [alpha] (use [defaults], [presets])")


@pytest.mark.parametrize("name", ["defaults", "presets"])
def test_a_table_that_is_not_a_table(name):
    fails(f'{name} = "hex"\n', f"{name} must be a table, [{name}]")


@pytest.mark.parametrize("key", ["colour", "View", "linger", "reconnect"])
def test_unknown_default_key(key):
    fails(
        f'[defaults]\n{key} = "x"\n',
        f"unknown key {key!r} in [defaults] (known: view, encoding, eol, input, escapes, time)",
    )


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("view = 1", "[defaults] view must be a str"),
        ("encoding = ['gbk']", "[defaults] encoding must be a str"),
        ("eol = true", "[defaults] eol must be a str"),
        ("input = 0", "[defaults] input must be a str"),
        ("time = 1.5", "[defaults] time must be a str"),
        ('escapes = "yes"', "[defaults] escapes must be a bool"),
        ("escapes = 1", "[defaults] escapes must be a bool"),
        ("view = { mode = 'hex' }", "[defaults] view must be a str"),
    ],
)
def test_wrong_type(line, message):
    fails(f"[defaults]\n{line}\n", message)


@pytest.mark.parametrize(
    ("key", "value", "choices"),
    [
        ("view", "raw", "hex, text, utf8, gbk, auto, json"),
        ("view", "HEX", "hex, text, utf8, gbk, auto, json"),
        ("eol", "crcr", "lf, crlf, cr, none"),
        ("input", "binary", "text, hex"),
        ("time", "yes", "off, on, delta"),
    ],
)
def test_bad_choice(key, value, choices):
    fails(
        f'[defaults]\n{key} = "{value}"\n', f"[defaults] {key} = {value!r} is not one of {choices}"
    )


@pytest.mark.parametrize(
    ("line", "name"), [("read = 3", "read"), ("x = ['/x 01']", "x"), ("y = true", "y")]
)
def test_non_string_preset(line, name):
    fails(f"[presets]\n{line}\n", f"preset {name!r} must be a string (a line as typed)")


@pytest.mark.parametrize("name", ["read holding", " lead", ""])
def test_preset_name_must_be_one_word(name):
    fails(f'[presets]\n"{name}" = "/x 01"\n', f"preset name {name!r} must be one word")


def test_a_sub_table_in_presets_is_not_a_string():
    fails("[presets.group]\nread = 'x'\n", "preset 'group' must be a string (a line as typed)")


# ---- load_config: which file ----------------------------------------------------------------


def test_config_path_follows_xdg_config_home(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    assert config_path() == tmp_path / "xdg" / "netrepl" / "config.toml"


@pytest.mark.parametrize("xdg", [None, ""])
def test_config_path_defaults_to_dot_config(monkeypatch, tmp_path, xdg):
    monkeypatch.setenv("HOME", str(tmp_path))
    if xdg is None:
        monkeypatch.delenv("XDG_CONFIG_HOME", raising=False)
    else:
        monkeypatch.setenv("XDG_CONFIG_HOME", xdg)
    assert config_path() == tmp_path / ".config" / "netrepl" / "config.toml"


def test_no_user_file_is_an_empty_config(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "nothing-here"))
    assert load_config(None) == Config()


def test_user_file_is_read_from_xdg_config_home(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    path = tmp_path / "netrepl" / "config.toml"
    path.parent.mkdir()
    path.write_text('[defaults]\neol = "cr"\n[presets]\nhi = "HELLO"\n', encoding="utf-8")
    assert load_config(None) == Config({"eol": "cr"}, {"hi": "HELLO"}, str(path))


def test_an_error_in_the_user_file_names_it(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    path = tmp_path / "netrepl" / "config.toml"
    path.parent.mkdir()
    path.write_text('[defaults]\neol = "dos"\n', encoding="utf-8")
    with pytest.raises(UsageError, match=re.escape(f"{path}: [defaults] eol = 'dos'")):
        load_config(None)


def test_given_file_is_read_instead_of_the_user_file(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    (tmp_path / "netrepl").mkdir()
    (tmp_path / "netrepl" / "config.toml").write_text('[defaults]\neol = "cr"\n', "utf-8")
    given = tmp_path / "other.toml"
    given.write_text('[defaults]\neol = "crlf"\n', encoding="utf-8")
    assert load_config(str(given)) == Config({"eol": "crlf"}, {}, str(given))


def test_given_file_missing_is_an_error(tmp_path):
    missing = tmp_path / "missing.toml"
    with pytest.raises(UsageError) as info:
        load_config(str(missing))
    assert str(info.value) == f"--config {missing}: no such file"


def test_given_file_expands_the_home_directory(monkeypatch, tmp_path):
    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / "n.toml").write_text('[presets]\na = "b"\n', encoding="utf-8")
    config = load_config("~/n.toml")
    assert config.presets == {"a": "b"} and config.source == str(tmp_path / "n.toml")


def test_unreadable_files_are_usage_errors(tmp_path):
    not_utf8 = tmp_path / "latin1.toml"
    not_utf8.write_bytes(b'[presets]\na = "caf\xe9"\n')
    with pytest.raises(UsageError, match=re.escape(f"cannot read {not_utf8}: ")):
        load_config(str(not_utf8))
    with pytest.raises(UsageError, match=re.escape(f"cannot read {tmp_path}: ")):
        load_config(str(tmp_path))


# ---- parse_options: the config's defaults under the command line -----------------------------


@pytest.fixture
def write_config(tmp_path):
    def write(text: str) -> str:
        path = tmp_path / "netrepl.toml"
        path.write_text(text, encoding="utf-8")
        return str(path)

    return write


def options(config: str, *argv: str):
    return parse_options(["127.0.0.1", "7", "--config", config, *argv])


def test_without_a_config_the_builtin_defaults():
    result = parse_options(["127.0.0.1", "7"])
    assert result.view == View()
    assert (result.eol, result.input_mode, result.escapes) == ("lf", "text", True)
    assert result.startup.presets == ()


def test_config_defaults_apply(write_config):
    path = write_config(
        '[defaults]\nview = "hex"\nencoding = "gbk"\neol = "crlf"\ninput = "hex"\n'
        'escapes = false\ntime = "on"\n'
    )
    result = options(path)
    assert result.view == View(mode="hex", encoding="gbk", timestamps="on")
    assert (result.eol, result.input_mode, result.escapes) == ("crlf", "hex", False)


def test_presets_reach_the_startup(write_config):
    path = write_config('[presets]\nread = "/x 01 03"\nhi = "HELLO {counter}"\n')
    assert dict(options(path).startup.presets) == {"read": "/x 01 03", "hi": "HELLO {counter}"}


def test_the_user_file_is_used_without_config_option(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    (tmp_path / "netrepl").mkdir()
    (tmp_path / "netrepl" / "config.toml").write_text(
        '[defaults]\neol = "cr"\n[presets]\np = "x"\n', encoding="utf-8"
    )
    result = parse_options(["127.0.0.1", "7"])
    assert result.eol == "cr" and result.startup.presets == (("p", "x"),)


@pytest.mark.parametrize(
    ("config", "argv", "view"),
    [
        ('view = "hex"', ["--view", "utf8"], View()),
        ('view = "hex"', ["--view", "text"], View()),
        ('view = "gbk"', ["--view", "hex"], View(mode="hex", encoding="gbk")),
        ('encoding = "gbk"', ["--encoding", "latin-1"], View(encoding="iso8859-1")),
        ('encoding = "gbk"', ["--view", "utf8"], View()),
        ('encoding = "gbk"', ["--view", "hex"], View(mode="hex", encoding="gbk")),
        ('view = "gbk"', ["--encoding", "utf-8"], View()),
        ('view = "hex"\nencoding = "gbk"', ["--encoding", "utf-8"], View(mode="hex")),
        ('time = "delta"', ["--view", "hex"], View(mode="hex", timestamps="delta")),
        ('view = "json"', [], View(mode="json")),
        ('view = "json"\nencoding = "gbk"', [], View(mode="json", encoding="gbk")),
        ('encoding = "gbk"', ["--view", "json"], View(mode="json", encoding="gbk")),
        ('view = "json"', ["--view", "text"], View()),
    ],
)
def test_the_command_line_wins_over_the_config(write_config, config, argv, view):
    assert options(write_config(f"[defaults]\n{config}\n"), *argv).view == view


def test_eol_on_the_command_line_wins(write_config):
    path = write_config('[defaults]\neol = "crlf"\ninput = "hex"\nescapes = false\n')
    result = options(path, "--eol", "cr")
    assert result.eol == "cr"
    # No command-line option for these: the config's values stay.
    assert (result.input_mode, result.escapes) == ("hex", False)


def test_a_bad_encoding_in_the_config_names_the_file(write_config):
    path = write_config('[defaults]\nencoding = "no-such-codec"\n')
    with pytest.raises(UsageError, match=re.escape(f"(in {path})")):
        options(path)


def test_a_bad_encoding_in_the_config_is_an_error_even_when_the_command_line_sets_one(
    write_config,
):
    path = write_config('[defaults]\nencoding = "no-such-codec"\n')
    with pytest.raises(UsageError, match="no-such-codec"):
        options(path, "--encoding", "utf-8")


def test_a_config_error_stops_parse_options(write_config):
    path = write_config("[defaults]\nbogus = 1\n")
    with pytest.raises(UsageError, match=re.escape(f"{path}: unknown key 'bogus'")):
        options(path)


def test_missing_config_option_file_stops_parse_options(tmp_path):
    missing = Path(tmp_path) / "nope.toml"
    with pytest.raises(UsageError, match=re.escape(f"--config {missing}: no such file")):
        parse_options(["127.0.0.1", "7", "--config", str(missing)])
