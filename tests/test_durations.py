import pytest

from sandglass.durations import format_duration, parse_duration


def test_parse_duration():
    assert parse_duration("90s") == 90 and parse_duration("30m") == 1800 and parse_duration("2h") == 7200
    assert parse_duration("1h30m") == 5400 and parse_duration("45") == 45 and parse_duration(12.5) == 12.5
    assert parse_duration("1d") == 86400 and parse_duration("1.5h") == 5400
    for bad in ("", "soon", "10x", "m30", "-5m", "0s", "1h 30"):
        with pytest.raises(ValueError):
            parse_duration(bad)


def test_format_duration():
    assert format_duration(42.4) == "42s" and format_duration(185) == "3m05s" and format_duration(7620) == "2h07m"
    assert format_duration(-1) == "0s" and format_duration(59.6) == "1m00s"
