"""The normalized-text level: a conservative normal form of the intent text.

Unicode NFKC, case-folded, whitespace runs collapsed to one space, and trailing
``?``, ``!`` and ``.`` dropped. Nothing else: symbols inside the text stay, so
``2+2`` and ``2-2`` never meet, and neither do ``C`` and ``C++``.
"""

from __future__ import annotations

import unicodedata

__all__ = ["normal_form"]

_TRAILING = "?!. "


def normal_form(text: str) -> str:
    """The text as the normalized level compares it."""
    folded = unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", text).casefold())
    return " ".join(folded.split()).rstrip(_TRAILING)
