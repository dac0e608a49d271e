"""Recognisers for the values a fact question asks for: numbers (digits in both scripts, Arabic number words) and
date expressions (dates, months, weekdays, relative days)."""

from __future__ import annotations

import re

from rag.timeq import MONTHS_AR, WEEKDAYS_AR

_LETTER = "\u0621-\u064a"
NUMBER_WORDS_AR = """واحد واحدة اثنان اثنين اثنتين اثنتان ثلاث ثلاثة أربع أربعة اربع اربعة خمس خمسة ست ستة سبع سبعة ثمان
ثماني ثمانية تسع تسعة عشر عشرة عشرات عشرين عشرون ثلاثين ثلاثون أربعين أربعون اربعين خمسين خمسون ستين ستون سبعين
سبعون ثمانين ثمانون تسعين تسعون مئة مائة مئات مئتين مائتين مئتي ألف الف آلاف الاف ألفين ألفي مليون ملايين مليونين مليوني
مليار مليارات مليارين ملياري نصف ربع ثلث عدة""".split()
RELATIVE_DAYS_AR = "اليوم أمس امس غدا غداً البارحة".split()


def _words(words: list[str], prefixes: str = "(?:[وبلف])?(?:ال)?", suffixes: str = "") -> str:
    alternatives = "|".join(sorted((re.escape(w) for w in words), key=len, reverse=True))
    return rf"(?<![{_LETTER}]){prefixes}(?:{alternatives}){suffixes}(?![{_LETTER}])"


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
