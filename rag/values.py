"""Recognisers for the values a fact question asks for: numbers (digits in both scripts, Arabic number words) and
date expressions (dates, months, weekdays, relative days)."""

from __future__ import annotations

import re

from rag.timeq import MONTHS_AR, WEEKDAYS_AR, alternation

_LETTER = "\u0621-\u064a"
# Number words with their value (a clitic و ب ل ف and the article may stand before them), the scale words that
# multiply a number before them, and the amounts that have words but no value.
UNITS_AR = {
    "واحد": 1, "واحدة": 1, "اثنان": 2, "اثنين": 2, "اثنتين": 2, "اثنتان": 2, "ثلاث": 3, "ثلاثة": 3, "أربع": 4,
    "أربعة": 4, "اربع": 4, "اربعة": 4, "خمس": 5, "خمسة": 5, "ست": 6, "ستة": 6, "سبع": 7, "سبعة": 7, "ثمان": 8,
    "ثماني": 8, "ثمانية": 8, "تسع": 9, "تسعة": 9, "عشر": 10, "عشرة": 10, "عشرين": 20, "عشرون": 20, "ثلاثين": 30,
    "ثلاثون": 30, "أربعين": 40, "أربعون": 40, "اربعين": 40, "خمسين": 50, "خمسون": 50, "ستين": 60, "ستون": 60,
    "سبعين": 70, "سبعون": 70, "ثمانين": 80, "ثمانون": 80, "تسعين": 90, "تسعون": 90, "مئة": 100, "مائة": 100,
    "مئتين": 200, "مائتين": 200, "مئتي": 200, "ألفين": 2000, "ألفي": 2000, "مليونين": 2_000_000,
    "مليوني": 2_000_000, "مليارين": 2_000_000_000, "ملياري": 2_000_000_000,
}  # fmt: skip
SCALES_AR = {
    "ألف": 1000, "الف": 1000, "آلاف": 1000, "الاف": 1000, "مليون": 10**6, "ملايين": 10**6, "مليار": 10**9,
    "مليارات": 10**9, "بليون": 10**9, "ترليون": 10**12, "تريليون": 10**12,
}  # fmt: skip
VAGUE_AR = {"عشرات": "tens of", "مئات": "hundreds of", "آلاف": "thousands of", "الاف": "thousands of",
            "ملايين": "millions of", "عدة": "several"}  # fmt: skip
FRACTIONS_AR = ("نصف", "ربع", "ثلث")
NUMBER_WORDS_AR = list(dict.fromkeys([*UNITS_AR, *SCALES_AR, *VAGUE_AR, *FRACTIONS_AR]))
RELATIVE_DAYS_AR = "اليوم أمس امس غدا غداً البارحة".split()


def _words(words: list[str], prefixes: str = "(?:[وبلف])?(?:ال)?", suffixes: str = "") -> str:
    return rf"(?<![{_LETTER}]){prefixes}(?:{alternation(words)}){suffixes}(?![{_LETTER}])"


NUMBER = re.compile(rf"[0-9٠-٩]|{_words(NUMBER_WORDS_AR)}")
_CLITIC = "(?:[وبلف])?"
DATE_EXPRESSION = re.compile(
    rf"[0-9٠-٩]|{_words(list(MONTHS_AR), _CLITIC)}|{_words(list(WEEKDAYS_AR) + RELATIVE_DAYS_AR, _CLITIC)}"
)

ASKS_NUMBER = re.compile(r"(?:^|\W)(?:how (?:many|much|long|old|far|big|large)|كم)(?:\W|$)", re.IGNORECASE)
ASKS_DATE = re.compile(
    r"(?:^|\W)(?:when|what (?:year|date|day|month)|on what (?:date|day)|in which year|متى|في أي (?:عام|سنة|يوم|شهر)|"
    r"في اي (?:عام|سنة|يوم|شهر)|ما تاريخ)(?:\W|$)",
    re.IGNORECASE,
)


def expected_value(question: str) -> re.Pattern | None:
    """What a quote must hold to answer this question: a number for how many/much, a date expression for when."""
    if ASKS_NUMBER.search(question):
        return NUMBER
    if ASKS_DATE.search(question):
        return DATE_EXPRESSION
    return None
