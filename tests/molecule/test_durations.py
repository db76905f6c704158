"""Durations: the syntax of settings and command options, and how every duration is shown."""

from datetime import timedelta

import pytest

from molecule.durations import format_duration, parse_duration


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("90s", timedelta(seconds=90)),
        ("30m", timedelta(minutes=30)),
        ("1h", timedelta(hours=1)),
        ("2d", timedelta(days=2)),
        ("45", timedelta(seconds=45)),
        ("0", timedelta(0)),
        ("1.5h", timedelta(minutes=90)),
        ("0.5m", timedelta(seconds=30)),
        (" 10s ", timedelta(seconds=10)),
        ("5 m", timedelta(minutes=5)),
    ],
)
def test_parse_duration_accepts(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "",
        " ",
        "2x",
        "abc",
        "s",
        "h1",
        "1h30m",
        "5M",
        "1e3",
        ".5h",
        "5.",
        "--5",
        "+5s",
        "5 minutes",
        "1h\nrm -rf",
        # Out of timedelta's range: must still be a ValueError, or a command option turns
        # into a traceback instead of a usage error.
        "99999999999d",
        pytest.param("1" * 400 + "s", id="400-digit-seconds"),
    ],
)
def test_parse_duration_rejects_with_one_line_value_error(text: str) -> None:
    with pytest.raises(ValueError) as caught:
        parse_duration(text)
    message = str(caught.value)
    assert message
    assert "\n" not in message
    # The message names the input, so an operator sees which value was refused.
    assert repr(text) in message


@pytest.mark.parametrize(
    ("text", "positive", "reason"),
    [
        ("-5", False, "must not be negative"),
        ("-5m", False, "must not be negative"),
        ("-0.5h", True, "must not be negative"),
        ("0", True, "must be more than 0"),
        ("0.0s", True, "must be more than 0"),
        ("-0", True, "must be more than 0"),
    ],
)
def test_parse_duration_refuses_negative_and_for_positive_zero(
    text: str, positive: bool, reason: str
) -> None:
    with pytest.raises(ValueError) as caught:
        parse_duration(text, positive=positive)
    assert str(caught.value) == f"invalid duration {text!r}: {reason}"


@pytest.mark.parametrize(("text", "positive"), [("0", False), ("-0", False), ("1s", True)])
def test_parse_duration_accepts_zero_unless_positive(text: str, positive: bool) -> None:
    assert parse_duration(text, positive=positive) >= timedelta(0)


@pytest.mark.parametrize(
    ("duration", "shown"),
    [
        (timedelta(0), "0 s"),
        (timedelta(seconds=1), "1 s"),
        (timedelta(seconds=0.5), "0.5 s"),
        (timedelta(seconds=90), "1 min 30 s"),
        (timedelta(minutes=10), "10 min"),
        (timedelta(hours=1), "1 h"),
        (timedelta(minutes=90), "1 h 30 min"),
        (timedelta(days=30), "30 d"),
        (timedelta(days=1, hours=1, minutes=1, seconds=1), "1 d 1 h 1 min 1 s"),
        (123.25, "2 min 3.25 s"),
        (-5, "0 s"),
    ],
)
def test_format_duration_is_exact_in_the_largest_units(duration, shown: str) -> None:
    assert format_duration(duration) == shown


@pytest.mark.parametrize(
    ("seconds", "shown"),
    [
        (-5, "0 s"),
        (45.4, "45 s"),
        (59.6, "1 min"),
        (41 * 60 + 10, "41 min"),
        (55 * 60 - 0.6, "55 min"),
        (3600, "1 h"),
        (5400 + 20, "1 h 30 min"),
        (24 * 3600 - 0.5, "1 d"),
        (25 * 3600 + 61, "1 d 1 h"),
        (3 * 86400 + 100, "3 d"),
    ],
)
def test_format_duration_approximate_keeps_two_units_and_minutes_at_best(
    seconds: float, shown: str
) -> None:
    assert format_duration(seconds, approximate=True) == shown
