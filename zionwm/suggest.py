""" "Did you mean ...?" for a name the user mistyped (config keys, settings, commands).

`difflib` is imported at the first mistake, not at start: the compositor validates its config
at every start, and a config without a typo never needs it.
"""

from __future__ import annotations

from collections.abc import Iterable


def close_matches(
    word: str, candidates: Iterable[str], n: int = 1, cutoff: float = 0.6
) -> list[str]:
    """The `n` candidates closest to `word` (difflib's ratio >= `cutoff`), best first."""
    import difflib  # noqa: PLC0415 - at the first typo, not at every start

    return difflib.get_close_matches(word, list(candidates), n=n, cutoff=cutoff)
