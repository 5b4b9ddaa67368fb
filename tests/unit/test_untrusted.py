"""The one rule for text a desktop chose (zionwm.untrusted): what is hostile, and its two
ways of being shown (escaped for logs and lists, dropped for notifications)."""

from __future__ import annotations

import pytest

from zionwm.untrusted import clean_text, hides_or_reorders, printable

HOSTILE = [
    "\x00", "\x1b", "\r", "\n", "\x7f", "\x9b",  # C0, DEL, C1
    "\u202e", "\u2066", "\u200e",  # bidi override, isolate, mark
    "\u200b", "\u200d", "\ufeff",  # zero-width space and joiner, BOM
    "\U000e0041",  # tag character
    "\ue000",  # private use
    "\u0378",  # unassigned
    "\u2028", "\u2029",  # line and paragraph separators
]  # fmt: skip


@pytest.mark.parametrize("c", HOSTILE)
def test_every_hiding_or_reordering_character_is_named_and_treated_alike(c: str) -> None:
    assert hides_or_reorders(c)
    shown = printable(f"a{c}b")
    assert c not in shown and shown.startswith("a\\") and shown.endswith("b")
    assert clean_text(f"a{c}b", 80) in ("ab", "a\u2026")  # a line break ends the only line


@pytest.mark.parametrize("c", ["a", "é", "ß", "中", "😀", " ", "\u00a0", "-"])
def test_ordinary_text_is_left_alone(c: str) -> None:
    assert not hides_or_reorders(c)
    assert printable(f"x{c}y") == f"x{c}y"


def test_printable_escapes_by_code_point_width_keeps_what_it_is_told_and_cuts() -> None:
    assert printable("\t\u202e\U000e0041") == "\\x09\\u202e\\U000e0041"
    assert printable("a\tb\x1b", keep="\t") == "a\tb\\x1b"
    assert printable("a" * 10, 5) == "aaaa\u2026"
    assert printable("a" * 1000, None) == "a" * 1000


def test_clean_text_drops_folds_and_bounds_lines_and_length() -> None:
    assert clean_text("a\u202eb\u200bc\x1b[31md\x00", 80) == "abc[31md"
    assert clean_text("  spaced\t out  ", 80) == "spaced out"
    assert clean_text("one\r\ntwo\rthree\nfour", 80, lines=3) == "one\ntwo\nthree\u2026"
    assert clean_text("\n\nfirst\n\n", 80, lines=4) == "first"
    assert clean_text("x" * 500, 10) == "x" * 9 + "\u2026"
    assert clean_text(None, 80) == "" and clean_text(b"bytes", 80) == ""
