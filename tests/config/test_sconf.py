"""sconf parser/writer: syntax rules, error lines and keys, durations, round trips."""

from __future__ import annotations

import datetime
from dataclasses import dataclass

import pytest

from core.config import ConfigError, Dynamic, Static, sconf
from core.config.sconf import Duration, format_duration, opt, parse_duration, req

MINIMAL_STATIC = (
    "DataDir: data\n"
    "LogLevel: info\n"
    "Hostname: mox.example\n"
    "Listeners:\n"
    "\tlocal:\n"
    "\t\tIPs:\n"
    "\t\t\t- 127.0.0.1\n"
    "\t\tSMTP:\n"
    "\t\t\tEnabled: true\n"
    "Postmaster:\n"
    "\tAccount: mjl\n"
    "\tMailbox: postmaster\n"
)


def perr(text: str, cls: type = Static) -> ConfigError:
    with pytest.raises(ConfigError) as ei:
        sconf.parse(cls, text, "mox.conf")
    return ei.value


def test_minimal_parses_with_defaults() -> None:
    s = sconf.parse(Static, MINIMAL_STATIC, "mox.conf")
    lst = s.Listeners["local"]
    assert lst.IPs == ["127.0.0.1"]
    assert lst.SMTP.Enabled is True and lst.SMTP.Port == 0
    assert lst.port("SMTP") == 25 and lst.port("Submission") == 587
    assert lst.port("Submissions") == 465 and lst.port("WebAPIHTTP") == 80
    assert lst.port("WebAPIHTTPS") == 443 and lst.port("MetricsHTTP") == 8010
    assert lst.path("WebAPIHTTP") == "/webapi/" and lst.path("AdminHTTPS") == "/admin/"
    assert lst.smtp_max_message_size == 104857600
    assert lst.SMTP.first_time_sender_delay == datetime.timedelta(seconds=15)
    assert s.Plugins is None
    assert sconf.line_of(lst, "SMTP") == 8


def test_comments_and_blank_lines_anywhere() -> None:
    text = "# top\n\n" + MINIMAL_STATIC.replace("\t\tSMTP:\n", "\t\t# indented comment\n#x\n\n\t\tSMTP:\n")
    s = sconf.parse(Static, text)
    assert s.Listeners["local"].SMTP.Enabled


def test_hash_in_value_is_part_of_value() -> None:
    s = sconf.parse(Static, MINIMAL_STATIC.replace("Hostname: mox.example", "Hostname: a#b"))
    assert s.Hostname == "a#b"


@pytest.mark.parametrize(
    ("old", "new", "line", "key", "fragment"),
    [
        ("Hostname: mox.example", "Hostname: mox.example\nFoo: bar", 4, "Foo", 'unknown key "Foo"'),
        ("Hostname: mox.example", "Hostname:mox.example", 3, "Hostname", "missing space after colon"),
        ("\t\t\tEnabled: true", "    \t\tEnabled: true", 8, "SMTP", "(perhaps mixed tab/space indenting)"),
        ("\tMailbox: postmaster", "\t  Mailbox: postmaster", 12, "Mailbox", "starting with space (perhaps mixed tab/space indenting)"),
        ("LogLevel: info\n", "LogLevel: info\n\t \n", 3, None, "perhaps stray whitespace"),
        ("LogLevel: info", "LogLevel: info\nLogLevel: debug", 3, "LogLevel", 'duplicate key "LogLevel"'),
        ("LogLevel: info\n", "", 11, "LogLevel", 'missing required key "LogLevel"'),
        ("\tMailbox: postmaster\n", "", 10, "Mailbox", 'missing required key "Mailbox"'),
        ("Enabled: true", "Enabled: yes", 9, "Enabled", 'bad boolean value "yes"'),
        ("Enabled: true", "Enabled: True", 9, "Enabled", "bad boolean value"),
        ("\t\t\tEnabled: true\n", "\t\t\tEnabled: true\n\t\t\tPort: 25x\n", 10, "Port", "parsing integer"),
        ("\t\t\tEnabled: true\n", "\t\t\tEnabled: true\n\t\t\tFirstTimeSenderDelay: 3 days\n", 10, "FirstTimeSenderDelay", "parsing duration"),
        ("\t\t\t- 127.0.0.1", "\t\t\t-127.0.0.1", 7, "IPs", "missing space after -"),
        ("\tlocal:\n", "\tx: nil\n\tx: nil\n\tlocal:\n", 6, "x", 'duplicate key "x" in map'),
        ("Postmaster:\n", "Postmaster: x\n", 10, "Postmaster", "unexpected value"),
    ],
)
def test_errors_have_line_and_key(old: str, new: str, line: int, key: str | None, fragment: str) -> None:
    assert old in MINIMAL_STATIC
    e = perr(MINIMAL_STATIC.replace(old, new, 1))
    assert fragment in e.message
    assert e.line == line, str(e)
    assert e.key == key
    assert e.path == "mox.conf"
    assert str(e) == f"mox.conf:{line}: {e.message}"


def test_nil_map_values_and_zero_struct() -> None:
    d = sconf.parse(Dynamic, "Domains:\n\tmox.example: nil\nAccounts:\n\ta:\n\t\tDomain: \n\t\tDestinations:\n\t\t\tx@mox.example: nil\n")
    assert d.Domains["mox.example"].LocalpartCatchallSeparator == ""
    assert d.Accounts["a"].Domain == ""
    assert d.Accounts["a"].Destinations["x@mox.example"].mailbox == "Inbox"


def test_list_of_structs() -> None:
    text = (
        "Domains:\n\td.example: nil\nAccounts:\n\ta:\n\t\tDomain: d.example\n"
        "\t\tDestinations:\n\t\t\ta@d.example:\n\t\t\t\tRulesets:\n\t\t\t\t\t-\n"
        "\t\t\t\t\t\tVerifiedDomain: example.org\n\t\t\t\t\t\tMailbox: Lists\n"
        "\t\t\t\t\t-\n\t\t\t\t\t\tMailbox: Other\n"
    )
    d = sconf.parse(Dynamic, text)
    rs = d.Accounts["a"].Destinations["a@d.example"].Rulesets
    assert [r.Mailbox for r in rs] == ["Lists", "Other"]
    assert rs[0].VerifiedDomain == "example.org"


@pytest.mark.parametrize(
    ("text", "ns", "canonical"),
    [
        ("72h0m0s", 72 * 3600 * 10**9, "72h0m0s"),
        ("72h", 72 * 3600 * 10**9, "72h0m0s"),
        ("1ns", 1, "1ns"),
        ("1h30m", 5400 * 10**9, "1h30m0s"),
        ("15s", 15 * 10**9, "15s"),
        ("7m30s", 450 * 10**9, "7m30s"),
        ("1.5s", 1_500_000_000, "1.5s"),
        ("0", 0, "0s"),
        ("-2m", -120 * 10**9, "-2m0s"),
        ("1500us", 1_500_000, "1.5ms"),
        ("2µs", 2000, "2µs"),
    ],
)
def test_go_durations(text: str, ns: int, canonical: str) -> None:
    d = parse_duration(text)
    assert d.nanoseconds == ns
    assert format_duration(d) == canonical


def test_one_nanosecond_is_not_zero() -> None:
    d = parse_duration("1ns")
    assert bool(d) is True
    assert d > datetime.timedelta(0)
    assert d != Duration(0)
    assert format_duration(datetime.timedelta(hours=72)) == "72h0m0s"


@pytest.mark.parametrize("bad", ["", "3", "3d", "h", "1.h2", "abc", "1 h"])
def test_bad_durations(bad: str) -> None:
    with pytest.raises(ValueError):
        parse_duration(bad)


@dataclass
class Inner:
    A: str = opt("Doc for A.", "")
    B: int = req("", 0)


@dataclass
class Outer:
    Name: str = req("The name.\n\n\nSecond section.", "")
    Empty: str = req("", "")
    F: float = opt("", 0.0)
    D: datetime.timedelta = opt("", factory=lambda: Duration(0))
    Items: list[str] = opt("", factory=list)
    M: dict[str, Inner] = opt("", factory=dict)
    P: Inner | None = opt("", None)


def test_writer_rules() -> None:
    o = Outer(Name="n", F=0.95, D=parse_duration("72h"), Items=["x", "y"],
              M={"b": Inner(B=2), "a": Inner(), "c": Inner(A="q", B=0)}, P=Inner())
    plain = sconf.write(o)
    assert plain == (
        "Name: n\nEmpty: \nF: 0.950000\nD: 72h0m0s\nItems:\n\t- x\n\t- y\n"
        "M:\n\ta: nil\n\tb:\n\t\tB: 2\n\tc:\n\t\tA: q\n\t\tB: 0\nP:\n\tB: 0\n"
    )
    assert sconf.parse(Outer, plain) == o
    documented = sconf.write(Outer(Name="n"), docs=True)
    assert documented == "# The name.\n\n\n# Second section.\nName: n\nEmpty: \n"


@dataclass
class AllOpt:
    A: str = opt("", "")


@dataclass
class WithMap:
    M: dict[str, AllOpt] = req("", factory=dict)


def test_writer_nil_for_all_optional_zero_struct() -> None:
    w = sconf.write(WithMap(M={"x": AllOpt(), "y": AllOpt(A="v")}))
    assert w == "M:\n\tx: nil\n\ty:\n\t\tA: v\n"
    assert sconf.parse(WithMap, w) == WithMap(M={"x": AllOpt(), "y": AllOpt(A="v")})


def test_comment_wrapping_at_80_columns() -> None:
    long = " ".join(["word"] * 40)
    out = sconf.write(Outer(Name=long), docs=False)
    assert out.startswith("Name: word word")

    @dataclass
    class Doc:
        K: str = req(long, "")

    text = sconf.write(Doc(K="v"), docs=True)
    comment_lines = [ln for ln in text.splitlines() if ln.startswith("#")]
    assert all(len(ln) - 2 <= 80 for ln in comment_lines)
    assert len(comment_lines) == 3
