"""The tables and cells zionctl and its quarantine and template commands print (pure)."""

from __future__ import annotations

from zionwm.cli_table import size_text, table, time_text


def test_columns_are_padded_to_their_widest_cell_but_the_last() -> None:
    rows = [("ID", "STATE", "NAME"), ("12", "held", "a  b.pdf"), ("3", "released", "")]
    assert table(rows).splitlines() == [
        "ID  STATE     NAME",
        "12  held      a  b.pdf",
        "3   released",  # nothing in the last column: no blanks after the line
    ]
    assert table([]) == ""
    assert table([("only",), ("one column",)]) == "only\none column"


def test_sizes_and_times_read_as_people_read_them() -> None:
    assert [size_text(n) for n in (None, 0, 1023, 1536, 5 * 1024**3, 9 * 1024**4)] == [
        "-",
        "0 B",
        "1023 B",
        "1.5 KiB",
        "5.0 GiB",
        "9216.0 GiB",
    ]
    assert time_text(None) == "-" and time_text(0) == "-"
    assert time_text(86400 * 365) == "1971-01-01 00:00:00"


def test_the_manager_and_hibernation_say_sizes_as_zionctl_does() -> None:
    from zionwm.isolation import hibernate
    from zionwm.manager import models

    # one formatter for every layer (the manager's usage figures are floats)
    assert models.size_text is size_text and hibernate.size_text is size_text
    assert size_text(1536.0) == "1.5 KiB"
    assert size_text(3 * 1024**2 + 0.4) == "3.0 MiB"
