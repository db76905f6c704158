"""Log hygiene: user-supplied values cannot forge log lines."""

from __future__ import annotations

import logging
import re
from typing import Any

# C0 and C1 controls, DEL, and the Unicode line and paragraph separators: anything a terminal
# or a log shipper may take as the end of a line.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def escape_control(text: str) -> str:
    """``text`` with every control character written as a visible escape (``\\n``, ``\\x1b``)."""
    return _CONTROL.sub(lambda match: match.group().encode("unicode_escape").decode("ascii"), text)


def _escaped(value: Any) -> Any:
    if isinstance(value, bool | int | float) or value is None:
        return value  # keeps %d and %.1f working
    text = value if isinstance(value, str) else str(value)
    return escape_control(text) if _CONTROL.search(text) else value


class EscapeControlCharsFilter(logging.Filter):
    """Escape control characters in a record's arguments, where user input arrives.

    Installed on the handlers in settings.LOGGING, so it covers every logger at once. The
    format string is ours and is left alone; so is a traceback (exc_info), which is formatted
    apart from the message.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, dict):
            record.args = {key: _escaped(value) for key, value in record.args.items()}
        elif record.args:
            record.args = tuple(_escaped(value) for value in record.args)
        elif isinstance(record.msg, str) and _CONTROL.search(record.msg):
            # A pre-formatted message (no args) may carry user input too; one line stays one.
            record.msg = escape_control(record.msg)
        return True
