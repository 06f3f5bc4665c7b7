"""Text from Hatchet (log lines, error messages) made safe to write into a log: it cannot end a line or forge one."""

from __future__ import annotations

import re

__all__ = ["CONTINUATION", "MAX_LINE_CHARS", "escape_controls", "safe_text"]

# The most characters kept of one Hatchet log line (after masking); a note says how many more were cut.
MAX_LINE_CHARS = 10_000
# Starts every line that followed a newline inside one Hatchet log line, so that no forwarded text starts a line.
CONTINUATION = "    | "

# Control characters but tab and newline, the Unicode line and paragraph separators and the bidirectional
# controls: whatever could end a line, move the cursor or reorder what a reader sees. Lone surrogates too: a log
# handler writing UTF-8 fails on them and loses the line.
_UNSAFE = "\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069\ud800-\udfff"
_UNSAFE_BUT_NEWLINE = re.compile(f"[{_UNSAFE}]")
_UNSAFE_AND_NEWLINE = re.compile(f"[\n{_UNSAFE}]")


def _escape(match: re.Match[str]) -> str:
    return match.group().encode("unicode_escape").decode("ascii")


def escape_controls(text: str, *, newlines: bool = True) -> str:
    """Write the characters that could end a line, move the cursor or reorder text as Python escapes (``\\r``,
    ``\\n``, ``\\x1b``, ``\\u2028``).

    :param text: the text.
    :param newlines: escape ``\\n`` too (False where the caller marks continuation lines itself).
    """
    return (_UNSAFE_AND_NEWLINE if newlines else _UNSAFE_BUT_NEWLINE).sub(_escape, text)


def safe_text(text: str, limit: int = MAX_LINE_CHARS) -> str:
    """Hatchet's text made safe to write into the task log: it cannot end a line or forge one.

    Control characters (but tab) are written as Python escapes (``\\r``, ``\\x1b``, ``\\u2028``); each line after an
    embedded newline starts with :data:`CONTINUATION`; text beyond ``limit`` characters is cut, with a note of how
    much.

    :param text: the text, already masked.
    :param limit: the most characters kept.
    """
    text = text.replace("\r\n", "\n").rstrip("\n")
    cut = len(text) - limit
    if cut > 0:
        text = text[:limit]
    text = escape_controls(text, newlines=False).replace("\n", "\n" + CONTINUATION)
    if cut > 0:
        text += f" [... {cut} more characters cut: a forwarded line keeps its first {limit}]"
    return text
