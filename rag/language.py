"""The one rule for a question's language: a mostly Latin-script question is read as English over Arabic articles."""

from __future__ import annotations


def latin_share(text: str) -> float:
    """Share of the letters in `text` that are ASCII (0 for Arabic, 1 for English)."""
    letters = [c for c in text if c.isalpha()]
    return sum(c.isascii() for c in letters) / len(letters) if letters else 0.0


def is_cross_lingual(question: str) -> bool:
    """A mostly Latin-script question over the Arabic articles: its query vector, translation, refusal threshold
    and answer language follow from this, everywhere."""
    return latin_share(question) > 0.5
