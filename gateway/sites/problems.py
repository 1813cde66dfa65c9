"""Every problem of one of a site's tables (`hours`, `callback`, `destinations`, `widget`) at
once, each with where in the table it is, so that the configuration names each one by its
whole key path (`sites["shop"].hours.mon: ...`) and a site owner fixes them in one go.

Also the hint every table gives for a key that is almost right (`unknown_key_reason`).
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence


class SettingsProblems(ValueError):
    """One or more problems of a table, each `(where, reason)`: `where` extends the table's
    key path (".mon", ".countries[1]", "[2].uri"), or is "" for the table as a whole."""

    def __init__(self, problems: Sequence[tuple[str, str]]) -> None:
        self.problems = tuple(problems)
        super().__init__(
            "\n".join(f"{where.lstrip('.')}: {why}" if where else why for where, why in problems)
        )


def unknown_key_reason(key: str, known: Sequence[str]) -> str:
    """Why `key` is refused: unknown, and the known key it is closest to (or them all)."""
    close = difflib.get_close_matches(key, list(known), n=1)
    hint = f"; did you mean {close[0]!r}?" if close else f" (known: {', '.join(known)})"
    return f"unknown key{hint}"
