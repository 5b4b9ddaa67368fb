"""Text a desktop chose, made safe to show: the one rule every layer uses.

A name, a notification, a URL or a line a sandboxed program printed can reach trusted UI, the
compositor's log or a terminal. Whatever it is, the same characters are hostile there:
those that hide or reorder what is shown around them (`hides_or_reorders`). Two ways to show
such text exist, for two kinds of reader:

- `printable` escapes them (`\\xNN`, `\\uNNNN`, `\\UNNNNNNNN`): for logs, lists and reports,
  where the user must be able to tell two names apart and see exactly what was there;
- `clean_text` drops them and folds white space: for notifications, where the text is read,
  not inspected, and is bounded in lines and length.

This module imports nothing of zionwm, so that every layer may use it.
"""

from __future__ import annotations

import unicodedata

ELLIPSIS = "\u2026"


def hides_or_reorders(c: str) -> bool:
    """Characters a desktop could use to fake what trusted text shows: controls (C0, DEL,
    C1), format characters (bidirectional embeddings, overrides and isolates, direction
    marks, zero-width spaces and joiners, the BOM), private-use, surrogate and unassigned
    code points, and line/paragraph separators: every Unicode category C, plus Zl and Zp."""
    cat = unicodedata.category(c)
    return cat[0] == "C" or cat in ("Zl", "Zp")


def _escape(c: str) -> str:
    o = ord(c)
    if o < 0x100:
        return f"\\x{o:02x}"
    if o < 0x10000:
        return f"\\u{o:04x}"
    return f"\\U{o:08x}"


def printable(text: str, limit: int | None = 300, *, keep: str = "") -> str:
    """`text` with every character `hides_or_reorders` names escaped, except those in `keep`
    (a log keeps tabs), so it cannot add a line, reorder or hide what is shown around it, or
    forge a log line; cut at `limit` characters (None: not cut), the cut marked."""
    shown = "".join(_escape(c) if hides_or_reorders(c) and c not in keep else c for c in text)
    if limit is None or len(shown) <= limit:
        return shown
    return shown[: limit - 1] + ELLIPSIS


def clean_text(text: object, limit: int, *, lines: int = 1) -> str:
    """Readable text only: every character `hides_or_reorders` names is dropped (a tab
    becomes a space), white space is folded, and at most `lines` lines and `limit`
    characters are kept, marked with an ellipsis when cut. Anything but a str gives ""."""
    if not isinstance(text, str):
        return ""
    out_lines: list[str] = []
    cut = False
    for raw in text.replace("\r\n", "\n").replace("\r", "\n").split("\n"):
        if len(out_lines) == lines:
            cut = True
            break
        # a tab is white space here, folded with the rest
        kept = "".join(c for c in raw.replace("\t", " ") if not hides_or_reorders(c))
        line = " ".join(kept.split())
        if line or out_lines:
            out_lines.append(line)
    while out_lines and not out_lines[-1]:
        out_lines.pop()
    joined = "\n".join(out_lines)
    if len(joined) > limit:
        joined, cut = joined[: limit - 1].rstrip(), True
    return joined + (ELLIPSIS if cut else "")
