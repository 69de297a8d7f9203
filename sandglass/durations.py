"""Wall-clock durations as people write them (``90s``, ``30m``, ``1h30m``) and as progress shows them."""

from __future__ import annotations

import re

DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)([dhms])")
SECONDS_PER_UNIT = {"d": 86400.0, "h": 3600.0, "m": 60.0, "s": 1.0}


def parse_duration(value: str | float) -> float:
    """Seconds in a duration such as ``"90s"``, ``"30m"``, ``"2h"``, ``"1h30m"``, or a plain number of seconds."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        seconds = float(value)
    else:
        text = str(value).strip().lower().replace(" ", "")
        try:
            seconds = float(text)
        except ValueError:
            parts = DURATION_PART.findall(text)
            if not parts or "".join(number + unit for number, unit in parts) != text:
                raise ValueError(f"{value!r} is not a duration; write it like 90s, 30m, 2h or 1h30m") from None
            seconds = sum(float(number) * SECONDS_PER_UNIT[unit] for number, unit in parts)
    if not seconds > 0:
        raise ValueError(f"a duration must be above zero, got {value!r}")
    return seconds


def format_duration(seconds: float) -> str:
    """``42s``, ``3m05s``, ``2h07m``."""
    seconds = max(0, round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
